from cicd_cli.app import main

main()
