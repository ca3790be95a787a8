"""Writes experiments/results/audit_resnet20.md from the audit's results.json
(``explicable-jax audit`` on the committed ResNet-20) and the numbers of the
experiment pages it can be set against; ``--check`` only compares.

    python experiments/audit_resnet20/make_page.py [--check]
"""
from __future__ import annotations

import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, ROOT)

from explicable_jax.app import reporting  # noqa: E402

RESULTS = os.path.join(ROOT, "experiments", "results", "audit_resnet20", "results.json")
DETECTION = os.path.join(ROOT, "experiments", "results", "error_detection_cifar10",
                         "results.json")
TRAINING = os.path.join(ROOT, "experiments", "checkpoints", "resnet20_cifar10", "result.json")


def comparison_rows(audit: dict, detection: dict, training: dict) -> list[list]:
  """(quantity, experiment page, audit, same settings?) rows."""
  t = audit["detection"]["table"]
  d = detection["ours"]["test"]
  f = "{:.4f}".format
  acc_page = training["test"]["accuracy"] if "test" in training else detection["accuracy"]["test"]
  rows = [["test-half accuracy", f(acc_page) + " (resnet20_cifar10.md)",
           f(audit["mistakes"]["accuracy"]), "yes"]]
  for key, name in (("auroc", "AUROC"), ("aurc", "AURC"), ("e_aurc", "E-AURC"),
                    ("selective_accuracy@0.9", "selective accuracy at 90% coverage")):
    rows.append([f"MSP {name}", f(d["MSP"][key]) + " (error_detection_cifar10.md)",
                 f(t["MSP"][key]), "yes"])
  m = detection["mutants"]
  rows.append(["LCR AUROC", f"{f(d['LCR']['auroc'])} ({m['count']} {m['operator']} mutants at "
               f"rate {m['rate']})",
               f"{f(t['LCR']['auroc'])} ({audit['detection']['mutants']} "
               f"{audit['detection']['operator']} mutants at rate {audit['detection']['rate']})",
               "no: 20 of its own mutants, not the page's 100"])
  rows.append(["conductance detector AUROC", f(d["conductance"]["auroc"]) + " (trained on the "
               "50000 training images)", f(t["conductance detector"]["auroc"]) +
               f" (trained on {audit['detection']['detector_trained_on']})",
               "no: fewer training images"])
  return rows


def mistakes_against_chance(m) -> str:
  """Each mistake's W[y, pred] minus the mean W[y, j] over the wrong classes
  j of its true class (the chance baseline), from the audit's confusion and
  similarity matrices, with a bootstrap over the mistakes."""
  import jax
  import numpy as np
  from explicable_jax import stats
  conf, w = np.asarray(m["confusion"]), np.asarray(m["similarity"], np.float64)
  k = len(w)
  off = (w.sum(1) - np.diag(w)) / (k - 1)
  y, p = np.nonzero(conf * (1 - np.eye(k, dtype=int)))
  counts = conf[y, p]
  d = np.repeat(w[y, p] - off[y], counts)
  b = stats.paired_bootstrap(jax.random.key(0), np.mean, [d])
  word = stats.verdict(b["p_value"], b["estimate"], higher="above chance",
                       lower="below chance")
  return (f"Each mistake's W[y, pred] minus its true class's chance value, over the {d.size} "
          f"mistakes: {b['estimate']:+.3f} [95% CI {b['low']:+.3f}, {b['high']:+.3f}] (bootstrap "
          f"over the mistakes, 1000 resamples, p = {b['p_value']:.2g}): {word}. The interval "
          "is over the mistakes this model made, not over retrainings.")


def build(audit: dict) -> dict[str, str]:
  with open(DETECTION) as fh:
    detection = json.load(fh)
  with open(TRAINING) as fh:
    training = json.load(fh)
  s = audit["settings"]
  summary = reporting.markdown_table(["question", "answer"],
                                     [[q, a] for q, a in audit["summary"].items()])
  cmp_ = reporting.markdown_table(["quantity", "experiment page", "this audit",
                                   "same settings?"],
                                  comparison_rows(audit, detection, training))
  t = audit["detection"]["table"]
  det_rows = []
  for n, r in t.items():
    c = audit["detection"]["auroc_minus_msp"].get(n)
    a = audit["detection"]["at_coverage"][n]["test"]
    det_rows.append([n, f"{r['auroc']:.3f}", "(baseline)" if c is None else
                     f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]",
                     f"{r['aurc']:.4f}", f"{a['coverage']:.3f}", f"{a['risk']:.4f}"])
  det = reporting.markdown_table(["score", "AUROC", "AUROC - MSP [95% CI]", "AURC",
                                  "test coverage at the 90% validation threshold",
                                  "test risk there"], det_rows)
  rob = reporting.markdown_table(["perturbation", "strength", "accuracy"],
                                 [[r["perturbation"], r["strength"], f"{r['accuracy']:.4f}"]
                                  for r in audit["robustness"]["rows"]])
  m = audit["mistakes"]
  conf = reporting.markdown_table(["true", "predicted", "count", "W (EKL)"],
                                  [[c["true"], c["predicted"], c["count"], f"{c['similarity']:.3f}"]
                                   for c in m["frequent_confusions"]])
  mistake_test = mistakes_against_chance(m)
  trials = ", ".join(f"{tr['rate']}: {tr['validation_auroc']:.3f}"
                     for tr in audit["detection"]["rate_trials"] if tr["validation_auroc"])
  import re
  with open(os.path.join(os.path.dirname(RESULTS), "run.log")) as fh:
    fresh = float(re.search(r"report written to .* \((\d+) s\)", fh.read()).group(1))
  return {"DATE": audit["date"], "COMMAND": audit["command"],
          "WALL": f"{fresh:.0f} s ({fresh / 60:.1f} min)",
          "RERUN": f"{audit['wall_seconds']:.0f} s",
          "SUMMARY": summary, "COMPARISON": cmp_, "DETECTION": det, "ROBUSTNESS": rob,
          "CONFUSIONS": conf, "MEAN_W": f"{m['mean_similarity_of_mistakes']:.3f}",
          "CHANCE_W": f"{m['chance_similarity_of_mistakes']:.3f}", "TRIALS": trials,
          "MISTAKE_TEST": mistake_test,
          "RATE": str(audit["detection"]["rate"]), "LAYER": str(s["layer"]),
          "DATA": audit["data"]}


if __name__ == "__main__":
  reporting.make_page(os.path.join(os.path.dirname(os.path.abspath(__file__)), "page_template.md"),
                      os.path.join(ROOT, "experiments", "results", "audit_resnet20.md"),
                      RESULTS, build, sys.argv[1:])
