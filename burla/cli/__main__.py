"""`python -m burla.cli`: the `burla` command without its console script."""

import sys

from burla.cli import main

sys.exit(main())
