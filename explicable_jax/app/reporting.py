"""Small helpers the experiment scripts share: Markdown tables and result files."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence

from explicable_jax import _paths, conventions

__all__ = [
    "cached_arrays", "cached_json", "make_page", "markdown_table", "save_results",
]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
  """A GitHub Markdown table; cells are formatted with ``str``, a ``|`` in a
  cell or column name escaped (``\\|``) so that it stays one cell, a line
  break written as ``<br>``."""
  if isinstance(header, (str, bytes)):
    raise TypeError(f"header must be a sequence of column names; got the string {header!r} "
                    f"(one column? pass [{header!r}]).")
  if isinstance(rows, (str, bytes)):
    raise TypeError(f"rows must be a sequence of rows (each a sequence of cells); got the "
                    f"string {rows!r} (one row? pass [[...]]).")
  rows = list(rows)
  for i, r in enumerate(rows):
    if isinstance(r, (str, bytes)):
      raise TypeError(f"rows[{i}] must be a sequence of cells; got the string {r!r} (one "
                      f"cell? pass [{r!r}]).")
  for i, r in enumerate(rows):
    if not isinstance(r, Iterable):
      raise TypeError(f"rows[{i}] must be a sequence of cells; got {type(r).__name__} {r!r} "
                      f"(one row? pass [[...]]).")
  rows = [list(r) for r in rows]
  for i, r in enumerate(rows):
    if len(r) != len(header):
      raise ValueError(f"rows[{i}] has {len(r)} cells; the header has {len(header)} columns.")
  out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
  out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
  return "\n".join(out)


def _cell(value) -> str:
  """One table cell: ``str(value)`` with its unescaped ``|`` escaped and its
  line breaks as ``<br>`` (either would split the row)."""
  import re
  text = str(value).replace("\r\n", "\n").replace("\n", "<br>")
  return re.sub(r"(?<!\\)\|", r"\\|", text)


def cached_arrays(path: str, fn) -> dict:
  """``fn()``'s dict of arrays, written to ``path`` (``.npz``) atomically, or
  read back from it when it exists: a stage of a script that a rerun skips."""
  import numpy as np
  _check_cache("cached_arrays", path, fn)
  if os.path.exists(path):
    return _paths.load_npz("cached_arrays: the cache", path, what="the arrays fn() returned",
                           fix="Delete it to have fn() recompute it.")
  result = fn()
  if not isinstance(result, Mapping):
    raise TypeError(f"cached_arrays: fn() must return a dict of arrays; got "
                    f"{type(result).__name__}.")
  out = {}
  for k, v in result.items():
    try:
      out[k] = np.asarray(v)
    except ValueError as e:  # a ragged list, say
      raise ValueError(f"cached_arrays: fn() must return a dict of arrays; its {k!r} is not "
                       f"one ({str(e).splitlines()[0][:80]}): keep nested values in a "
                       "cached_json file.") from None
  bad = [k for k, v in out.items() if not (np.issubdtype(v.dtype, np.number)
                                           or v.dtype == bool)]
  if bad:  # an object array is written, but never read back without pickle
    raise TypeError(f"cached_arrays: fn() must return numeric arrays; {bad} are not "
                    f"({', '.join(f'{k}: {out[k].dtype}' for k in bad)}): keep text and "
                    "nested values in a cached_json file.")
  np.savez(path + ".tmp.npz", **out)
  os.replace(path + ".tmp.npz", path)
  return out


def cached_json(path: str, fn) -> dict:
  """``fn()``'s JSON-serialisable dict, written to ``path`` atomically, or read
  back from it when it exists: one resume point of a script (a trained
  model's numbers, a scored configuration)."""
  _check_cache("cached_json", path, fn)
  if os.path.exists(path):
    with open(path) as f:
      try:
        return json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"cached_json: the cache {path!r} is not valid JSON ({e}): delete it "
                         "to recompute that stage.") from None
  out = fn()
  _write_atomic(path, _json_text("cached_json: what fn() returns", out))
  return out


def _json_text(what: str, value) -> str:
  """``value`` as indented JSON (numpy scalars as floats), or a ``TypeError``
  naming ``what``: computed before anything is written, so a value JSON
  cannot hold never leaves a half-written file."""
  try:
    return json.dumps(value, indent=1, default=float)
  except (TypeError, ValueError) as e:
    raise TypeError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts; numpy "
                    f"scalars are converted, arrays are not: .tolist() them); {e}.") from None


def _write_atomic(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def _check_cache(what: str, path, fn) -> None:
  """A cache's file path and the function that computes what it holds."""
  from explicable_jax import _paths
  _paths.check_file("path", path)
  if not callable(fn):
    raise TypeError(f"{what}(path, fn): fn must be a function () -> the dict to cache; got "
                    f"{type(fn).__name__} (a value? pass lambda: value).")


def _nonfinite_keys(value, prefix: str = "") -> list[str]:
  """The keys (dotted) of the non-finite floats in a JSON-like tree."""
  import math
  import numbers
  if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
    return [] if math.isfinite(float(value)) else [prefix or "."]
  if isinstance(value, Mapping):
    return [k for key, v in value.items()
            for k in _nonfinite_keys(v, f"{prefix}.{key}" if prefix else str(key))]
  if isinstance(value, (list, tuple)):
    return [k for i, v in enumerate(value) for k in _nonfinite_keys(v, f"{prefix}[{i}]")]
  return []


@conventions.boundary()
def save_results(out_dir: str, results: dict, tables: Sequence[str] = (), *,
                 echo: bool = True) -> None:
  """Writes ``results.json`` and (when given) ``tables.md`` into ``out_dir``,
  and prints the tables."""
  from explicable_jax import _paths, _validation
  _paths.check_folder("out_dir", out_dir)
  tables = _validation.check_names("tables", tables, of="Markdown tables")
  bad = _nonfinite_keys(results)
  if bad:
    import warnings
    warnings.warn(f"save_results: {', '.join(bad[:10])} {'is' if len(bad) == 1 else 'are'} "
                  "NaN or inf, written as such (Python's json reads them back; strict JSON "
                  "parsers do not).", UserWarning, stacklevel=_validation.user_stacklevel())
  text_json = _json_text("results", results)
  _write_atomic(os.path.join(out_dir, "results.json"), text_json)
  if tables:
    text = "\n\n".join(tables) + "\n"
    _write_atomic(os.path.join(out_dir, "tables.md"), text)
    if echo:
      print(text)


def make_page(template: str, page: str, results: str, build, argv=()) -> str:
  """Fills ``template``'s ``{{NAME}}`` placeholders with ``build(results
  JSON)``'s strings and writes ``page``; with ``--check`` in ``argv`` it writes
  nothing and exits with an error when the committed page differs (so a page
  edited by hand, or not regenerated after a rerun, is caught). Returns the
  text.

  Raises:
    ValueError: ``build`` returns anything but a mapping of placeholder name
      to string, or the template keeps a placeholder it does not fill.
  """
  with open(results) as f:
    values = build(json.load(f))
  if not isinstance(values, Mapping):
    raise ValueError(f"build must return a mapping of placeholder name to text; it returned "
                     f"{type(values).__name__}.")
  with open(template) as f:
    text = f.read()
  for k, v in values.items():
    if not isinstance(v, str):
      raise ValueError(
          f"build must return text for every placeholder; it returned {type(v).__name__} "
          f"{v!r:.60} for {{{{{k}}}}}: format it (str(...), a table from markdown_table).")
    text = text.replace("{{" + k + "}}", v)
  if "{{" in text:
    start = text.index("{{")
    name = text[start:text.find("}}", start) + 2] if "}}" in text[start:] else text[start:][:40]
    raise ValueError(f"the template {template!r} keeps the placeholder {name}, which build "
                     f"does not fill (it fills {sorted(values)}): add it to build's result.")
  if "--check" in argv:
    with open(page) as f:
      if f.read() != text:
        raise SystemExit(f"{page} differs from what {results} gives; run its make_page.py")
    return text
  with open(page, "w") as f:
    f.write(text)
  return text

