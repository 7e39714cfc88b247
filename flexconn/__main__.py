"""``python -m flexconn``: the same command line as the ``flexconn`` script."""

import sys

from flexconn.cli import main

sys.exit(main())
