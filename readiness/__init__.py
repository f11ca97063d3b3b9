"""crmbridge.readiness."""
