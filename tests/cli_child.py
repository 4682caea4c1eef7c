"""The child side of the hostile-input test: runs one CLI's ``main(argv)`` with its output
redirected to files and exits with the CLI's exit code.

It lives in its own module so a multiprocessing fork server can preload it with the CLI modules:
every case then forks from that clean, single-threaded server process. Forking the pytest process
itself is not safe: once other tests have run torch's OpenMP thread pool there, a forked child that
touches torch again can block forever on a lock no thread of the child will ever release.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from wrapper.commands.main import VERBS

ACCEPTED_EXIT = 99  # the explore CLI accepted its config and would start the search
MODULES = {verb: f"wrapper.commands.{module}" for verb, (module, _) in VERBS.items()}


def run_cli(argv: list[str], out: str, err: str) -> None:
    """Run one CLI; never returns. A crash shows up as a traceback, as it would on a terminal."""
    code: object = 98
    try:
        sys.stdout, sys.stderr = open(out, "w"), open(err, "w")
        module = importlib.import_module(MODULES[argv[0]])
        if argv[0] == "explore":
            def accept(*args: object, **kwargs: object) -> None:
                os._exit(ACCEPTED_EXIT)
            module.run_experiment = accept  # type: ignore[attr-defined]
        code = module.main(argv[1:])  # type: ignore[attr-defined]
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 97)
