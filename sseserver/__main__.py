from sseserver.cli import main

raise SystemExit(main())
