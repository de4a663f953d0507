"""``python -m apipeline ...`` runs the command line, like the ``apipeline`` console script."""

import sys

from apipeline.cli.main import main

sys.exit(main())
