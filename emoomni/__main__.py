from emoomni.cli import main

raise SystemExit(main())
