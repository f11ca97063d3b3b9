"""The ``crmbridge`` command line: a thin click layer over the library.

Sub-commands are imported lazily (their modules pull in pandas, great_expectations ...), so
``crmbridge --help`` stays instant. Library errors become exit codes in one place, ``main``.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from crmbridge import __version__
from crmbridge.clikit import AppContext

# name -> (module, attribute, one-line summary shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("crmbridge.templates.commands", "init", "Create a new project folder with templates."),
    "demo": ("crmbridge.migrations.demo", "demo", "Create a sample project and run a full migration into the sandbox."),
    "extract": ("crmbridge.migrations.extract_cmd", "extract", "Extract the configured legacy sources into a new run."),
    "profile": ("crmbridge.migrations.extract_cmd", "profile", "Profile the extracted entities of a run."),
    "validate": ("crmbridge.validation.commands", "validate", "Validate a run against the agreed customer definition."),
    "resolve": ("crmbridge.mappings.match_commands", "resolve", "Merge the rows of one real company into one golden record."),
    "matches": ("crmbridge.mappings.match_commands", "matches", "Review possible duplicates: list, accept, reject."),
    "map": ("crmbridge.mappings.commands", "map_cmd", "Check mappings and turn a validated run into load files."),
    "load": ("crmbridge.migrations.commands", "load", "Load a mapped run into Salesforce (upsert on external IDs)."),
    "migrate": ("crmbridge.migrations.commands", "migrate", "Extract, validate, map, load and reconcile in one go."),
    "reconcile": ("crmbridge.migrations.commands", "reconcile", "Compare source, ledger and what the org holds."),
    "rollback": ("crmbridge.migrations.commands", "rollback", "Undo a run: delete what it created, restore what it updated."),
    "runs": ("crmbridge.migrations.commands", "runs", "List runs or show one run's per-object counts."),
    "sync": ("crmbridge.sync.commands", "sync", "Two-way sync between the ERP and Salesforce."),
    "schedule": ("crmbridge.sync.commands", "schedule", "Write a cron, systemd or Airflow definition for the nightly sync."),
    "readiness": ("crmbridge.readiness.commands", "readiness", "Evaluate cutover readiness gates: GO or NO-GO."),
    "kpi": ("crmbridge.readiness.commands", "kpi", "Baseline customer KPIs: snapshot and compare."),
    "sandbox": ("crmbridge.sandbox.commands", "sandbox", "Run the local Salesforce sandbox org."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module, attr, _ = spec
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(module.rsplit(".", 1)[0]):
                return _unavailable(name, spec[2])
            raise
        return getattr(mod, attr)

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command '{name}'.{hint} (`crmbridge --help` lists the commands)")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        rows = [(n, COMMANDS[n][2]) for n in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str, summary: str) -> click.Command:
    @click.command(name=name, help=summary)
    def _cmd():
        raise click.UsageError(f"'{name}' is not available in this build")

    return _cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", "project_dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Project folder holding crmbridge.yml.")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable summary as JSON.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="crmbridge")
@click.pass_context
def cli(ctx: click.Context, project_dir: str, as_json: bool, verbose: int) -> None:
    """crmbridge: migrate legacy customer data into Salesforce and keep it in step with the ERP.

    \b
    Example:
      crmbridge demo ./demo-project
      crmbridge --project ./acme migrate
    """
    ctx.obj = AppContext(project_dir=project_dir, as_json=as_json, verbose=verbose)
    _setup_logging(verbose)


def _setup_logging(verbose: int) -> None:
    from crmbridge.secretref import RedactingFilter

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger("crmbridge")
    root.setLevel(level)
    if not any(getattr(h, "_crmbridge", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h._crmbridge = True  # type: ignore[attr-defined]
        h.addFilter(RedactingFilter())
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn errors into exit codes (2 usage, 1 failure, 130 Ctrl-C)."""
    verbose = argv is not None and any(a in ("-v", "-vv", "--verbose") for a in argv)
    try:
        _main(argv, verbose)
    except KeyboardInterrupt:  # a second Ctrl-C while the first, or an error, was being reported
        _interrupted(argv, "interrupted")


def _main(argv, verbose: bool) -> None:
    from crmbridge.errors import CrmbridgeError
    from crmbridge.secretref import redact

    try:
        rv = cli.main(args=argv, prog_name="crmbridge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns a Ctrl-C outside a run into Abort
            _interrupted(argv, _first_report(exc.__cause__, redact))
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except CrmbridgeError as exc:
        if exc.exit_code == 130:
            _interrupted(argv, f"error: {redact(exc)}")
        click.echo(f"error: {redact(exc)}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        _interrupted(argv, _first_report(exc, redact))
    except Exception as exc:  # a bug: say so plainly, never leak secrets
        if verbose or "-v" in sys.argv or "-vv" in sys.argv:
            import traceback

            click.echo(redact("".join(traceback.format_exception(exc))), err=True)
        click.echo(f"internal error: {type(exc).__name__}: {redact(exc)} (run with -v for the traceback)", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


def _first_report(exc: BaseException, redact) -> str:
    """The report of the first Ctrl-C (its run, the command that resumes it) when a second one, pressed while
    the first unwound (the lock released, the progress closed), replaced it; else plain ``interrupted``."""
    from crmbridge.errors import Interrupted

    seen = exc.__context__
    while seen is not None and not isinstance(seen, Interrupted):
        seen = seen.__context__
    return f"error: {redact(seen)}" if seen is not None else "interrupted"


def _interrupted(argv, message: str):
    """Exit 130 for a Ctrl-C. Ctrl-C is ignored from here on in the process's own entry point: Python's
    finalisation puts back the default action of any Python-level SIGINT handler (not of SIG_IGN), so a
    Ctrl-C pressed while the interpreter shuts down would kill it by the signal (exit -2)."""
    if argv is None:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    forget_uncaught_ctrl_c()
    click.echo(message, err=True)
    sys.exit(130)


def forget_uncaught_ctrl_c() -> None:
    """Clear CPython's "KeyboardInterrupt left uncaught" mark, so that ``sys.exit(130)`` is the exit status.

    ``exec``/``eval`` of a *string* (Python/pythonrun.c ``run_eval_code_obj``) sets that mark when the code
    ends in KeyboardInterrupt, even if a caller then catches it: a Ctrl-C that lands while dataclasses,
    namedtuple or SQLAlchemy build a function from source during an import. Under ``python -m``, Python's
    ``Py_RunMain`` then ends the process by SIGINT at its exit (-2), whatever ``sys.exit`` said and whatever
    SIGINT's handler is. Every string ``exec`` clears the mark first, so an empty one clears it."""
    exec("")  # noqa: S102 - an empty string: nothing runs


if __name__ == "__main__":  # pragma: no cover
    main()
