"""``python -m extender.cli``: the same as the ``compat-extender`` command."""

from extender.cli import main

raise SystemExit(main())
