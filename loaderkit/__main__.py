from loaderkit.cli import main

raise SystemExit(main())
