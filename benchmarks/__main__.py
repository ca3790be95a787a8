"""Every benchmark in one go: ``python -m benchmarks``.

Runs each benchmark below in its own process with ``--write`` (each records
its section of ``benchmarks/README.md`` and its headline rows in
``benchmarks/results/``), then rewrites the README's summary table: ours,
the peer measured in the same run, the ratio, the fraction of the machine's
float32 matmul peak, date and machine.

    python -m benchmarks                       # all (about 40 min on 2 CPU cores)
    python -m benchmarks --only rrr mutation   # some
    python -m benchmarks --summary-only        # rebuild the table from results/

Needs the peers: ``pip install -e ".[bench]"`` (torch, captum, autograd). Run
on an otherwise idle machine: the ratios are only as good as the timings.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks import _suite

SUITE = {
    "train_step": [],
    "attribution": [],
    "mutation": [],
    "rrr": [],
    "deliberative": [],
    "attribution_evaluation": [],
    "conv_attempts": ["--flags"],  # what was tried for the convolutions; no headline row
}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--only", nargs="+", choices=sorted(SUITE), default=None)
  p.add_argument("--summary-only", action="store_true")
  args = p.parse_args(argv)
  failed = []
  if not args.summary_only:
    for name in args.only or SUITE:
      t0 = time.time()
      print(f"== benchmarks.{name}", flush=True)
      rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", "--write", *SUITE[name]])
      print(f"== benchmarks.{name}: exit {rc} ({time.time() - t0:.0f} s)", flush=True)
      if rc:
        failed.append(name)
  _suite.write_summary()
  print(_suite.summary_table())
  if failed:
    print(f"failed: {', '.join(failed)}", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
