"""Wu et al.'s conductance error detector at inner layers of the ResNet-20, against MSP.

    python experiments/error_detection_cifar10/inner_layers.py \\
        --model experiments/checkpoints/resnet20_cifar10 --data-dir ../shared/data \\
        --workdir runs/inner_layers_main --out experiments/results/error_detection_cifar10

At ``layer3.2`` the ResNet-20 only average-pools and applies its last linear
layer ``W``, so the conductance of channel ``c`` to the predicted class is
exactly ``W[pred, c] (pool_c(x) - pool_c(x')) / 64`` (the spatial mean of an
8 x 8 map): a detector on it sees a linear function of the penultimate
features and nothing the logits do not. Whether conductance carries anything
beyond the model's confidence can only be tested at inner layers. Stages
(each cached in ``--workdir``, so a rerun skips what is finished):

1. the identity above on the first ``--identity-images`` test-half images,
   from the black and from the mean-image baseline, with the conductance
   computed step by step (``shortcut_affine_head=False``) by both rules: the
   largest absolute deviation from the closed form;
2. per split (train, validation 5000, test 5000) and chunk of 5000
   images: the logits and the per-channel (spatial mean) conductance of the
   predicted class at ``layer2.2``, ``layer3.0``, ``layer3.1`` and
   ``layer3.2`` from Wu et al.'s mean-image baseline, n = 10 steps of the
   input path, by Wu et al.'s rule (gradient at the right end of each step,
   ``method="riemann_right"``) and by Captum's (gradient at the left end,
   Captum's ``LayerConductance`` step; ``method="riemann_left"``). One forward
   and backward pass per path point gives every layer and both rules (the
   script checks this against ``layer_conductance`` on its first images);
3. per layer set (each layer alone and the four concatenated) and rule, Wu et
   al.'s detector (MLP 200-200, dropout 0.5, range-normalised inputs,
   unweighted BCE, 20 epochs of batch 50; the key of ``run.py``'s
   ``conductance (Wu)`` detector) trained on the conductances of the first
   ``--train-images`` training images (10000 by default, the size of
   ``run.py``'s Wu-protocol training subset, where its detector uses all
   50000: the CPU time of 11 input-path passes per image); its scores on the
   validation half (skipped with ``--no-validation``) and the test half;
4. the table: validation and test AUROC, and the test AUROC minus MSP's and
   minus that of the same rule's ``layer3.2`` detector, each with the paired
   bootstrap 95% interval over the test images (1000 resamples);
   ``inner_layers.json`` and ``inner_layers.md`` in ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _batching, attribution, data, detection, metrics, models
from explicable_jax.app import reporting
from explicable_jax.attribution import batched

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as _run  # noqa: E402  (the stage caches of the main error-detection script)

LAYERS = ("layer2.2", "layer3.0", "layer3.1", "layer3.2")
RULES = {"Wu": "riemann_right", "Captum": "riemann_left"}
N_STEPS = 10
LAYER_SETS = {**{l: (l,) for l in LAYERS}, "all four": LAYERS}


def _forward_with_taps(clf, x, taps):
  """Logits of an evaluation-mode staged model with ``taps[name]`` added to
  stage ``name``'s output, and those outputs: the gradient with respect to a
  zero tap is the gradient with respect to that stage's activation."""
  m = clf.backend.module(clf.params, clf.state)
  acts = {}
  for name, fn in m.stages():
    x = fn(x, None)
    if name in taps:
      x = x + taps[name]
      acts[name] = x
  return x, acts


@jax.jit
def conductances(clf, baseline, x):
  """``(logits, {rule: {layer: (N, channels)}})``: the spatial-mean layer
  conductance of the predicted class at every layer of :data:`LAYERS`, along
  ``baseline + alpha (x - baseline)`` at ``alpha = k / N_STEPS``, by each rule
  of :data:`RULES` (equal to ``attribution.per_feature_map(
  batched.layer_conductance(clf, x, layer=l, target="predicted",
  baselines=baseline, n_steps=N_STEPS, method=RULES[rule]), reduce="mean")``)."""
  logits = clf.logits(x)
  t = logits.argmax(-1)
  shapes = jax.eval_shape(lambda: _forward_with_taps(clf, x, {l: 0.0 for l in LAYERS})[1])
  zeros = {l: jnp.zeros(s.shape, s.dtype) for l, s in shapes.items()}

  def point(alpha):
    xs = baseline + alpha * (x - baseline)

    def score(taps):
      out, acts = _forward_with_taps(clf, xs, taps)
      return jnp.take_along_axis(out, t[:, None], axis=1).sum(), acts
    return jax.grad(score, has_aux=True)(zeros)

  def step(carry, k):
    g_prev, a_prev, right, left = carry
    g, a = point(k / N_STEPS)
    right = {l: right[l] + g[l] * (a[l] - a_prev[l]) for l in LAYERS}
    left = {l: left[l] + g_prev[l] * (a[l] - a_prev[l]) for l in LAYERS}
    return (g, a, right, left), None

  g0, a0 = point(0.0)
  init = (g0, a0, jax.tree.map(jnp.zeros_like, zeros), jax.tree.map(jnp.zeros_like, zeros))
  (_, _, right, left), _ = jax.lax.scan(step, init, jnp.arange(1, N_STEPS + 1))
  mean = lambda d: {l: attribution.per_feature_map(v, reduce="mean") for l, v in d.items()}
  return logits, {"Wu": mean(right), "Captum": mean(left)}


def identity_check(clf, x, baselines: dict) -> dict:
  """The largest ``|cond_c - W[pred, c] (pool_c(x) - pool_c(x')) / (H W)|``
  at ``layer3.2`` over ``x``, per baseline and rule, with the conductance
  computed step by step (no affine-head shortcut), and the largest
  ``|cond_c|`` for scale."""
  features_fn, _ = clf.split("layer3.2")
  kernel = np.asarray(clf.params["fc"]["kernel"])  # (channels, classes): W^T
  out = {}
  for bname, b in baselines.items():
    a, a0 = np.asarray(features_fn(x)), np.asarray(features_fn(b[None]))
    pred = np.asarray(clf.logits(x)).argmax(-1)
    hw = a.shape[1] * a.shape[2]
    closed = kernel[:, pred].T * (a.mean((1, 2)) - a0.mean((1, 2))) / hw
    for rule, method in RULES.items():
      cond = np.asarray(attribution.per_feature_map(batched.layer_conductance(
          clf, x, layer="layer3.2", target="predicted", baselines=b, n_steps=N_STEPS,
          method=method, shortcut_affine_head=False), reduce="mean"))
      out[f"{bname}/{rule}"] = {"max_abs_deviation": float(np.max(np.abs(cond - closed))),
                                "max_abs_conductance": float(np.max(np.abs(cond)))}
  return out


def _interval(c, missing: str) -> str:
  if c is None:
    return missing
  return f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True, help="a train --workdir or a save_model folder")
  p.add_argument("--data-dir", default=None)
  p.add_argument("--workdir", required=True, help="cache of the stages")
  p.add_argument("--out", required=True, help="folder for inner_layers.json / .md")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--identity-images", type=int, default=256)
  p.add_argument("--batch-size", type=int, default=250)
  p.add_argument("--detector-epochs", type=int, default=20)
  p.add_argument("--train-images", type=int, default=10000,
                 help="the detector is trained on the first TRAIN_IMAGES training images "
                      "(Wu et al. use all 50000; 10000, the size of the training subset of "
                      "run.py's Wu-protocol rows, keeps the run within hours on 2 shared CPU "
                      "cores)")
  p.add_argument("--no-validation", action="store_true",
                 help="skip the validation half (its AUROC is then not reported); the "
                      "comparisons with MSP are on the test half either way")
  p.add_argument("--limit", type=int, default=None,
                 help="use only the first LIMIT images of each split (smoke tests)")
  args = p.parse_args(argv)
  t0 = time.time()
  os.makedirs(args.workdir, exist_ok=True)
  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(args.seed)
  path = models.model_folder(args.model, name="--model")
  clf = models.load(path)
  split = data.paper_split("cifar10", data_dir=args.data_dir, seed=args.seed)
  sets = {}
  for name in ("train", "test") if args.no_validation else ("train", "validation", "test"):
    ds = split[name]
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    sets[name] = (data.to_float(ds.x[:n]), ds.y[:n])
  # Wu et al.'s baseline, the mean of the whole training split (as run.py).
  mean_image = sets["train"][0].mean(0)
  n_train = min(args.train_images, len(sets["train"][0]))
  sets["train"] = (sets["train"][0][:n_train], sets["train"][1][:n_train])

  xi = sets["test"][0][:args.identity_images]
  identity = reporting.cached_json(os.path.join(args.workdir, "identity.json"), lambda: identity_check(
      clf, xi, {"black": np.zeros_like(mean_image), "mean image": mean_image}))
  print(f"identity at layer3.2 on {len(xi)} images: {identity} ({time.time() - t0:.0f}s)",
        flush=True)

  # The shared pass against the library's layer_conductance, on a few images.
  xs = sets["test"][0][:8]
  _, mine = conductances(clf, mean_image, xs)
  agreement = {}
  for rule, method in RULES.items():
    for layer in LAYERS:
      ref = attribution.per_feature_map(batched.layer_conductance(
          clf, xs, layer=layer, target="predicted", baselines=mean_image, n_steps=N_STEPS,
          method=method), reduce="mean")
      agreement[f"{rule}/{layer}"] = float(jnp.max(jnp.abs(mine[rule][layer] - ref)))
  print(f"largest difference from layer_conductance: {max(agreement.values()):.2e}", flush=True)
  if max(agreement.values()) > 1e-4:
    raise SystemExit(f"the shared pass disagrees with layer_conductance: {agreement}")

  flat = lambda out: {"logits": out[0], **{f"{r}/{l}": out[1][r][l] for r in RULES
                                          for l in LAYERS}}
  cond = {}
  for k, (x, _) in sets.items():
    cond[k] = _run._cached_chunks(
        os.path.join(args.workdir, f"cond_{k}"), len(x),
        lambda lo, hi, x=x: flat(_batching.map_batches(
            conductances, [x[lo:hi]], batch_size=args.batch_size, args=(clf, mean_image))))
    print(f"conductances of {k} ({time.time() - t0:.0f}s)", flush=True)
  wrong = {k: cond[k]["logits"].argmax(-1) != sets[k][1] for k in sets}
  evals = [k for k in ("validation", "test") if k in sets]
  msp = {k: np.asarray(detection.scores.logit_scores(cond[k]["logits"], names=("msp",))["msp"])
         for k in evals}

  scores = {k: {"MSP": msp[k]} for k in evals}
  for rule in RULES:
    for set_name, layers in LAYER_SETS.items():
      name = f"{set_name}, {rule}"

      def fit(layers=layers, rule=rule):
        feats = {k: np.concatenate([cond[k][f"{rule}/{l}"] for l in layers], 1) for k in sets}
        det = detection.train_detector(
            jax.random.fold_in(key, 12), feats["train"], wrong["train"],
            epochs=args.detector_epochs, batch_size=50, class_weight=None, normalize="range")
        return {k: det.scores(feats[k]) for k in evals}
      s = _run._cached(os.path.join(args.workdir, f"detector_{rule}_{set_name}_"
                                    f"{len(sets['train'][0])}.npz"), fit)
      for k in evals:
        scores[k][name] = s[k]
      print(f"detector {name}: test AUROC {metrics.auroc(s['test'], wrong['test']):.3f}"
            f" ({time.time() - t0:.0f}s)", flush=True)

  vs = detection.compare_to_baseline(jax.random.fold_in(key, 97), scores["test"], wrong["test"],
                                     baseline="MSP")
  # Wu et al. kept the last layer "because experiments show that the binary
  # classifier would perform as much if not better by using only conductances
  # of this layer": every set against layer3.2 with the same rule.
  vs_last = {}
  for i, rule in enumerate(RULES):
    last = f"layer3.2, {rule}"
    vs_last.update(metrics.bootstrap_auroc_differences(
        jax.random.fold_in(key, 95 + i),
        {n: v for n, v in scores["test"].items() if n.endswith(f", {rule}") and n != last},
        scores["test"][last], wrong["test"]))
  table = {n: {**({"validation_auroc": metrics.auroc(scores["validation"][n],
                                                      wrong["validation"])}
                  if "validation" in scores else {}),
               "test_auroc": metrics.auroc(scores["test"][n], wrong["test"]),
               **({"test_vs_msp": vs[n]} if n in vs else {}),
               **({"test_vs_layer3.2": vs_last[n]} if n in vs_last else {})}
           for n in scores["test"]}
  res = {"date": datetime.date.today().isoformat(), "data": data.JPEG_CAVEAT,
         "model": args.model, "command_args": vars(args), "layers": LAYERS,
         "train_images": int(n_train),
         "rules": RULES, "n_steps": N_STEPS, "baseline": "mean training image",
         "identity": {"images": int(len(xi)), "layer": "layer3.2", "checks": identity},
         "shared_pass_vs_layer_conductance": agreement,
         "accuracy": {k: float(1 - w.mean()) for k, w in wrong.items()},
         "num_wrong": {k: int(w.sum()) for k, w in wrong.items()},
         "table": table, "wall_seconds": time.time() - t0}
  md = reporting.markdown_table(
      ["detector input (layers, rule)", "validation AUROC", "test AUROC",
       "test AUROC - MSP [95% CI]", "test AUROC - same rule's layer3.2 [95% CI]"],
      [[n, f"{r['validation_auroc']:.3f}" if "validation_auroc" in r else "—",
        f"{r['test_auroc']:.3f}",
        _interval(r.get("test_vs_msp"), "(baseline)"),
        _interval(r.get("test_vs_layer3.2"), "(reference)" if n.startswith("layer3.2") else "")]
       for n, r in table.items()])
  with open(os.path.join(args.out, "inner_layers.json"), "w") as f:
    json.dump(res, f, indent=1, default=float)
  with open(os.path.join(args.out, "inner_layers.md"), "w") as f:
    f.write(md + "\n")
  print(md)
  print(f"written ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
  main()
