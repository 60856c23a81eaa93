"""``python -m audiocore`` is the ``audiocore`` command."""

import sys

from audiocore.cli import main

if __name__ == "__main__":
    sys.exit(main())
