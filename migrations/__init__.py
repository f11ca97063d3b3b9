"""crmbridge.migrations."""
