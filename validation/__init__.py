"""crmbridge.validation."""
