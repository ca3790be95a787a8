"""Olmo et al.'s appendix Figure 1 (the weighted loss on a three-class problem), regenerated and checked.

    python experiments/explicable_cifar10/loss_behaviour.py \\
        --out experiments/results/explicable_cifar10_resnet20

The appendix ("Empirical Validation: Characterizing the Behavior of the
Proposed Loss Function with Numerical Simulations") takes a correct class t,
"a semantically closer class with weight W_c and an less semantically
similar class with weight W_f", in three settings: W_c = 0.4, W_f = 0.05;
0.1 / 0.05; 0.4 / 0.5. Each row of its figure has four panels, "the
probability of the correct class increases from left to right", and the
x-axis is "the confidence on the egregious class" f; the rest, 1 - p_t - p_f,
is on c. The figure itself is not in the text we have, so the panels' p_t
(0.2, 0.4, 0.6, 0.8) are ours. The loss is the library's weighted
cross-entropy (``losses.weighted_cross_entropy``, the paper's L1 targets
W_t / sum W_t with W_tt = 1); scaling a row by a positive number changes no
claim below.

Writes ``loss_behaviour.png`` and ``loss_behaviour.json``: per setting, the
share of each panel's range where the loss rises with p_f and where it is
lowest; the p_t at which the loss is lowest (CCE: 1); whether the loss falls
from panel to panel; and, for every grid step that moves probability from c
to f, whether the loss rises, whether Lemma 2's condition as stated
(W_c > tau W_f) says it should, and whether the exact condition
(W_c > W_f / tau) does.
"""
from __future__ import annotations

import argparse
import json
import os

import jax.numpy as jnp
import numpy as np

from explicable_jax import losses

SETTINGS = {"c explicable, f inexplicable": (0.4, 0.05),
            "c and f both inexplicable": (0.1, 0.05),
            "c and f both explicable": (0.4, 0.5)}
PANELS = (0.2, 0.4, 0.6, 0.8)
GRID = 199


def weighted_loss(p_t, p_c, p_f, w_c, w_f) -> np.ndarray:
  """The library's weighted cross-entropy of true class 0 at ``(p_t, p_c, p_f)``."""
  w = np.array([[1.0, w_c, w_f], [w_c, 1.0, w_f], [w_f, w_f, 1.0]])
  p = np.stack(np.broadcast_arrays(p_t, p_c, p_f), -1).astype(np.float64)
  logits = jnp.log(jnp.asarray(p, jnp.float32))
  return np.asarray(losses.weighted_cross_entropy(
      logits, jnp.zeros(len(p), jnp.int32), w, target="l1"), np.float64)


def _tau(p_a, p_b, eps):
  return np.log((p_a + eps) / p_a) / np.log((p_b + eps) / p_b)


def analyse(w_c: float, w_f: float) -> dict:
  share = (np.arange(GRID) + 1) / (GRID + 1)  # p_f / (1 - p_t), inside (0, 1)
  total = 1.0 + w_c + w_f
  panels, steps = [], {"steps": 0, "rises": 0, "stated_says_rises": 0,
                       "stated_wrong": 0, "stated_wrong_with_premise": 0,
                       "stated_misses_with_premise": 0,
                       "premise_holds": 0, "exact_wrong": 0}
  curves = {}
  for p_t in PANELS:
    rest = 1.0 - p_t
    p_f = share * rest
    loss = weighted_loss(np.full_like(p_f, p_t), rest - p_f, p_f, w_c, w_f)
    curves[p_t] = {"p_f": p_f.tolist(), "loss": loss.tolist(), "cce": float(-np.log(p_t))}
    rises = np.diff(loss) > 0
    panels.append({"p_t": p_t, "share_rising": float(rises.mean()),
                   "lowest_at_share": float(share[np.argmin(loss)]),
                   "loss_at_half": float(np.interp(0.5, share, loss)),
                   "rise_to_share_0.9": float(np.interp(0.9, share, loss) - loss.min())})
    # Each step moves eps = rest / (GRID + 1) from c (Lemma 2's a) to f (its b).
    eps = rest / (GRID + 1)
    p_a = rest - p_f[1:]  # a's probability when b has the higher confidence
    p_b = p_f[:-1]  # b's probability when b has the lower confidence
    tau = _tau(p_a, p_b, eps)
    stated = w_c > tau * w_f
    exact = w_c > w_f / tau
    premise = p_a < p_b
    steps["steps"] += rises.size
    steps["rises"] += int(rises.sum())
    steps["stated_says_rises"] += int(stated.sum())
    steps["stated_wrong"] += int(np.sum(stated != rises))
    steps["premise_holds"] += int(premise.sum())
    steps["stated_wrong_with_premise"] += int(np.sum((stated & ~rises) & premise))
    steps["stated_misses_with_premise"] += int(np.sum((~stated & rises) & premise))
    steps["exact_wrong"] += int(np.sum(exact != rises))
  levels = [p["loss_at_half"] for p in panels]
  falls = [b < a for a, b in zip(levels, levels[1:])]
  return {"w_c": w_c, "w_f": w_f, "panels": panels,
          "share_rising_closed_form": w_c / (w_c + w_f),
          "lowest_share_closed_form": w_f / (w_c + w_f),
          "lowest_p_t": 1.0 / total, "falls_panel_to_panel": falls,
          "lemma2_steps": steps, "curves": curves}


def lemma2_example(p_a: float, p_b: float, eps: float, w_ca: float, w_cb: float) -> dict:
  """Lemma 2 on three classes (c, a, b) with c's probability fixed at 0.3:
  the paper's tau, and the library loss's change when b's confidence rises
  by ``eps`` taken from a (positive: penalised)."""
  mat = np.array([[1.0, w_ca, w_cb], [w_ca, 1.0, w_cb], [w_cb, w_ca, 1.0]])
  loss = lambda p: float(losses.weighted_cross_entropy(
      jnp.log(jnp.asarray([p], jnp.float32)), jnp.zeros(1, jnp.int32), mat, target="l1")[0])
  gap = loss([0.3, p_a, p_b + eps]) - loss([0.3, p_a + eps, p_b])
  tau = float(_tau(p_a, p_b, eps))
  return {"p_a": p_a, "p_b": p_b, "eps": eps, "w_ca": w_ca, "w_cb": w_cb, "tau": tau,
          "stated_condition": bool(w_ca > tau * w_cb), "exact_condition": bool(w_ca > w_cb / tau),
          "loss_high_minus_low": gap}


def figure(results: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(len(results), len(PANELS), figsize=(11, 7.5), sharey="row")
  for row, (name, r) in zip(axes, results.items()):
    for ax, p_t in zip(row, PANELS):
      c = r["curves"][p_t]
      ax.plot(c["p_f"], c["loss"], label="weighted CE")
      ax.axhline(c["cce"], color="k", ls=":", label="CCE")
      ax.set_title(f"{name}\nW_c={r['w_c']}, W_f={r['w_f']}, p_t={p_t}", fontsize=7)
      ax.set_xlabel("p_f (egregious class)", fontsize=7)
      ax.tick_params(labelsize=6)
    row[0].set_ylabel("loss", fontsize=7)
  axes[0][0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  results = {name: analyse(*w) for name, w in SETTINGS.items()}
  figure(results, os.path.join(args.out, "loss_behaviour.png"))
  for r in results.values():
    del r["curves"]
  examples = {"premise holds": lemma2_example(0.1, 0.5, 0.1, 0.5, 1.0),
              "premise fails": lemma2_example(0.5, 0.1, 0.1, 0.5, 1.0)}
  out = {"panels_p_t": PANELS, "grid": GRID, "settings": results, "lemma2_examples": examples,
         "command": "python experiments/explicable_cifar10/loss_behaviour.py --out " + args.out}
  with open(os.path.join(args.out, "loss_behaviour.json"), "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
