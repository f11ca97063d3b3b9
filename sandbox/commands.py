"""``crmbridge sandbox``: run the local Salesforce sandbox org."""

from __future__ import annotations

import json
import signal
import threading

import click

from crmbridge.clikit import app, json_option


@click.group("sandbox", context_settings={"help_option_names": ["-h", "--help"]})
def sandbox() -> None:
    """Run the local Salesforce sandbox org.

    \b
    Example:
      crmbridge sandbox serve --db .crmbridge/sandbox.db --port 8443
    """


@sandbox.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, type=int, help="Port (0: any free port).")
@click.option("--db", "db", default=".crmbridge/sandbox.db", show_default=True, type=click.Path(dir_okay=False),
              help="SQLite file of the org (created and seeded when new).")
@click.option("--schema", "schema_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Extra objects/fields (YAML, same format as the default schema). Repeatable.")
@click.option("--username", default="admin@sandbox.crmbridge", show_default=True, help="Admin user name.")
@click.option("--password", default="sandbox", show_default=True, help="Admin password.")
@click.option("--jwt-app", "jwt_apps", multiple=True, metavar="CLIENT_ID=CERT.pem",
              help="Register a connected app for the JWT bearer flow. Repeatable.")
@click.option("--limit-after", type=int, default=None, help="Fault: answer REQUEST_LIMIT_EXCEEDED after N calls.")
@click.option("--limit-calls", type=int, default=None, help="Fault: ... for N calls (default: until cleared).")
@click.option("--error-rate", type=float, default=0.0, help="Fault: fraction of API calls answered 503.")
@click.option("--lock-rate", type=float, default=0.0, help="Fault: fraction of row writes failing UNABLE_TO_LOCK_ROW.")
@click.option("--session-seconds", type=float, default=None, help="Fault: sessions expire after N seconds.")
@click.option("--latency-ms", type=int, default=0, help="Fault: added latency per API call.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fault randomness.")
@click.option("-v", "--verbose", is_flag=True, help="Log every request to stderr.")
@json_option
def serve(host, port, db, schema_files, username, password, jwt_apps, limit_after, limit_calls, error_rate,
          lock_rate, session_seconds, latency_ms, seed, verbose) -> None:
    """Serve the sandbox org over HTTPS until interrupted (SIGINT/SIGTERM).

    With --json the first stdout line is a JSON object with instance_url, username, password,
    ca_bundle, db and admin_url.

    \b
    Example:
      crmbridge sandbox serve --json --port 0 --db /tmp/org.db --lock-rate 0.05 --seed 7
    """
    from crmbridge.errors import UsageError
    from crmbridge.sandbox.faults import Faults
    from crmbridge.sandbox.server import start_sandbox

    apps = []
    for spec in jwt_apps:
        client_id, sep, cert = spec.partition("=")
        if not sep or not client_id:
            raise UsageError(f"--jwt-app {spec!r}: write it as CLIENT_ID=path/to/cert.pem")
        try:
            apps.append((client_id, open(cert, encoding="utf-8").read()))
        except OSError as e:
            raise UsageError(f"--jwt-app {spec!r}: cannot read {cert}: {e.strerror}") from None
    faults = Faults()
    faults.set(request_limit_after=limit_after, request_limit_calls=limit_calls, error_503_rate=error_rate,
               lock_rate=lock_rate, session_seconds=session_seconds, latency_ms=latency_ms, seed=seed)
    try:
        handle = start_sandbox(db, host=host, port=port, schema_files=list(schema_files), username=username,
                               password=password, faults=faults, verbose=verbose)
    except (ValueError, OSError) as e:
        raise UsageError(f"sandbox serve: {e}") from None
    try:
        for client_id, cert in apps:
            handle.register_app(client_id, certificate=cert)
    except ValueError as e:
        handle.stop()
        raise UsageError(f"--jwt-app: not a PEM certificate or public key: {e}") from None
    info = handle.as_dict()
    if app().as_json:
        click.echo(json.dumps(info), nl=True)
    else:
        click.echo(f"sandbox org at {info['instance_url']} (user {info['username']}, CA bundle {info['ca_bundle']})")
        click.echo("press Ctrl+C to stop")
    import sys

    sys.stdout.flush()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    handle.stop()
