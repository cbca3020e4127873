"""`python -m leadhub.cli`: the same as the `leadhub` command."""

import sys

from leadhub.cli import main

sys.exit(main())
