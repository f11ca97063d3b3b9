import sys

try:  # a Ctrl-C while Python still imports the CLI: exit 130 like any other, not a traceback and -2
    from crmbridge.cli import main
except KeyboardInterrupt:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exec("")  # noqa: S102 - clears CPython's "uncaught Ctrl-C" mark, see crmbridge.cli.forget_uncaught_ctrl_c
    print("interrupted", file=sys.stderr)
    sys.exit(130)

main()
