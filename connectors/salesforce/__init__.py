"""crmbridge.connectors.salesforce."""
