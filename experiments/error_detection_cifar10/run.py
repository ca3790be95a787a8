"""Wu, Michel and Briot's error detection on CIFAR-10 with a trained ResNet-20.

    python experiments/error_detection_cifar10/run.py --model runs/resnet20_cifar10 \
        --data-dir ../shared/data --workdir runs/error_detection_cifar10 \
        --out experiments/results/error_detection_cifar10

Stages (each cached in ``--workdir`` as ``.npz``, so a rerun resumes):

1. predictions of the model on the paper split (train 50000, validation
   5000, test 5000 of the CIFAR-10 copy); a prediction is "wrong" when it
   differs from the label;
2. conductance of the last residual block (``layer3.2``), Wu et al.'s
   right-end rule with n = 10 steps from a black baseline, averaged per
   feature map (64 values), for the predicted class;
3. Table 3: the mean LCR of correct and of wrong validation predictions for
   NAI and GF (filter level, conv kernels) at several rates, with
   ``--table3-mutants`` mutants on ``--table3-images`` validation images
   (a rate is given up, and marked "too high", when fewer than that many of
   ``--table3-max-draws`` mutants pass the gate); the operator and rate with
   the best validation AUROC are kept;
4. ``--mutants`` mutants of that kind (accuracy gate: 90% of the original's
   validation accuracy, on the gate images) and the LCR of every validation
   and test prediction;
5. the conductance detector (MLP 200-200, dropout 0.5) trained on the
   training set's [one-hot prediction, conductance] features; thresholds
   chosen on validation by balanced recall;
6. the unified classifiers on [LCR, detector score] (NN, RF, LDA, QDA),
   fitted on validation (5-fold out-of-fold scores give the validation
   AUROC and the threshold) and applied to test;
7. Table 4, AUROC against the number of mutants (Figure 4) and ROC curves
   (Figure 5); ``results.json``, ``tables.md`` and PNGs in ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import os
import time

import jax
import numpy as np

from explicable_jax import (_batching, attribution, data, detection, metrics, models,
                            mutation, robustness)
from explicable_jax.attribution import batched
from explicable_jax.app import reporting

LAYER = "layer3.2"
# GF redraws whole filters (Wu et al.); NAI negates filters by default.
OPERATOR_OPTIONS = {"NAI": {}, "GF": {"granularity": "neuron"}}
SHIFT_SEVERITIES = (3, 5)


def _cached(path: str, fn):
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  out = fn()
  np.savez(path + ".tmp.npz", **out)
  os.replace(path + ".tmp.npz", path)
  return out


def _cached_chunks(path: str, n: int, fn, chunk: int = 5000):
  """``fn(lo, hi)`` over rows ``[0, n)`` in chunks, each cached on its own, so
  an interrupted stage keeps the chunks it finished."""
  parts = [_cached(f"{path}_{lo}.npz", lambda lo=lo: fn(lo, min(lo + chunk, n)))
           for lo in range(0, n, chunk)]
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@jax.jit
def _forward_batch(clf, xb):
  """Logits and the layer's per-channel mean activations (the penultimate
  features for ``layer3.2``, which global average pooling follows)."""
  features_fn, head_fn = clf.split(LAYER)
  a = features_fn(xb)
  return head_fn(a), a.mean(axis=(1, 2))


@jax.jit
def _conductance_batch(clf, baseline, xb):
  return attribution.per_feature_map(batched.layer_conductance(
      clf, xb, layer=LAYER, target="predicted", baselines=baseline, n_steps=10,
      method="riemann_right"), reduce="mean")


def _shifted(key, x, severity):
  """The test half under shift: image ``i`` gets corruption
  ``CORRUPTIONS[i % 6]`` at ``severity`` (each corruption's images share the
  key ``fold_in(fold_in(key, corruption index), severity)``)."""
  out = np.empty_like(x)
  for c, name in enumerate(robustness.CORRUPTIONS):
    idx = np.arange(c, len(x), len(robustness.CORRUPTIONS))
    k = jax.random.fold_in(jax.random.fold_in(key, c), severity)
    out[idx] = np.asarray(robustness.corrupt(k, x[idx], name, severity))
  return out


def _features(pred, cond, num_classes=10):
  return np.concatenate([np.eye(num_classes, dtype=np.float32)[pred], cond], axis=1)


def _oof_scores(kind, x, y, key, folds=5):
  """Out-of-fold scores of a combiner on the validation set (stratified folds)."""
  from sklearn.model_selection import StratifiedKFold
  scores = np.empty(len(y))
  skf = StratifiedKFold(folds, shuffle=True, random_state=0)
  for i, (tr, te) in enumerate(skf.split(x, y)):
    c = detection.fit_combiner(kind, x[tr], y[tr], key=jax.random.fold_in(key, i),
                               **({"epochs": 30} if kind == "nn" else {}))
    scores[te] = c.scores(x[te])
  return scores


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", required=True, help="a train --workdir or a save_model folder")
  p.add_argument("--data-dir", default=None)
  p.add_argument("--workdir", required=True, help="cache of the stages")
  p.add_argument("--out", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--mutants", type=int, default=100)
  p.add_argument("--gate-images", type=int, default=1000,
                 help="validation images of the accuracy gate")
  p.add_argument("--table3-mutants", type=int, default=20)
  p.add_argument("--table3-images", type=int, default=1000)
  p.add_argument("--table3-max-draws", type=int, default=100,
                 help="give a Table 3 rate up after this many mutants fail to pass the gate")
  p.add_argument("--nai-rates", default="0.005,0.01,0.02,0.03")
  p.add_argument("--gf-rates", default="0.005,0.01,0.015,0.03")
  p.add_argument("--detector-epochs", type=int, default=30)
  p.add_argument("--train-subset", type=int, default=10000,
                 help="training images with an LCR (Wu et al.'s protocol fits on them)")
  p.add_argument("--compute-only", action="store_true",
                 help="compute and cache every stage, write no report")
  p.add_argument("--limit", type=int, default=None,
                 help="use only the first LIMIT images of each split (smoke tests)")
  args = p.parse_args()
  t0 = time.time()
  os.makedirs(args.workdir, exist_ok=True)
  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(args.seed)

  path = args.model
  if os.path.exists(os.path.join(path, "model", "model.json")):
    path = os.path.join(path, "model")
  clf, meta = models.load(path), models.read_meta(path)
  split = data.paper_split("cifar10", data_dir=args.data_dir, seed=args.seed)
  sets = {}
  for name in ("train", "validation", "test"):
    ds = split[name]
    n = len(ds) if args.limit is None else min(args.limit, len(ds))
    sets[name] = (data.to_float(ds.x[:n]), ds.y[:n])
  # Wu et al.'s conductance baseline: the per-pixel mean training image (their
  # inputs have it subtracted, so their zero baseline is this image here).
  mean_image = sets["train"][0].mean(0)
  # The test half under shift (CIFAR-10-C-style corruptions, severities 3 and 5).
  xt, yt = sets["test"]
  for s in SHIFT_SEVERITIES:
    xs = _cached(os.path.join(args.workdir, f"shift_s{s}.npz"),
                 lambda s=s: {"x": _shifted(jax.random.fold_in(key, 500), xt, s)})["x"]
    sets[f"test_s{s}"] = (xs, yt)

  # 1-2. Logits, features, and conductance from both baselines, per split.
  fw = {}
  for k, (x, _) in sets.items():
    fw[k] = _cached_chunks(
        os.path.join(args.workdir, f"forward_{k}"), len(x),
        lambda lo, hi, x=x: dict(zip(("logits", "features"), _batching.map_batches(
            _forward_batch, [x[lo:hi]], batch_size=500, args=(clf,)))))
  pred = {k: f["logits"].argmax(-1) for k, f in fw.items()}
  wrong = {k: pred[k] != y for k, (_, y) in sets.items()}
  acc = {k: float(1 - w.mean()) for k, w in wrong.items()}
  print(f"accuracy {acc} ({time.time() - t0:.0f}s)", flush=True)

  def conductance(k, baseline_name):
    x = sets[k][0]
    base = np.zeros_like(mean_image) if baseline_name == "black" else mean_image
    return _cached_chunks(
        os.path.join(args.workdir, f"cond_{baseline_name}_{k}"), len(x),
        lambda lo, hi: {"cond": _batching.map_batches(
            _conductance_batch, [x[lo:hi]], batch_size=250, args=(clf, base))})["cond"]

  xv, yv = sets["validation"]
  gate = mutation.accuracy_gate(clf, xv[:args.gate_images], yv[:args.gate_images])

  # 3. Table 3: LCR of correct vs wrong predictions, by operator and rate.
  # One cache file per row, so an interrupted sweep keeps the rows it has. A
  # rate whose mutants rarely pass the gate is given up after
  # --table3-max-draws mutants and recorded as such (NaN LCRs).
  def table3_row(i, op, r):
    n3 = args.table3_images
    opts = OPERATOR_OPTIONS[op]
    try:
      muts, info = mutation.make_mutants(
          jax.random.fold_in(key, 1000 + i), clf, args.table3_mutants, op, r,
          accuracy_fn=gate, max_draws=args.table3_max_draws, **opts)
    except mutation.GateRejectedError as e:
      print(f"Table 3 {op} {r}: {e}")
      return {"row": np.array([np.nan, np.nan, np.nan, e.drawn, e.accepted])}
    lcr = mutation.label_change_rate(clf, muts, xv[:n3],
                                     original_predictions=pred["validation"][:n3])
    w = wrong["validation"][:n3]
    row = np.array([lcr[~w].mean(), lcr[w].mean(), metrics.auroc(lcr, w), info["drawn"],
                    info["accepted"]])
    print(f"Table 3 {op} rate {r}: LCR correct {row[0]:.4f} wrong {row[1]:.4f} AUROC "
          f"{row[2]:.3f} ({info['drawn']} drawn, {time.time() - t0:.0f}s)", flush=True)
    return {"row": row}

  configs = [(op, float(r)) for op, rates in (("NAI", args.nai_rates), ("GF", args.gf_rates))
             for r in rates.split(",")]
  t3 = {f"{op}_{r}": _cached(os.path.join(args.workdir, f"table3_{op}_{r}.npz"),
                             lambda i=i, op=op, r=r: table3_row(i, op, r))["row"]
        for i, (op, r) in enumerate(configs)}
  usable = [k for k in t3 if np.isfinite(t3[k][2])]
  if not usable:
    raise SystemExit("no operator and rate of Table 3 passed the accuracy gate; "
                     "lower --nai-rates/--gf-rates")
  best = max(usable, key=lambda k: t3[k][2])
  op, rate = best.split("_")[0], float(best.split("_")[1])
  print(f"chosen: {op} rate {rate} (best validation AUROC of LCR)", flush=True)

  # 4. The mutant ensemble (drawn again, deterministically, on a resume) and
  # every mutant's predictions, per split: validation, test, the training
  # subset of Wu et al.'s protocol, and the shifted test halves.
  mutants = {}

  def mutant_stage(k, x):
    if not mutants:
      muts, info = mutation.make_mutants(jax.random.fold_in(key, 7), clf, args.mutants, op,
                                         rate, accuracy_fn=gate, **OPERATOR_OPTIONS[op])
      mutants.update(muts=muts, info=info)
    preds = mutation.mutant_predictions(clf, mutants["muts"], x)
    print(f"mutant predictions on {k} ({time.time() - t0:.0f}s)", flush=True)
    return {"changes": preds != pred[k][None, :len(x)],
            "mutant_accuracy": mutants["info"]["accuracies"],
            "drawn": np.array(mutants["info"]["drawn"])}

  n_sub = min(args.train_subset, len(sets["train"][0]))
  lcr_sets = {"validation": sets["validation"][0], "test": sets["test"][0],
              **{f"test_s{s}": sets[f"test_s{s}"][0] for s in SHIFT_SEVERITIES}}
  changes = {}
  for k in ("validation", "test"):
    changes[k] = _cached(os.path.join(args.workdir, f"lcr_{k}.npz"),
                         lambda k=k: mutant_stage(k, lcr_sets[k]))
  cond = {b: {} for b in ("black", "mean")}
  for b in ("black", "mean"):
    for k in ("validation", "test", "train"):
      cond[b][k] = conductance(k, b)
      print(f"conductance ({b} baseline) on {k} ({time.time() - t0:.0f}s)", flush=True)
  changes["train_subset"] = _cached(os.path.join(args.workdir, "lcr_train_subset.npz"),
                                    lambda: mutant_stage("train", sets["train"][0][:n_sub]))
  for s in SHIFT_SEVERITIES:
    k = f"test_s{s}"
    changes[k] = _cached(os.path.join(args.workdir, f"lcr_{k}.npz"),
                         lambda k=k: mutant_stage(k, lcr_sets[k]))
    for b in ("black", "mean"):
      cond[b][k] = conductance(k, b)
  print(f"all stages computed ({time.time() - t0:.0f}s)", flush=True)
  if args.compute_only:
    return
  lc = {"changes_validation": changes["validation"]["changes"],
        "changes_test": changes["test"]["changes"],
        "mutant_accuracy": changes["validation"]["mutant_accuracy"],
        "drawn": changes["validation"]["drawn"]}
  pc = {f"pred_{k}": pred[k] for k in ("train", "validation", "test")}
  pc.update({f"cond_{k}": cond["black"][k] for k in ("train", "validation", "test")})
  lcr = {k: lc[f"changes_{k}"].mean(0) for k in ("validation", "test")}

  # 5. Conductance detector.
  feats = {k: _features(pc[f"pred_{k}"], pc[f"cond_{k}"]) for k in sets}
  det = detection.train_detector(jax.random.fold_in(key, 11), feats["train"], wrong["train"],
                                 epochs=args.detector_epochs)
  det_scores = {k: det.scores(feats[k]) for k in ("validation", "test")}

  rows, curves = {}, {}

  def report(name, s_val, s_test):
    th = detection.choose_threshold(s_val, wrong["validation"])
    rows[name] = {"validation": detection.evaluate_scores(s_val, wrong["validation"], th),
                  "test": detection.evaluate_scores(s_test, wrong["test"], th),
                  "threshold": th}
    curves[name] = detection.roc_curve(s_test, wrong["test"])

  report("conductance", det_scores["validation"], det_scores["test"])
  report("LCR", lcr["validation"], lcr["test"])

  # 6. Unified classifiers on [LCR, detector score].
  both = {k: np.stack([lcr[k], det_scores[k]], 1) for k in ("validation", "test")}
  for kind in detection.COMBINERS:
    kkey = jax.random.fold_in(key, 100 + detection.COMBINERS.index(kind))
    oof = _oof_scores(kind, both["validation"], wrong["validation"], kkey)
    c = detection.fit_combiner(kind, both["validation"], wrong["validation"], key=kkey,
                               **({"epochs": 30} if kind == "nn" else {}))
    report(f"{kind.upper() if kind != 'rf' else 'RF'} (both)", oof, c.scores(both["test"]))

  # 7. Figure 4: AUROC of LCR against the number of mutants.
  counts = [c for c in (5, 10, 20, 30, 50, 75, 100) if c <= lc["changes_validation"].shape[0]]
  fig4 = {c: metrics.auroc(lc["changes_validation"][:c].mean(0), wrong["validation"])
          for c in counts}

  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  plt.figure(figsize=(4.5, 3.2))
  plt.plot(list(fig4), list(fig4.values()), "o-")
  plt.xlabel("number of mutants")
  plt.ylabel("validation AUROC of LCR")
  plt.title(f"{op} rate {rate}")
  plt.tight_layout()
  plt.savefig(os.path.join(args.out, "figure4_auroc_vs_mutants.png"), dpi=110)
  plt.close()
  plt.figure(figsize=(4.5, 4.2))
  for name, (fpr, tpr, _) in curves.items():
    plt.plot(fpr, tpr, label=f"{name} ({rows[name]['test']['auroc']:.3f})")
  plt.plot([0, 1], [0, 1], "k:", lw=0.8)
  plt.xlabel("false positive rate (right flagged)")
  plt.ylabel("true positive rate (wrong flagged)")
  plt.legend(fontsize=7)
  plt.title("ROC on the test half")
  plt.tight_layout()
  plt.savefig(os.path.join(args.out, "figure5_roc.png"), dpi=110)
  plt.close()

  res = {"date": datetime.date.today().isoformat(), "data": data.JPEG_CAVEAT,
         "accuracy": acc, "num_wrong": {k: int(w.sum()) for k, w in wrong.items()},
         "table3": {k: dict(zip(["lcr_correct", "lcr_wrong", "auroc", "drawn", "accepted"],
                                [float(a) if np.isfinite(a) else None for a in v]))
                    for k, v in t3.items()},
         "chosen": {"operator": op, "rate": rate, "mutants": int(lc["changes_test"].shape[0]),
                    "drawn": int(lc["drawn"]),
                    "mutant_accuracy_mean": float(lc["mutant_accuracy"].mean())},
         "table4": rows, "figure4": fig4, "wall_seconds": time.time() - t0}
  table4 = reporting.markdown_table(
      ["detector", "validation AUROC", "val. right recall", "val. wrong recall", "test AUROC",
       "test right recall", "test wrong recall"],
      [[name, *(f"{r[s][k]:.3f}" for s in ("validation", "test")
                for k in ("auroc", "right_recall", "wrong_recall"))]
       for name, r in rows.items()])
  table3 = reporting.markdown_table(
      ["operator, rate", "mean LCR correct", "mean LCR wrong", "validation AUROC", "drawn"],
      [[k.replace("_", ", "), f"{v[0]:.4f}", f"{v[1]:.4f}", f"{v[2]:.3f}", int(v[3])]
       if np.isfinite(v[2]) else
       [k.replace("_", ", "), "-", "-",
        f"rate too high: {int(v[4])} of {int(v[3])} mutants kept 90% accuracy", int(v[3])]
       for k, v in t3.items()])
  reporting.save_results(args.out, res, [table4, table3])
  print(f"wall time {time.time() - t0:.0f}s")


if __name__ == "__main__":
  main()
