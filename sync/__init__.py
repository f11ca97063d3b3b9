"""crmbridge.sync."""
