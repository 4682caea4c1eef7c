"""Error types shared by every part of QuantMap.

Every user-facing failure names the file, the field and the fix, so a CLI can print one line and
exit with code 2 instead of a traceback.
"""

from __future__ import annotations

import copy
import difflib
import sys
from typing import Iterable


class QuantMapError(Exception):
    """A user-facing error: where (file, field), what went wrong, and how to fix it."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 fix: str | None = None) -> None:
        self.file = file
        self.field = field
        self.fix = fix
        self.problem = message
        super().__init__(self._render())

    def located(self, file: str) -> QuantMapError:
        """This error naming ``file`` where it names none: a part that cannot know where its
        input came from (a model, a data set) leaves the file to the command that read it."""
        if self.file is not None:
            return self
        located = copy.copy(self)
        located.file = file
        located.args = (located._render(),)
        return located

    def _render(self) -> str:
        where = ": ".join(part for part in (self.file, self.field) if part)
        text = f"{where}: {self.problem}" if where else self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class SpecError(QuantMapError):
    """An architecture, component, constraint or problem specification is invalid."""


class MappingError(QuantMapError):
    """A mapping does not parse or does not fit its architecture and problem."""


class PrecisionError(QuantMapError):
    """A bit width cannot be realized on the hardware (e.g. wider than a word, or <= 0)."""


class BackendError(QuantMapError):
    """An external tool (timeloop-model, timeloop-mapper, accelergy) failed."""

    def __init__(self, message: str, *, log_tail: str = "", **kwargs: object) -> None:
        self.log_tail = log_tail
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class ConfigError(QuantMapError):
    """An experiment configuration or command-line option is invalid."""


class DataError(QuantMapError):
    """A data set folder is missing or malformed."""


EXIT_USER_ERROR = 2


def report_error(exc: QuantMapError) -> int:
    """Print a user-facing error as one line on stderr; return the CLI exit code (2)."""
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_USER_ERROR


def require_keys(data: object, keys: Iterable[str], prefix: str, source: str | None,
                 error: type[QuantMapError] = SpecError) -> None:
    """Raise ``error`` for the first of ``keys`` missing from the map ``data`` (at ``prefix``)."""
    for key in keys:
        if key not in data:  # type: ignore[operator]
            raise error(f"missing key '{key}'", file=source, field=f"{prefix}.{key}",
                        fix=f"add '{key}:' under {prefix}")


def closest(name: str, options: Iterable[str]) -> str | None:
    """Return the option most similar to ``name`` (for "did you mean" hints), or None."""
    options = list(options)
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.4)
    if match:
        return match[0]
    lowered = {o.lower(): o for o in options}
    return lowered.get(name.lower())


def unknown_name_fix(name: str, options: Iterable[str], what: str) -> str:
    """A fix text for an unknown name: the closest valid one if any, else the valid choices."""
    options = list(options)
    guess = closest(name, options)
    if guess is not None:
        return f"did you mean '{guess}'? valid {what}: {', '.join(options)}"
    return f"use one of the {what}: {', '.join(options)}"
