from mia.cli.main import main

raise SystemExit(main())
