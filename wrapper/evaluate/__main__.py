"""``python -m wrapper.evaluate``: the spelling of ``quantmap evaluate`` that the design card names."""

import sys

from ..commands.evaluate import main

sys.exit(main(prog="python -m wrapper.evaluate"))
