"""Entry point: `python -m controller.push` (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
