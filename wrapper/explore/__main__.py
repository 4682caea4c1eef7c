"""``python -m wrapper.explore``: the spelling of ``quantmap explore`` that the design card names."""

import sys

from ..commands.explore import main

sys.exit(main(prog="python -m wrapper.explore"))
