"""``python -m wrapper.commands VERB ...``: the ``quantmap`` console script without installing."""

import sys

from .main import main

sys.exit(main())
