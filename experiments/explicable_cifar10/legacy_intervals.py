"""Intervals for the accuracy comparisons of the legacy page `explicable_cifar10.md`.

The first Olmo run (ResNet-11 v2, 2026-11-23) kept only aggregate numbers in
`experiments/results/explicable_cifar10/results.json`: no per-image
predictions, and no checkpoint of the fine-tuned models (only the CCE base is
in `experiments/checkpoints/explicable_cifar10_cce`). A paired test (McNemar)
is therefore impossible; each accuracy difference gets instead Newcombe's
(1998, method 10) hybrid score interval for the difference of two
*independent* proportions, built from the two Wilson intervals:

  d = p_a - p_b,
  lower = d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2),
  upper = d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2).

Both models were evaluated on the same images, so
Var(p_a - p_b) = [p_a(1 - p_a) + p_b(1 - p_b) - 2 cov] / n, and the unpaired
interval, which drops the covariance, is conservative (wider than the paired
one) whenever the two models' correctness is positively associated, as for
models fine-tuned from one base. A difference is called detectable only when
its interval excludes 0; otherwise `explicable_jax.stats.NO_DIFFERENCE`.

The mean similarity of mistakes and the hard / soft counts get no interval:
they need the per-image predictions, which were not kept.

    python experiments/explicable_cifar10/legacy_intervals.py

prints one line per comparison, in the words the page uses, and writes them to
`experiments/results/explicable_cifar10/legacy_intervals.json`.
"""
from __future__ import annotations

import argparse
import json
import math
import os

from explicable_jax import stats

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.normpath(os.path.join(HERE, "..", "results", "explicable_cifar10", "results.json"))
Z95 = 1.959963984540054

NAMES = {"cce": "CCE", "cce_finetuned": "CCE +1 epoch",
         "ihl_softmax": "IHL (softmax)", "chl_softmax": "CHL (softmax)",
         "ekl_softmax": "EKL (softmax)",
         "ihl_l1": "IHL (L1)", "chl_l1": "CHL (L1)", "ekl_l1": "EKL (L1)"}

# The paper's Table 1 (CIFAR-10 test set, 10000 images): top-1 accuracy.
PAPER_N = 10000
PAPER_TOP1 = {"cce": 0.9185, "ihl": 0.8361, "chl": 0.9117, "ekl": 0.8603}

# Noise and FGSM ran on the first `--attack-n` (default 2000) test-half images.
ATTACK_N = 2000

# (metric, a, b): the comparisons the page words; top-1 on the 5000 test-half images.
COMPARISONS = [
    ("top1", "ihl_softmax", "cce"), ("top1", "chl_softmax", "cce"),
    ("top1", "ekl_softmax", "cce"),
    ("top1", "ihl_l1", "cce_finetuned"), ("top1", "ekl_l1", "cce_finetuned"),
    ("top1", "chl_l1", "cce_finetuned"),
    ("top1", "ihl_l1", "ekl_l1"), ("top1", "ekl_l1", "chl_l1"),
    ("gaussian_noise_0.2", "chl_l1", "cce"), ("gaussian_noise_0.2", "chl_l1", "cce_finetuned"),
    ("gaussian_noise_0.2", "ekl_l1", "cce"), ("gaussian_noise_0.2", "ekl_l1", "cce_finetuned"),
    ("fgsm_0.3", "chl_l1", "cce"), ("fgsm_0.3", "chl_l1", "cce_finetuned"),
    ("fgsm_0.3", "ekl_l1", "cce"), ("fgsm_0.3", "ekl_l1", "cce_finetuned"),
    # The closest pair across the 0.20-0.25% / 1.50-1.75% split at 8/255.
    ("fgsm_8/255", "ekl_l1", "chl_softmax"),
]
# Paper against paper, and paper against ours (different models and data:
# the interval covers test-set sampling only).
PAPER_COMPARISONS = [("paper", "chl", "ekl"), ("paper", "ekl", "ihl"), ("paper", "cce", "chl"),
                     ("paper_vs_ours", "ihl", "ihl_softmax"),
                     ("paper_vs_ours", "chl", "chl_softmax"),
                     ("paper_vs_ours", "ekl", "ekl_softmax")]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
  """Wilson (1927) score interval of a proportion ``successes / n``."""
  if n <= 0 or not 0 <= successes <= n:
    raise ValueError(f"wilson: successes={successes}, n={n}; expected 0 <= successes <= n, n > 0")
  p = successes / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(k_a: int, n_a: int, k_b: int, n_b: int,
                        z: float = Z95) -> tuple[float, float, float]:
  """Difference ``k_a / n_a - k_b / n_b`` with Newcombe's (1998) method-10
  interval for independent proportions: ``(difference, lower, upper)``."""
  p_a, p_b = k_a / n_a, k_b / n_b
  l_a, u_a = wilson(k_a, n_a, z)
  l_b, u_b = wilson(k_b, n_b, z)
  d = p_a - p_b
  return (d, d - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2),
          d + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2))


def _verdict(lower: float, upper: float) -> str:
  if lower > 0:
    return "detectably higher"
  if upper < 0:
    return "detectably lower"
  return stats.NO_DIFFERENCE


def _points(x: float) -> str:
  return f"{100 * x:+.2f}"


def describe(d: float, lower: float, upper: float) -> str:
  """The page's words: ``"-0.10 points [-1.74, +1.54]"``."""
  return f"{_points(d)} points [{_points(lower)}, {_points(upper)}]"


def compute(results: dict) -> dict:
  """All intervals of the page, from the run's ``results.json``."""
  n_test = int(results["test_images"])
  rows = []

  def add(metric, a, b, p_a, n_a, p_b, n_b, label_a, label_b):
    k_a, k_b = round(p_a * n_a), round(p_b * n_b)
    d, lo, hi = newcombe_difference(k_a, n_a, k_b, n_b)
    rows.append({"metric": metric, "a": label_a, "b": label_b, "correct_a": k_a, "n_a": n_a,
                 "correct_b": k_b, "n_b": n_b, "difference": d, "ci95": [lo, hi],
                 "verdict": _verdict(lo, hi), "text": describe(d, lo, hi)})

  for metric, a, b in COMPARISONS:
    if metric == "top1":
      p_a, p_b, n = results["models"][a]["top1"], results["models"][b]["top1"], n_test
    else:
      p_a, p_b, n = results["robustness"][a][metric], results["robustness"][b][metric], ATTACK_N
    add(metric, a, b, p_a, n, p_b, n, NAMES[a], NAMES[b])
  for kind, a, b in PAPER_COMPARISONS:
    if kind == "paper":
      add("top1", a, b, PAPER_TOP1[a], PAPER_N, PAPER_TOP1[b], PAPER_N,
          f"paper {a.upper()}", f"paper {b.upper()}")
    else:
      add("top1", a, b, PAPER_TOP1[a], PAPER_N, results["models"][b]["top1"], n_test,
          f"paper {a.upper()}", f"ours {NAMES[b]}")

  # FGSM at epsilon 0.3: the most accurate model against chance (10%).
  best = max(results["robustness"], key=lambda m: results["robustness"][m]["fgsm_0.3"])
  k = round(results["robustness"][best]["fgsm_0.3"] * ATTACK_N)
  lo, hi = wilson(k, ATTACK_N)
  chance = {"metric": "fgsm_0.3", "model": NAMES[best], "correct": k, "n": ATTACK_N,
            "accuracy": k / ATTACK_N, "ci95": [lo, hi],
            "text": f"{100 * k / ATTACK_N:.2f}% [{100 * lo:.2f}%, {100 * hi:.2f}%]"}
  return {
      "method": "Newcombe (1998) method-10 hybrid score interval for the difference of two "
                "independent proportions (95%), in percentage points; conservative for two "
                "models evaluated on the same images when their correctness is positively "
                "associated. Per-image predictions were not kept, so no paired test.",
      "n": {"test_half": n_test, "noise_and_fgsm": ATTACK_N, "paper_test": PAPER_N},
      "comparisons": rows, "best_fgsm_0.3_against_chance": chance}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--results", default=RESULTS)
  p.add_argument("--out", default=None, help="default: legacy_intervals.json beside --results")
  args = p.parse_args(argv)
  with open(args.results) as f:
    out = compute(json.load(f))
  for r in out["comparisons"]:
    print(f"{r['metric']}: {r['a']} - {r['b']}: {r['text']} ({r['verdict']})")
  c = out["best_fgsm_0.3_against_chance"]
  print(f"fgsm_0.3: {c['model']} {c['text']} (chance 10%)")
  path = args.out or os.path.join(os.path.dirname(args.results), "legacy_intervals.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
