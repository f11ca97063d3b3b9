"""crmbridge.sandbox."""
