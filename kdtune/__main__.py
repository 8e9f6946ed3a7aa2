"""``python -m kdtune`` is the ``kdtune`` command."""

import sys

from kdtune.cli import main

sys.exit(main())
