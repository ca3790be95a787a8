"""What an audit section is, and the one list of them.

A section answers one question about the model. It is a small object with

* ``name``: its key in ``results.json`` and its anchor in ``report.html``;
* ``title``: its heading (the report numbers the sections in list order);
* ``check(config, context)``: cheap checks and inputs, run for every section
  before any section runs (a bad argument fails in seconds);
* ``run(config, context) -> dict``: its numbers (JSON-serialisable), cached
  under ``out/cache`` by the section itself (``context.cache``);
* ``summary(result, context)``: its rows ``(question, answer)`` of the
  report's first screen;
* ``figure(result, context)``: a matplotlib figure, or ``None``;
* ``report(page, result, figure)``: its part of the HTML report
  (:class:`~explicable_jax.app.html_report.HtmlReport`).

:data:`SECTIONS` is the list :func:`~explicable_jax.app.audit.audit`, the
report, ``results.json``, the CLI's ``--sections`` choices and the summary all
read. To add a section:

1. write one module beside :mod:`.robustness` that subclasses :class:`Section`
   and ends with ``SECTION = MySection()`` (its numbers cached with
   ``context.cache.json(name, settings, fn)``; the numbers of the sections
   run before it in ``context.results``);
2. add ``my_module.SECTION`` to the tuple in the package's ``__init__`` at
   its place in the report (or, from your own code,
   ``register_section(MySection(), after="detection")``);
3. a setting it needs is a field of
   :class:`~explicable_jax.app.audit.AuditConfig` (the CLI option, its help,
   the equivalent command and the settings table follow from the field);
4. test its numbers against a hand computation, as ``tests/test_audit.py``
   does for the others.
"""
from __future__ import annotations

from typing import Any

from explicable_jax import conventions

__all__ = ["Section", "SECTIONS", "register_section", "section_names", "section"]


class Section:
  """One question of the audit (see the module's docstring for each part).

  Subclass it, set ``name`` and ``title``, and define :meth:`run`,
  :meth:`summary` and :meth:`report` (and :meth:`check`, :meth:`figure`
  where needed).
  """
  name: str = ""
  title: str = ""

  def check(self, config, context) -> None:
    """Cheap checks and inputs before any section runs (default: none)."""

  def run(self, config, context) -> dict:
    """The section's numbers, a JSON-serialisable dict."""
    raise NotImplementedError

  def summary(self, result: dict, context) -> list[tuple[str, str]]:
    """``(question, answer)`` rows for the report's first screen."""
    return []

  def figure(self, result: dict, context) -> Any:
    """A matplotlib figure for the report, or ``None`` (default)."""
    return None

  def report(self, page, result: dict, figure) -> None:
    """Writes the section's body (after its heading) into ``page``."""
    raise NotImplementedError

  def __repr__(self) -> str:
    return f"{type(self).__name__}(name={self.name!r})"


SECTIONS: list[Section] = []
"""The audit's sections, in the report's order."""


def section_names() -> tuple[str, ...]:
  """The names of :data:`SECTIONS`, in order (the CLI's ``--sections`` choices)."""
  return tuple(s.name for s in SECTIONS)


def section(name: str) -> Section:
  """The registered section called ``name``."""
  for s in SECTIONS:
    if s.name == name:
      return s
  raise ValueError(f"sections must name sections of the audit, one of "
                   f"{', '.join(section_names())}; got {name!r}.")


@conventions.boundary()
def register_section(new: Section, *, after: str | None = None,
                     overwrite: bool = False) -> None:
  """Adds ``new`` to :data:`SECTIONS`: at the end, or right after the section
  ``after``; ``overwrite`` replaces a section of the same name in place.

  Raises:
    TypeError: ``new`` is not a :class:`Section`.
    ValueError: its name is empty, not an HTML anchor, or taken (without
      ``overwrite``), or ``after`` names no section.
  """
  import re
  if not isinstance(new, Section):
    raise TypeError(f"section must be an instance of Section; got {type(new).__name__}.")
  if not isinstance(new.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", new.name):
    raise ValueError("a section's name must be lowercase letters, digits or '_' (its key "
                     f"in results.json and its anchor in the report); got {new.name!r}.")
  if new.name in ("summary", "settings"):
    raise ValueError(f"a section cannot be called {new.name!r}: the report has its own.")
  names = section_names()
  if new.name in names:
    if not overwrite:
      raise ValueError(f"name {new.name!r} is already an audit section; pass "
                       "overwrite=True to replace it.")
    SECTIONS[names.index(new.name)] = new
    return
  if after is None:
    SECTIONS.append(new)
    return
  if after not in names:
    raise ValueError(f"after must name a section, one of {', '.join(names)}; got {after!r}.")
  SECTIONS.insert(names.index(after) + 1, new)
