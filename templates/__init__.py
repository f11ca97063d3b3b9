"""crmbridge.templates."""
