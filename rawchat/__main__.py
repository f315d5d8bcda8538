"""``python -m rawchat``: the same as the ``rawchat`` command."""

from .cli.main import main

raise SystemExit(main())
