"""``python -m cosemcast``: the same as the ``cosemcast`` command."""

from cosemcast.cli.main import main

raise SystemExit(main())
