"""crmbridge: Salesforce migration kit and ERP sync middleware.

The repository root is this package. Stages live in folders (connectors, validation, mappings,
migrations, sync, readiness) and hand each other small frozen result records.
"""

__version__ = "0.1.0"
