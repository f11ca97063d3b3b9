"""crmbridge.connectors."""
