"""Deliberative explanations scored against known parts (Wang and Vasconcelos 2019).

    python experiments/deliberative/run.py --out experiments/results/deliberative \\
        --workdir runs/deliberative --seeds 0 1 2

Per seed:

1. Train three small CNNs on the generated parts data set
   (:mod:`explicable_jax.data.parts`): a plain classifier; one with a
   hardness-predictor output trained jointly with our loss (BCE toward
   ``1 - p_y``); one trained with the original's loss (``opposite_loss``;
   ``deliberative.make_hardness_loss(predictor_loss="original")``).
2. Take the ``--hard`` test images with the highest normalised entropy
   under the plain model (the original picks the 100 hardest), and, as a
   second protocol, ``--hard`` random test images. Compute insecurities at
   the last conv layer for every difficulty score (hesitancy, entropy: the
   plain model; hardness: each joint model) and attribution:

   * ``gradient``;
   * ``integrated_gradients`` (ours: layer space, 20 steps) and
     ``integrated_gradients/input51`` (the original's: input-space path from
     a black image, 51 points);
   * ``gradient_hessian`` (ours: signed equation 7 on every map) and
     ``gradient_hessian/abs`` (the original's: first-order class maps,
     ``|a^T H a| / 2`` on the difficulty map).

   Score each insecurity whose two classes share parts present in the image
   (IoU with the shared parts' pixels, the paper's measure; precision and
   recall of the part centres as extra columns) at r = 10%..50%; random
   regions of the same area are the baseline.
3. Write ``results.json`` (per seed and mean / standard deviation over
   seeds) and ``tables.md`` into ``--out``.

Trained models are checkpoints in ``--workdir`` and every scored
configuration is a JSON file there: a rerun of the same command resumes.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import deliberative, losses, models, training
from explicable_jax.app import reporting
from explicable_jax.data import parts

RS = (0.1, 0.2, 0.3, 0.4, 0.5)
LAYER = "conv_1"
MODELS = {"plain": None, "hardness_bce": "bce", "hardness_original": "original"}
DIFFICULTIES = {"hesitancy": "plain", "entropy": "plain", "hardness_bce": "hardness_bce",
                "hardness_original": "hardness_original"}
ATTRIBUTIONS = {
    "gradient": {"method": "gradient"},
    "integrated_gradients": {"method": "integrated_gradients", "n_steps": 20},
    "integrated_gradients/input51": {"method": "integrated_gradients", "n_steps": 50,
                                     "ig_space": "input"},
    "gradient_hessian": {"method": "gradient_hessian"},
    "gradient_hessian/abs": {"method": "gradient_hessian", "second_order": "absolute"},
}
METRICS = ("iou", "precision", "recall")


def _train(ds, key, *, epochs, predictor_loss, workdir):
  c = ds.num_classes
  hardness = predictor_loss is not None
  model = models.create_model(key, "cnn", input_shape=ds.input_shape,
                              num_classes=c + (1 if hardness else 0),
                              widths=[32, 64], dense=128, pool="flatten")
  opt = optax.adam(1e-3)
  loss = (deliberative.make_hardness_loss(c, predictor_loss=predictor_loss) if hardness
          else losses.cross_entropy_loss)
  state = training.create_train_state(jax.random.fold_in(key, 1), model, opt)
  # With a workdir the trained model is a checkpoint: a rerun restores it.
  return training.fit(state, ds, train_step=training.make_train_step(loss, opt), epochs=epochs,
                      batch_size=128, progress=False, workdir=workdir)[0]


def _score(states, test, table, idx, difficulty, attribution, *, batch, rng_seed,
           with_random):
  c = test.num_classes
  state = states[DIFFICULTIES[difficulty]]
  f, h = state.classifier.split(LAYER)
  if difficulty.startswith("hardness"):
    head, dhead, dscore = (lambda a: h(a)[:, :c]), h, deliberative.hardness_difficulty(c)
  else:
    head, dhead, dscore = h, None, difficulty
  xt = jnp.asarray(test.x.astype(np.float32) / 255.0)
  scores = {r: {k: [] for k in (*METRICS, "has_unshared_part")} for r in RS}
  rand = {r: {k: [] for k in METRICS} for r in RS}
  rng = np.random.default_rng(rng_seed)
  for b0 in range(0, len(idx), batch):
    ids = idx[b0:b0 + batch]
    classes, maps, dmap = deliberative.attribution_maps(
        f, head, xt[ids], difficulty=dscore, top_k=5, difficulty_head_fn=dhead,
        **ATTRIBUTIONS[attribution])
    pairs = np.asarray(deliberative.class_ambiguities(maps, 3))
    ins = deliberative.insecurity_maps(maps, dmap, (32, 32))
    classes = np.asarray(classes)
    for r in RS:
      masks = np.asarray(deliberative.top_fraction_mask(ins, r))
      for j, i in enumerate(ids):
        cen, seg = test.extras["part_centers"][i], test.extras["part_segments"][i]
        for a, b in zip(*np.nonzero(pairs[j])):
          shared = parts.shared_parts(table, classes[j, a], classes[j, b])
          s = deliberative.score_insecurity(masks[j, a, b], shared, cen, seg)
          if s is None:
            continue
          for k in METRICS:
            scores[r][k].append(s[k])
          scores[r]["has_unshared_part"].append(float(np.any((cen[:, 0] >= 0) & ~shared)))
          if with_random:
            rm = deliberative.random_region(rng, (32, 32), int(masks[j, a, b].sum()))
            for k, v in deliberative.score_insecurity(rm, shared, cen, seg).items():
              rand[r][k].append(v)

  def summary(s_):
    return {str(r): {k: float(np.nanmean(v)) if v else float("nan") for k, v in d.items()}
            | {"n": len(d["recall"])} for r, d in s_.items()}
  out = {"scores": summary(scores)}
  if with_random:
    out["random regions"] = summary(rand)
  return out


def run_seed(args, seed):
  t0 = time.time()
  key = jax.random.key(seed)
  train = parts.parts_dataset("train", n=args.train_n, seed=seed)
  test = parts.parts_dataset("test", seed=seed)
  table = parts.class_part_table(seed=seed)
  c = train.num_classes
  states = {name: _train(train, jax.random.fold_in(key, i), epochs=args.epochs,
                         predictor_loss=loss,
                         workdir=os.path.join(args.workdir, f"{name}_seed{seed}"))
            for i, (name, loss) in enumerate(MODELS.items())}
  accuracy = {}
  for name, st in states.items():
    out = training.predict(st, test.x)
    accuracy[name] = float(np.mean(out[:, :c].argmax(-1) == test.y))
  print(f"seed {seed}: test accuracy {accuracy} ({time.time() - t0:.0f}s)", flush=True)
  ent = np.asarray(deliberative.normalized_entropy(
      jnp.asarray(training.predict(states["plain"], test.x))))
  selections = {"hardest": np.argsort(-ent)[:args.hard],
                "random": np.sort(np.random.default_rng(seed + 1).choice(
                    len(ent), args.hard, False))}
  results = {}
  for sel in args.select:
    idx = selections[sel]
    for d in DIFFICULTIES:
      for m in ATTRIBUTIONS:
        name = f"{d}/{m}"
        path = os.path.join(args.workdir, "scores",
                            f"seed{seed}_{sel}_{name.replace('/', '__')}.json")
        t1 = time.time()
        res = reporting.cached_json(path, lambda: _score(
            states, test, table, idx, d, m, batch=args.batch, rng_seed=seed,
            with_random=(d, m) == ("entropy", "gradient")))
        results.setdefault(sel, {})[name] = res["scores"]
        if "random regions" in res:
          results[sel]["random regions"] = res["random regions"]
        print(f"seed {seed} {sel} {name}: mean IoU "
              f"{np.mean([res['scores'][str(r)]['iou'] for r in RS]):.4f} "
              f"({time.time() - t1:.0f}s)", flush=True)
  return {"test_accuracy": accuracy, "results": results}


def aggregate(per_seed: dict) -> dict:
  """Per selection and configuration: for every metric, its mean over r,
  then the mean and standard deviation of that over seeds (and at each r)."""
  out = {}
  seeds = list(per_seed)
  first = per_seed[seeds[0]]["results"]
  for sel, configs in first.items():
    for name in configs:
      row = {}
      for k in (*METRICS, "has_unshared_part", "n"):
        if k not in configs[name][str(RS[0])]:
          continue
        over_r = [np.nanmean([per_seed[s]["results"][sel][name][str(r)][k] for r in RS])
                  for s in seeds]
        row[k] = {"mean_over_r": {"mean": float(np.mean(over_r)),
                                  "std": float(np.std(over_r, ddof=1)) if len(seeds) > 1
                                  else None, "values": [float(v) for v in over_r]}}
        row[k]["at_r"] = {str(r): float(np.mean(
            [per_seed[s]["results"][sel][name][str(r)][k] for s in seeds])) for r in RS}
      out.setdefault(sel, {})[name] = row
  return out


def write_tables(res, path):
  lines = [f"# Deliberative tables (seeds {res['seeds']}; mean ± standard deviation over "
           "seeds of each metric's mean over r = 10%..50%; written by "
           "experiments/deliberative/run.py)", ""]
  for sel, configs in res["summary"].items():
    lines += [f"## {sel} images", "",
              "| difficulty / attribution | IoU | IoU at r=10% | precision | recall | "
              "n pairs (mean) |", "|---|---|---|---|---|---|"]
    for name, row in configs.items():
      def cell(k):
        s = row[k]["mean_over_r"]
        return f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if s["std"] is not None else "")
      lines.append(f"| {name} | {cell('iou')} | {row['iou']['at_r']['0.1']:.4f} | "
                   f"{cell('precision')} | {cell('recall')} | "
                   f"{row['n']['mean_over_r']['mean']:.0f} |")
    if "entropy/gradient" in configs and "has_unshared_part" in configs["entropy/gradient"]:
      u = configs["entropy/gradient"]["has_unshared_part"]["mean_over_r"]["mean"]
      lines += ["", f"Scored (image, pair) items showing a part the pair does not share: "
                    f"{100 * u:.1f}%."]
    lines.append("")
  acc = res["test_accuracy"]
  lines += ["## test accuracy", "", "| model | " + " | ".join(f"seed {s}" for s in res["seeds"])
            + " |", "|---|" + "---|" * len(res["seeds"])]
  for name in MODELS:
    lines.append(f"| {name} | " + " | ".join(f"{acc[str(s)][name]:.4f}" for s in res["seeds"])
                 + " |")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--train-n", type=int, default=20000)
  p.add_argument("--epochs", type=int, default=6)
  p.add_argument("--hard", type=int, default=200, help="test images explained")
  p.add_argument("--select", nargs="+", choices=("hardest", "random"),
                 default=["hardest", "random"],
                 help="explain the --hard images of highest entropy (the paper), a random "
                      "sample of test images, or both")
  p.add_argument("--batch", type=int, default=50)
  p.add_argument("--workdir", default="runs/deliberative",
                 help="checkpoints of the trained CNNs and scored configurations (a rerun "
                      "reuses them)")
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  t0 = time.time()
  per_seed = {str(s): run_seed(args, s) for s in args.seeds}
  res = {"date": datetime.date.today().isoformat(), "args": vars(args), "seeds": args.seeds,
         "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}",
         "attributions": ATTRIBUTIONS,
         "test_accuracy": {s: r["test_accuracy"] for s, r in per_seed.items()},
         "summary": aggregate(per_seed), "per_seed": per_seed,
         "wall_seconds_this_invocation": time.time() - t0}
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(res, f, indent=1, default=float)
  write_tables(res, os.path.join(args.out, "tables.md"))
  print(open(os.path.join(args.out, "tables.md")).read())
  print(f"wall time {time.time() - t0:.0f}s")


if __name__ == "__main__":
  main()
