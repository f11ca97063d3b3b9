from crmbridge.cli import main

main()
