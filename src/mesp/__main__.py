from mesp.cli import main

raise SystemExit(main())
