"""``python -m extender.cli``: the same as the ``compat-extender`` command."""

from extender.cli.main import main

raise SystemExit(main())
