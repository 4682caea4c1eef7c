"""The one declarative reader of settings: a section's keys, types, ranges and help are declared
once, on the fields of a frozen dataclass, and every reader (experiment sections, the mapper
section of Timeloop-style input files, architecture template parameters) checks values through
the same `Rule`.

A field declares its rule with `setting(default, help=..., minimum=..., ...)`; the value type
comes from the field's annotation (``int``, ``float``, ``bool``, ``str``, ``tuple[...]``, a
mapping, each optionally ``| None``). Wrong types, non-finite or non-integral numbers, values
outside the range and unknown names are errors naming the file, the field path and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import ConfigError, QuantMapError, unknown_name_fix

T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """What one value may be. ``kind`` is int, float, bool, str, tuple (of ``item``) or dict."""

    kind: type
    optional: bool = False
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None  # exclusive lower bound
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    item: "Rule | None" = None
    example: Any = None
    help: str = ""

    def check(self, value: Any, where: str, source: str | None,
              error: type[QuantMapError] = ConfigError) -> Any:
        """The value, normalized (ints accepted for floats, lists for tuples), or an error."""
        def fail(problem: str, fix: str) -> QuantMapError:
            return error(problem, file=source, field=where, fix=fix)

        example = f" like {self.example!r}" if self.example is not None else ""
        if value is None:
            if self.optional:
                return None
            raise fail("a value is required", f"give a value{example}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise fail(f"{value!r} is not true or false", "write true or false")
            return value
        if self.kind in (int, float):
            return self._number(value, fail, example)
        if self.kind is str:
            if not isinstance(value, str):
                raise fail(f"{value!r} is not text", f"give a text value{example}")
            if self.choices is not None and value not in self.choices:
                raise fail(f"unknown value '{value}'", unknown_name_fix(value, self.choices,
                                                                        "values"))
            if self.pattern is not None and not re.fullmatch(self.pattern, value):
                raise fail(f"'{value}' is not of the form {self.help or self.pattern}",
                           f"give a value{example}")
            return value
        if self.kind is tuple:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise fail(f"{value!r} is not a list", f"give a list{example}")
            item = self.item or Rule(str)
            return tuple(item.check(v, f"{where}[{i}]", source, error)
                         for i, v in enumerate(value))
        if self.kind is dict:
            if not isinstance(value, Mapping):
                raise fail(f"{value!r} is not a map", "give key: value pairs")
            return dict(value)
        raise TypeError(f"no rule for {self.kind}")

    def _number(self, value: Any, fail: Any, example: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"{value!r} is not a number", f"give a number{example}")
        if not math.isfinite(value):
            raise fail(f"{value!r} is not a finite number", f"give a finite number{example}")
        if self.kind is int:
            if not float(value).is_integer():
                raise fail(f"{value!r} is not a whole number", f"give a whole number{example}")
            value = int(value)
        else:
            value = float(value)
        low_ok = self.minimum is None or value >= self.minimum
        above_ok = self.above is None or value > self.above
        high_ok = self.maximum is None or value <= self.maximum
        if not (low_ok and above_ok and high_ok):
            raise fail(f"{value!r} is outside {self.range_text()}",
                       f"give a value within {self.range_text()}")
        return value

    def range_text(self) -> str:
        if self.minimum is not None and self.maximum is not None and self.above is None:
            return f"{self.minimum:g} to {self.maximum:g}"
        low = (f"> {self.above:g}" if self.above is not None
               else f">= {self.minimum:g}" if self.minimum is not None else "")
        high = f"<= {self.maximum:g}" if self.maximum is not None else ""
        return " and ".join(part for part in (low, high) if part) or "any value"


def setting(default: Any = dataclasses.MISSING, *, help: str = "", minimum: float | None = None,
            maximum: float | None = None, above: float | None = None,
            choices: tuple[str, ...] | None = None, pattern: str | None = None,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field carrying its rule's bounds and help (the type comes from the
    annotation)."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "above": above,
                "choices": choices, "pattern": pattern}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _annotation_rule(annotation: Any) -> tuple[type, bool, Rule | None]:
    """(kind, optional, item rule) of a field annotation such as ``int | None``."""
    optional = False
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        annotation = rest[0]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation in (int, float, bool, str):
        return annotation, optional, None
    if origin is tuple:
        item_kind = args[0] if args else str
        return tuple, optional, Rule(item_kind if item_kind in (int, float, bool, str) else str)
    if origin in (dict, Mapping) or annotation in (dict, Mapping) \
            or origin is typing.get_origin(Mapping[str, Any]):
        return dict, optional, None
    raise TypeError(f"unsupported setting type {annotation!r}")


def field_rules(cls: type) -> dict[str, Rule]:
    """The rule of every field of a settings dataclass, from annotations and metadata."""
    hints = typing.get_type_hints(cls)
    rules = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            continue  # a nested section has rules of its own
        kind, optional, item = _annotation_rule(hints[f.name])
        meta = f.metadata
        default = (f.default if f.default is not dataclasses.MISSING
                   else f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else None)
        example = list(default) if isinstance(default, tuple) else default
        item = Rule(item.kind, minimum=meta.get("minimum"), maximum=meta.get("maximum"),
                    choices=meta.get("choices")) if item is not None else None
        bounds_on_item = kind is tuple
        rules[f.name] = Rule(
            kind, optional=optional or default is None,
            minimum=None if bounds_on_item else meta.get("minimum"),
            maximum=None if bounds_on_item else meta.get("maximum"),
            above=meta.get("above"), choices=None if bounds_on_item else meta.get("choices"),
            pattern=meta.get("pattern"), item=item, example=example, help=meta.get("help", ""))
    return rules


def read_settings(cls: type[T], data: Any, section: str, source: str | None,
                  aliases: Mapping[str, str] | None = None,
                  ignored: tuple[str, ...] = (), base: T | None = None) -> T:
    """Build settings ``cls`` from a map, checking every key against the declared rules.
    ``aliases`` maps other spellings (e.g. Timeloop's dashed keys) to field names; keys in
    ``ignored`` are accepted and dropped; ``base`` gives the defaults (else the class's)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"section '{section}' must be a map", file=source, field=section,
                          fix=f"write '{section}:' followed by indented key: value lines")
    rules = field_rules(cls)
    aliases = dict(aliases or {})
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = aliases.get(str(key), str(key))
        if name not in rules:
            if key in ignored:
                continue
            raise ConfigError(f"unknown key '{key}'", file=source, field=f"{section}.{key}",
                              fix=unknown_name_fix(str(key), list(rules),
                                                   f"keys of '{section}'"))
        values[name] = rules[name].check(value, f"{section}.{key}", source)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


def check_settings(settings: Any, section: str, source: str | None) -> None:
    """Check a settings object built in code (defaults, overrides) against its rules."""
    for name, rule in field_rules(type(settings)).items():
        rule.check(getattr(settings, name), f"{section}.{name}", source)
