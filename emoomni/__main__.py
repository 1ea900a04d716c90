from emoomni.apps.cli import main

raise SystemExit(main())
