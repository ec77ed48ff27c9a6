"""``python -m gradpath``: the same command line as the ``gradpath`` script."""

import sys

from .cli import main

sys.exit(main())
