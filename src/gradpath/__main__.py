"""``python -m gradpath``: the same command line as the ``gradpath`` script."""

import sys

from .cli import main

if __name__ == "__main__":  # importing the module (e.g. pkgutil.walk_packages) runs nothing
    sys.exit(main())
