"""``python -m drifthouse``: the same as the ``drifthouse`` command."""

from __future__ import annotations

import sys

from drifthouse.cli import main

if __name__ == "__main__":
    sys.exit(main())
