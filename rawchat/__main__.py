"""``python -m rawchat``: the same as the ``rawchat`` command."""

from .cli import main

raise SystemExit(main())
