"""crmbridge.connectors.salesforce: the client crmbridge uses for every Salesforce call.

Built on simple-salesforce for every auth mode and call: describe (cached), SOQL over REST
(streamed) and Bulk 2.0, and one DML interface over REST sObject Collections and Bulk API 2.0
chosen by :func:`choose_api`, with retries, re-login and per-row results.

    from crmbridge.connectors.salesforce import connect
    with connect(project) as sf:
        results = sf.dml("upsert", "Account", rows, keys=keys, external_id_field="Legacy_Id__c")
"""

from crmbridge.connectors.salesforce.results import BULK_THRESHOLD, RowResult, choose_api

__all__ = ["BULK_THRESHOLD", "RowResult", "SalesforceConnector", "choose_api", "connect", "connect_settings"]


def __getattr__(name):
    # The client pulls in simple-salesforce and requests: imported on first use so that
    # `crmbridge --help` and the pure helpers stay light.
    if name in ("SalesforceConnector", "connect", "connect_settings"):
        from crmbridge.connectors.salesforce import client

        return getattr(client, name)
    raise AttributeError(name)
