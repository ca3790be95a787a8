"""Stretch goal: Wang et al.'s CIFAR-10 setting on our ResNet-20 (in place of
their GoogLeNet), FGSM, C&W and DeepFool. Written, not yet run (CPU time).

    python experiments/adversarial_detection/run_cifar10.py \
        --model experiments/checkpoints/resnet20_cifar10/model --data-dir /work/shared/data \
        --workdir runs/adversarial_detection_cifar10 \
        --out experiments/results/adversarial_detection_cifar10

CIFAR-10 here is the JPEG-decoded copy (see /work/shared/data/README.md);
every number from it must say so. Their settings (``scripts/craftAdvSamples.sh``
CIFAR-10 branch; ``deprecated_file/lcr_acu_analysis_cifar10_normal.sh``;
their normalisation std about 0.25, so budgets in normalised units are
multiplied by ``STD`` below): FGSM eps 0.03, C&W (c 0.6, 1000 iterations),
DeepFool (0.02, 50); mutation rate 0.005 (``5e-3p``), 500 mutants, gate 0.9.
Their GoogLeNet AUROC (README): FGSM 0.9000 / 0.8814 / 0.7687 / 0.8476
(NAI / GF / NS / WS), C&W 0.9264 / 0.9230 / 0.8499 / 0.8964, DeepFool
0.9686 / 0.9769 / 0.9502 / 0.9731. Our C&W here is the library's (their
missing-arctanh start and the PNG round trip are MNIST-specific choices we
reproduce in ``run.py`` only).
"""
from __future__ import annotations

import argparse
import json
import os

import jax
import numpy as np

from explicable_jax import _batching, data, metrics, models, mutation, robustness
from explicable_jax.app import reporting

STD = float(np.mean([0.247, 0.243, 0.261]))  # utils/data_manger.py normalize_cifar10
PAPER = {"fgsm": {"NAI": 0.9000, "GF": 0.8814, "NS": 0.7687, "WS": 0.8476},
         "cw": {"NAI": 0.9264, "GF": 0.9230, "NS": 0.8499, "WS": 0.8964},
         "deepfool": {"NAI": 0.9686, "GF": 0.9769, "NS": 0.9502, "WS": 0.9731}}
OPTIONS = {"GF": {"layers": "all", "granularity": "weight", "mode": "replace"},
           "NAI": {"layers": "kernels", "granularity": "neuron"},
           "WS": {"layers": "kernels"}, "NS": {"layers": "kernels", "min_neurons": 10}}


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--model", required=True)
  ap.add_argument("--data-dir", default=os.environ.get("EXPLICABLE_JAX_DATA"))
  ap.add_argument("--workdir", default="runs/adversarial_detection_cifar10")
  ap.add_argument("--out", default="experiments/results/adversarial_detection_cifar10")
  ap.add_argument("--mutants", type=int, default=500)
  ap.add_argument("--normal", type=int, default=1000)
  ap.add_argument("--max-adv", type=int, default=1000)
  ap.add_argument("--rate", type=float, default=0.005)
  ap.add_argument("--cw-iterations", type=int, default=1000)
  args = ap.parse_args()
  os.makedirs(args.workdir, exist_ok=True)
  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(0)
  clf = models.load(args.model)
  test = data.load("cifar10", "test", data_dir=args.data_dir)
  x = test.x.astype(np.float32) / 255.0 if test.x.dtype == np.uint8 else test.x
  y = np.asarray(test.y)
  pred = _batching.map_batches(jax.jit(lambda c, xb: c.logits(xb).argmax(-1)), [x],
                               batch_size=500, args=(clf,))
  correct = np.flatnonzero(pred == y)
  normal = np.random.default_rng(5566).permutation(correct)[:args.normal]
  src = np.random.default_rng(5567).permutation(correct)[:2 * args.max_adv]
  attacks = {
      "fgsm": lambda xb, yb: robustness.fgsm(clf, xb, yb, 0.03 * STD, clip=None),
      "cw": lambda xb, yb: robustness.carlini_wagner_l2(
          clf, xb, yb, initial_const=0.6 * STD ** 2, binary_search_steps=1,
          max_iterations=args.cw_iterations, learning_rate=1e-3),
      "deepfool": lambda xb, yb: robustness.deepfool(clf, xb, yb, overshoot=0.02, max_iter=50,
                                                     clip=None),
  }
  sets = {"normal": (x[normal], y[normal])}
  for name, fn in attacks.items():
    res = reporting.cached_arrays(os.path.join(args.workdir, f"adv_{name}.npz"), lambda fn=fn: {
        "x": np.concatenate([np.asarray(fn(x[src[i:i + 100]], y[src[i:i + 100]]))
                             for i in range(0, len(src), 100)])})
    # Saved as 8-bit images and reloaded, as theirs (clipped, not stretched, here).
    xa = np.round(np.clip(res["x"], 0, 1) * 255) / 255
    pa = _batching.map_batches(jax.jit(lambda c, xb: c.logits(xb).argmax(-1)), [xa],
                               batch_size=500, args=(clf,))
    ok = np.flatnonzero(pa != y[src])[:args.max_adv]
    sets[name] = (xa[ok].astype(np.float32), pa[ok])
  results = {"auroc": {}, "paper": PAPER, "sizes": {k: len(v[0]) for k, v in sets.items()}}
  val = np.random.default_rng(1).permutation(len(x))[:2000]
  for i, op in enumerate(OPTIONS):
    mutants, info = mutation.make_mutants(
        jax.random.fold_in(key, i), clf, args.mutants, op, args.rate,
        accuracy_fn=mutation.accuracy_gate(clf, x[val], y[val]), batch=25, **OPTIONS[op])
    lcr = {k: (mutation.mutant_predictions(clf, mutants, v[0]) != v[1][None]).mean(0)
           for k, v in sets.items()}
    results["auroc"][op] = {a: metrics.auroc(np.r_[lcr[a], lcr["normal"]],
                                             np.r_[np.ones(len(lcr[a])), np.zeros(len(lcr["normal"]))])
                            for a in attacks}
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
