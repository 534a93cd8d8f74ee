"""`python -m labctl VERB`: the lab's verbs, as the Makefile calls them."""

import sys

from labctl.cli import main

sys.exit(main())
