"""The summary table of ``python -m benchmarks``.

Each benchmark's ``--write`` records its section of ``benchmarks/README.md``
and its headline rows in ``benchmarks/results/<name>.json`` (ours, the peer
measured in the same run, their ratio, the fraction of the machine's float32
matmul peak where known, date and machine); :func:`write_summary` turns every
recorded JSON into the README's summary table.
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import platform

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def machine() -> str:
  """One line naming the machine the numbers came from."""
  return (f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.default_backend()}: {jax.devices()[0].device_kind})")


def record(name: str, rows: list[dict]) -> str:
  """Writes ``rows`` (each: ``benchmark``, ``unit``, ``ours``, ``peer``,
  ``peer_name``, optional ``peak_fraction``; higher is better for ``ours``
  and ``peer``) to ``results/<name>.json``; returns its path."""
  for r in rows:
    missing = {"benchmark", "unit", "ours", "peer", "peer_name"} - set(r)
    if missing:
      raise ValueError(f"rows need {sorted(missing)}; got {sorted(r)}.")
  os.makedirs(RESULTS, exist_ok=True)
  path = os.path.join(RESULTS, f"{name}.json")
  with open(path, "w") as f:
    json.dump({"name": name, "date": datetime.date.today().isoformat(), "machine": machine(),
               "rows": rows}, f, indent=1)
  return path


def summary_table() -> str:
  """The Markdown summary of every recorded benchmark."""
  lines = ["| benchmark | ours | peer (same run) | ratio | % of matmul peak | date | machine |",
           "|---|---|---|---|---|---|---|"]
  for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
    with open(path) as f:
      rec = json.load(f)
    for r in rec["rows"]:
      ratio = r["ours"] / r["peer"] if r["peer"] else float("nan")
      frac = r.get("peak_fraction")
      lines.append(
          f"| {r['benchmark']} | {r['ours']:.4g} {r['unit']} | {r['peer']:.4g} {r['unit']} "
          f"({r['peer_name']}) | {ratio:.2f}x | "
          f"{'n/a' if frac is None else f'{100 * frac:.0f}%'} | {rec['date']} | {rec['machine']} |")
  return "\n".join(lines)


def write_summary() -> None:
  from benchmarks.attribution import write_readme_section
  write_readme_section("summary", summary_table())
