"""``python -m wrapper.map``: the spelling of ``quantmap map`` that the design card names."""

import sys

from ..commands.map import main

sys.exit(main(prog="python -m wrapper.map"))
