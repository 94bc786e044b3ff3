from edgeportrait.cli import main

raise SystemExit(main())
