from raddiff_training.cli import main

raise SystemExit(main())
