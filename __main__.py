import sys

try:  # a Ctrl-C while Python still imports the CLI: exit 130 like any other, not a traceback and -2
    from crmbridge.cli import main
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)

main()
