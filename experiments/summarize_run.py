"""Prints a training run's per-epoch evaluation from its metrics.jsonl.

    python experiments/summarize_run.py WORKDIR_OR_METRICS_JSONL
"""
import json
import os
import sys


def main(path: str) -> None:
  if os.path.isdir(path):
    path = os.path.join(path, "metrics.jsonl")
  rows, resumed, last = [], [], {}
  for line in open(path):
    rec = json.loads(line)
    if rec.get("event") == "resumed":
      resumed.append(rec["step"])
    elif "eval_accuracy" in rec:
      rows.append(rec)
    else:
      last = rec
  print("| epoch | step | validation accuracy | validation loss |")
  print("|---|---|---|---|")
  for r in rows:
    print(f"| {r['epoch']} | {r['step']} | {r['eval_accuracy']:.4f} | {r['eval_loss']:.4f} |")
  print(f"\nlast logged step: {last.get('step')}; resumed at steps: {resumed}")


if __name__ == "__main__":
  main(sys.argv[1])
