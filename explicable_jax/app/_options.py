"""A command's settings as one frozen dataclass: the API, the CLI and the printed
equivalent command all read it.

Each field is made by :func:`setting`, which stores in the field's metadata
what the command line needs (the help text, the flag when it is not
``--field-name``, how to parse the value, the valid names). Then
:func:`add_arguments` builds the argparse options from the fields,
:func:`from_args` builds the dataclass from the parsed arguments, and
:func:`to_argv` writes a configuration back as command-line arguments, so a
default or a help text is written once, beside its field.

Lists are comma-separated on the command line (``--rates 0.005,0.01``); numbers
may be written as fractions (``--fgsm 1/255,2/255``); names that come from a
registry (``choices=mutation.operator_names``) are read when the parser is
built, so a name registered before that is accepted.
"""
from __future__ import annotations

import argparse
import dataclasses
import fractions
from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "add_arguments", "cli_fields", "flag_of", "format_value", "from_args", "list_parser",
    "names", "overridden", "scalar_parser", "setting", "to_argv",
]


def setting(default: Any, help: str, *, flag: str | None = None,  # noqa: A002
            items: type | None = None, parse: Callable | None = None,
            choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
            group: str | None = None, metavar: str | None = None) -> Any:
  """A dataclass field with its command-line option.

  Args:
    default: the default value (immutable: a tuple for a list).
    help: the option's help; ``(default: ...)`` is appended from ``default``.
    flag: the option (default: ``--`` and the field's name with dashes).
    items: for a list setting, the type of its comma-separated items
      (``float``, ``int`` or ``str``).
    parse: for a single value, its type (default: the default's type, else
      ``str``).
    choices: the valid names, or a function returning them (a registry's
      names, read when the parser is built).
    group: fields of one group form a required mutually exclusive group
      (``--dataset`` / ``--data``).
    metavar: the value's name in the usage line.
  """
  return dataclasses.field(default=default, metadata={
      "help": help, "flag": flag, "items": items, "parse": parse, "choices": choices,
      "group": group, "metavar": metavar})


def names(choices) -> tuple[str, ...]:
  """The valid names of a setting's ``choices`` (called when a function)."""
  if choices is None:
    return ()
  return tuple(choices() if callable(choices) else choices)


def cli_fields(cls) -> list[dataclasses.Field]:
  """The fields of ``cls`` made by :func:`setting`."""
  return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def flag_of(field: dataclasses.Field) -> str:
  return field.metadata["flag"] or "--" + field.name.replace("_", "-")


def _number(kind: type, text: str):
  """``kind(text)``; a float may be a fraction ``a/b``."""
  text = text.strip()
  if kind is float and "/" in text:
    a, b = text.split("/", 1)
    return float(a) / float(b)
  return kind(text)


def list_parser(kind: type, what: str, choices=None) -> Callable[[str], tuple]:
  """An argparse ``type`` for a comma-separated list of ``kind``."""
  def parse(text: str) -> tuple:
    items = [v.strip() for v in text.split(",") if v.strip()]
    valid = names(choices)
    try:
      values = tuple(_number(kind, v) for v in items)
    except (ValueError, ZeroDivisionError):
      values = None
    if values is None or (valid and (not values or any(v not in valid for v in values))):
      expected = ", ".join(valid) if valid else what
      raise argparse.ArgumentTypeError(
          f"expected a comma-separated list of {expected}; got {text!r}")
    return values
  return parse


def scalar_parser(kind: type) -> Callable[[str], Any]:
  """An argparse ``type`` for one ``kind`` (floats may be fractions ``a/b``)."""
  def parse(text: str):
    try:
      return _number(kind, text)
    except (ValueError, ZeroDivisionError):
      raise argparse.ArgumentTypeError(
          f"expected {'a number' if kind is float else 'an integer'}; got {text!r}") from None
  parse.__name__ = kind.__name__
  return parse


def format_value(value) -> str:
  """A value as the command line writes it: lists comma-separated, floats
  exactly (``0.005``, ``1/255``)."""
  if isinstance(value, (tuple, list)):
    return ",".join(format_value(v) for v in value)
  if isinstance(value, float):
    text = repr(value)
    if len(text) > 8:
      f = fractions.Fraction(value).limit_denominator(10000)
      if f.denominator > 1 and float(f.numerator) / f.denominator == value:
        return f"{f.numerator}/{f.denominator}"
    return text
  return str(value)


def _expressible(value) -> bool:
  """Whether the command line can say ``value`` (a matrix or a model in
  memory cannot)."""
  if isinstance(value, (tuple, list)):
    return all(_expressible(v) for v in value)
  return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
  """Adds an option for every :func:`setting` field of ``cls``."""
  groups: dict[str, Any] = {}
  for f in cli_fields(cls):
    m = f.metadata
    help_text = m["help"].replace("%", "%%")  # argparse formats help with %
    valid = names(m["choices"])
    if f.default is not None and f.default != ():
      help_text += f" (default: {format_value(f.default)})"
    kwargs: dict[str, Any] = {"dest": f.name, "default": f.default, "help": help_text}
    if m["metavar"]:
      kwargs["metavar"] = m["metavar"]
    if m["items"] is not None:
      what = {float: "numbers", int: "integers", str: "names"}[m["items"]]
      kwargs["type"] = list_parser(m["items"], what, m["choices"])
      if valid:
        kwargs["help"] = help_text + f"; from {', '.join(valid)}"
    else:
      kind = m["parse"] or (type(f.default) if f.default is not None else str)
      if kind in (int, float):
        kwargs["type"] = scalar_parser(kind)
      if valid:
        kwargs["choices"] = valid
    target = parser
    if m["group"]:
      if m["group"] not in groups:
        groups[m["group"]] = parser.add_mutually_exclusive_group(required=True)
      target = groups[m["group"]]
      kwargs.pop("default")
    target.add_argument(flag_of(f), **kwargs)


def from_args(cls, args: argparse.Namespace):
  """``cls`` from parsed arguments (its :func:`setting` fields)."""
  return cls(**{f.name: getattr(args, f.name) for f in cli_fields(cls)
                if hasattr(args, f.name)})


def to_argv(config, *, skip: Sequence[str] = ()) -> list[str]:
  """``config`` as command-line arguments: every setting that is not ``None``
  or empty and that the command line can express (a matrix or a model in
  memory cannot), except those in ``skip``."""
  argv = []
  for f in cli_fields(type(config)):
    value = getattr(config, f.name)
    if f.name in skip or not _expressible(value) or value == ():
      continue
    argv += [flag_of(f), format_value(value)]
  return argv


def overridden(config, overrides: dict, *, what: str, kind: type | None = None):
  """``dataclasses.replace(config, **overrides)``, with a ``TypeError`` that
  names an unknown setting and lists the known ones; ``config`` ``None`` is
  ``kind()``, and anything but an instance of ``kind`` (a dict of settings)
  is refused with the two ways to pass them."""
  if kind is not None:
    if config is None:
      config = kind()
    elif not isinstance(config, kind):
      raise TypeError(
          f"config must be a {kind.__name__} (or None); got {type(config).__name__}: pass "
          f"the settings as keywords, {what[:-1]}..., name=value), or build the config, "
          f"{kind.__name__}(**settings).")
  known = {f.name for f in dataclasses.fields(config)}
  bad = sorted(set(overrides) - known)
  if bad:
    raise TypeError(f"{what} got unknown settings {', '.join(bad)}; the settings of "
                    f"{type(config).__name__} are {', '.join(sorted(known))}.")
  return dataclasses.replace(config, **overrides) if overrides else config
