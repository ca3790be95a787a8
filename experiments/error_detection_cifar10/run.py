"""Wu, Michel and Briot's error detection on CIFAR-10 with a trained ResNet-20.

    python experiments/error_detection_cifar10/run.py --model runs/resnet20_cifar10 \
        --data-dir ../shared/data --workdir runs/error_detection_cifar10 \
        --out experiments/results/error_detection_cifar10

Stages (each cached in ``--workdir`` as ``.npz``, so a rerun resumes):

1. logits and ``layer3.2`` per-channel features of the paper split (train
   50000, validation 5000, test 5000) and of the test half corrupted at the
   ``--shift-severities`` (image ``i`` by ``CORRUPTIONS[i % 6]``);
2. conductance of ``layer3.2`` (right Riemann, n = 10, predicted class,
   spatial mean) from the black and from the mean-image baseline;
3. Table 3 (skipped with ``--operator``/``--rate``): LCR of correct and wrong
   validation predictions for NAI and GF at several rates; the best
   validation AUROC chooses the operator and rate;
4. ``--mutants`` mutants through an accuracy gate (90% of the original's
   validation accuracy) and their predictions on the validation and test
   halves; the first ``--extra-mutants`` on the ``--train-subset`` training
   images (Wu et al.'s protocol) and on the shifted halves;
5. the report (without ``--compute-only``): the logit scores (MSP, entropy,
   margin, DOCTOR-alpha, energy), Mahalanobis (fitted on the training
   features), LCR, our conductance detector and Wu et al.'s; combinations
   (MSP + LCR, MSP + conductance, LCR + conductance, all) by five combiners
   fitted on validation; Wu et al.'s protocol (combiners fitted on the
   training subset with their settings, equal-recall thresholds); every
   metric and the bootstrap interval of each AUROC gain over MSP, on the test
   half and the shifted halves; figures; ``results.json`` and ``tables.md``
   in ``--out``.
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


_cached = reporting.cached_arrays


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


def _oof_scores(kind, x, y, key, options, folds=5):
  """Out-of-fold scores of a combiner on the validation set (stratified folds)."""
  from sklearn.model_selection import StratifiedKFold
  scores = np.empty(len(y))
  skf = StratifiedKFold(folds, shuffle=True, random_state=0)
  for i, (tr, te) in enumerate(skf.split(x, y)):
    c = detection.fit_combiner(kind, x[tr], y[tr], key=jax.random.fold_in(key, i), **options)
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
  p.add_argument("--extra-mutants", type=int, default=None,
                 help="LCR of the training subset and of the shifted halves from the first "
                      "EXTRA_MUTANTS mutants only (default: all --mutants)")
  p.add_argument("--shift-severities", default="3,5",
                 help="corruption severities of the shifted test halves ('' for none)")
  p.add_argument("--operator", choices=sorted(OPERATOR_OPTIONS), default=None,
                 help="with --rate: skip the Table 3 sweep and use this mutation operator")
  p.add_argument("--rate", type=float, default=None, help="with --operator")
  p.add_argument("--compute-only", action="store_true",
                 help="compute and cache every stage, write no report")
  p.add_argument("--limit", type=int, default=None,
                 help="use only the first LIMIT images of each split (smoke tests)")
  args = p.parse_args()
  if (args.operator is None) != (args.rate is None):
    p.error(f"--operator and --rate go together; got --operator {args.operator} "
            f"and --rate {args.rate}")
  severities = tuple(int(v) for v in args.shift_severities.split(",") if v.strip())
  extra = args.mutants if args.extra_mutants is None else args.extra_mutants
  if not 1 <= extra <= args.mutants:
    p.error(f"--extra-mutants must lie in [1, --mutants={args.mutants}]; got {extra}")
  t0 = time.time()
  os.makedirs(args.workdir, exist_ok=True)
  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(args.seed)

  path = models.model_folder(args.model, name="--model")
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
  for s in severities:
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

  configs = [] if args.operator else [
      (op, float(r)) for op, rates in (("NAI", args.nai_rates), ("GF", args.gf_rates))
      for r in rates.split(",") if r.strip()]
  t3 = {f"{op}_{r}": _cached(os.path.join(args.workdir, f"table3_{op}_{r}.npz"),
                             lambda i=i, op=op, r=r: table3_row(i, op, r))["row"]
        for i, (op, r) in enumerate(configs)}
  if args.operator:
    op, rate = args.operator, args.rate
    print(f"given: {op} rate {rate} (no Table 3 sweep)", flush=True)
  else:
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

  def mutant_stage(k, x, m=args.mutants):
    if not mutants:
      muts, info = mutation.make_mutants(jax.random.fold_in(key, 7), clf, args.mutants, op,
                                         rate, accuracy_fn=gate, **OPERATOR_OPTIONS[op])
      mutants.update(muts=muts, info=info)
    muts = jax.tree.map(lambda a: a[:m], mutants["muts"])
    preds = mutation.mutant_predictions(clf, muts, x)
    print(f"mutant predictions on {k}, {m} mutants ({time.time() - t0:.0f}s)", flush=True)
    return {"changes": preds != pred[k][None, :len(x)],
            "mutant_accuracy": mutants["info"]["accuracies"][:m],
            "drawn": np.array(mutants["info"]["drawn"])}

  n_sub = min(args.train_subset, len(sets["train"][0]))
  lcr_sets = {"validation": sets["validation"][0], "test": sets["test"][0],
              **{f"test_s{s}": sets[f"test_s{s}"][0] for s in severities}}
  changes = {}
  for k in ("validation", "test"):
    changes[k] = _cached(os.path.join(args.workdir, f"lcr_{k}.npz"),
                         lambda k=k: mutant_stage(k, lcr_sets[k]))
  cond = {b: {} for b in ("black", "mean")}
  for b in ("black", "mean"):
    for k in ("validation", "test", "train"):
      cond[b][k] = conductance(k, b)
      print(f"conductance ({b} baseline) on {k} ({time.time() - t0:.0f}s)", flush=True)
  if n_sub:
    changes["train_subset"] = _cached(
        os.path.join(args.workdir, f"lcr_train_subset_{extra}.npz"),
        lambda: mutant_stage("train", sets["train"][0][:n_sub], extra))
  for s in severities:
    k = f"test_s{s}"
    changes[k] = _cached(os.path.join(args.workdir, f"lcr_{k}_{extra}.npz"),
                         lambda k=k: mutant_stage(k, lcr_sets[k], extra))
    for b in ("black", "mean"):
      cond[b][k] = conductance(k, b)
  print(f"all stages computed ({time.time() - t0:.0f}s)", flush=True)
  if args.compute_only:
    return
  report(args, t0, key, sets, fw, pred, wrong, acc, cond, changes, t3, op, rate, extra,
         severities, n_sub)


NAMES = {"msp": "MSP", "entropy": "entropy", "margin": "margin",
         "doctor_alpha": "DOCTOR-alpha", "energy": "energy"}
SETS = {"MSP + LCR": ("MSP", "LCR"), "MSP + conductance": ("MSP", "conductance"),
        "LCR + conductance": ("LCR", "conductance"),
        "all": ("MSP", "entropy", "margin", "DOCTOR-alpha", "energy", "Mahalanobis", "LCR",
                "conductance")}
# Wu et al.'s unified classifiers (their notebook): NN 10-10 (dropout 0.5),
# Adam 1e-3, batch 100, 3 epochs, unweighted BCE; RF 100 trees of depth 10.
WU_COMBINER_OPTIONS = {"nn": {"hidden": (10, 10), "epochs": 3, "batch_size": 100,
                              "class_weight": None, "normalize": "range"},
                       "rf": {"max_depth": 10}, "lda": {}, "qda": {}, "logreg": {}}
OUR_COMBINER_OPTIONS = {"nn": {"epochs": 30}, "rf": {}, "lda": {}, "qda": {}, "logreg": {}}


def _stack(scores, names):
  return np.stack([scores[n] for n in names], 1)


def report(args, t0, key, sets, fw, pred, wrong, acc, cond, changes, t3, op, rate, extra,
           severities, n_sub):
  """Every score, combination and protocol on the cached stages; writes
  ``results.json``, ``tables.md`` and the figures into ``--out``."""
  from explicable_jax.app import detect as detect_app
  shifted = [f"test_s{s}" for s in severities]
  evals = ["validation", "test", *shifted]
  n_mut = changes["validation"]["changes"].shape[0]

  # Single scores, every one "higher = more likely wrong", on the same predictions.
  fit = detection.scores.fit_mahalanobis(fw["train"]["features"], sets["train"][1], 10)
  # Ours: [one-hot prediction, conductance] from the black baseline, standardised,
  # class-balanced BCE. Wu et al.'s: conductance from the mean image alone,
  # range-normalised, unweighted BCE, 20 epochs of batch 50.
  det_ours = detection.train_detector(
      jax.random.fold_in(key, 11), _features(pred["train"], cond["black"]["train"]),
      wrong["train"], epochs=args.detector_epochs)
  det_wu = detection.train_detector(
      jax.random.fold_in(key, 12), cond["mean"]["train"], wrong["train"], epochs=20,
      batch_size=50, class_weight=None, normalize="range")
  print(f"detectors trained ({time.time() - t0:.0f}s)", flush=True)

  def singles(k, lcr_mutants):
    out = {NAMES[n]: v for n, v in detection.scores.logit_scores(
        fw[k]["logits"], names=tuple(NAMES)).items()}
    out["Mahalanobis"] = np.asarray(detection.scores.mahalanobis(fit, fw[k]["features"]))
    out["LCR"] = changes[k]["changes"][:lcr_mutants].mean(0)
    out["conductance"] = det_ours.scores(_features(pred[k], cond["black"][k]))
    out["conductance (Wu)"] = det_wu.scores(cond["mean"][k])
    return out

  # In distribution, LCR from all mutants; under shift (and for the combiners
  # applied there) LCR from the first `extra` mutants, as the stages computed.
  sc = {k: singles(k, n_mut) for k in ("validation", "test")}
  sc_x = {k: singles(k, extra) for k in ["validation", *shifted]}

  # Our protocol: combiners fitted on the validation half (validation numbers
  # out of fold), thresholds by Youden's J on validation.
  def combine(base, targets):
    out = {t: {} for t in targets}
    oof = {}
    for set_name, names in SETS.items():
      xv = _stack(base, names)
      for kind in detection.COMBINERS:
        name = f"{set_name} ({kind})"
        kkey = jax.random.fold_in(key, 100 + detection.COMBINERS.index(kind))
        opts = OUR_COMBINER_OPTIONS[kind]
        oof[name] = _oof_scores(kind, xv, wrong["validation"], kkey, opts)
        c = detection.fit_combiner(kind, xv, wrong["validation"], key=kkey, **opts)
        for t, st in targets.items():
          out[t][name] = c.scores(_stack(st, names))
    return oof, out

  oof, comb = combine(sc["validation"], {"test": sc["test"]})
  sc["validation"].update(oof)
  sc["test"].update(comb["test"])
  if shifted:
    oof_x, comb_x = combine(sc_x["validation"], {k: sc_x[k] for k in shifted})
    sc_x["validation"].update(oof_x)
    for k in shifted:
      sc_x[k].update(comb_x[k])
  print(f"combiners fitted ({time.time() - t0:.0f}s)", flush=True)

  def tables(val_scores, target_scores, target, method):
    th = {n: detection.choose_threshold(val_scores[n], wrong["validation"], method=method)
          for n in target_scores}
    t = detection.score_table(target_scores, wrong[target], thresholds=th)
    c = detection.compare_to_baseline(jax.random.fold_in(key, 99), target_scores,
                                      wrong[target], baseline="MSP")
    return t, c

  results = {"validation": detection.score_table(sc["validation"], wrong["validation"])}
  results["test"], results["test_vs_msp"] = tables(sc["validation"], sc["test"], "test",
                                                   "youden")

  # For the shifted halves, each set's combiner is the one with the best
  # validation (out-of-fold) AUROC, so the table does not choose on the test data.
  def chosen_combiners(val):
    keep = {}
    for set_name in SETS:
      names = [f"{set_name} ({k})" for k in detection.COMBINERS]
      keep[set_name] = max(names, key=lambda n: metrics.auroc(val[n], wrong["validation"]))
    return keep

  shift_names = None
  for k in shifted:
    keep = chosen_combiners(sc_x["validation"])
    shift_names = [*singles_names(), *keep.values()]
    results[k], results[f"{k}_vs_msp"] = tables(
        sc_x["validation"], {n: sc_x[k][n] for n in shift_names}, k, "youden")

  # Wu et al.'s protocol: features of the training subset (the detector's own
  # training images, as in their code), their combiner settings, thresholds at
  # equal recalls on validation.
  wu = None
  if n_sub:
    sub = slice(0, n_sub)
    wu_feats = {"train": np.stack([changes["train_subset"]["changes"].mean(0),
                                   det_wu.scores(cond["mean"]["train"][sub])], 1)}
    for k in ("validation", "test"):
      wu_feats[k] = np.stack([changes[k]["changes"][:extra].mean(0),
                              det_wu.scores(cond["mean"][k])], 1)
    wu_val = {"conductance (Wu)": wu_feats["validation"][:, 1],
              "LCR": wu_feats["validation"][:, 0]}
    wu_test = {"conductance (Wu)": wu_feats["test"][:, 1], "LCR": wu_feats["test"][:, 0]}
    for kind in detection.COMBINERS:
      kkey = jax.random.fold_in(key, 200 + detection.COMBINERS.index(kind))
      c = detection.fit_combiner(kind, wu_feats["train"], wrong["train"][sub], key=kkey,
                                 **WU_COMBINER_OPTIONS[kind])
      wu_val[f"LCR + conductance ({kind})"] = c.scores(wu_feats["validation"])
      wu_test[f"LCR + conductance ({kind})"] = c.scores(wu_feats["test"])
    wu_val["MSP"], wu_test["MSP"] = sc["validation"]["MSP"], sc["test"]["MSP"]
    th = {n: detection.choose_threshold(wu_val[n], wrong["validation"], method="equal_recall")
          for n in wu_val}
    wu = {"validation": detection.score_table(wu_val, wrong["validation"], thresholds=th),
          "test": detection.score_table(wu_test, wrong["test"], thresholds=th),
          "test_vs_msp": detection.compare_to_baseline(jax.random.fold_in(key, 98), wu_test,
                                                       wrong["test"], baseline="MSP")}
  print(f"tables computed ({time.time() - t0:.0f}s)", flush=True)

  # Figure 4: validation AUROC of LCR against the number of mutants.
  counts = [c for c in (5, 10, 20, 30, 50, 75, 100) if c <= n_mut]
  fig4 = {c: metrics.auroc(changes["validation"]["changes"][:c].mean(0), wrong["validation"])
          for c in counts}
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  plt.figure(figsize=(4.5, 3.2))
  plt.plot(list(fig4), list(fig4.values()), "o-", label="LCR")
  plt.axhline(results["validation"]["MSP"]["auroc"], color="k", ls=":", label="MSP")
  plt.xlabel("number of mutants")
  plt.ylabel("validation AUROC")
  plt.title(f"{op} rate {rate}")
  plt.legend(fontsize=7)
  plt.tight_layout()
  plt.savefig(os.path.join(args.out, "figure4_auroc_vs_mutants.png"), dpi=110)
  plt.close()
  best_all = chosen_combiners(sc["validation"])
  shown = [*singles_names(), best_all["MSP + LCR"], best_all["LCR + conductance"],
           best_all["all"]]
  figures = detect_app.plot_curves(args.out, {n: sc["test"][n] for n in shown}, wrong["test"],
                                   title="(test half)", prefix="test_")
  for k in shifted:
    figures += detect_app.plot_curves(args.out, {n: sc_x[k][n] for n in shift_names},
                                      wrong[k], title=f"({k})", prefix=f"{k}_")

  res = {"date": datetime.date.today().isoformat(), "data": data.JPEG_CAVEAT,
         "model": args.model, "accuracy": acc,
         "num_wrong": {k: int(w.sum()) for k, w in wrong.items()},
         "table3": {k: dict(zip(["lcr_correct", "lcr_wrong", "auroc", "drawn", "accepted"],
                                [float(a) if np.isfinite(a) else None for a in v]))
                    for k, v in t3.items()},
         "mutants": {"operator": op, "rate": rate, "count": int(n_mut),
                     "count_shift_and_train_subset": int(extra),
                     "drawn": int(changes["validation"]["drawn"]),
                     "mutant_accuracy_mean": float(
                         changes["validation"]["mutant_accuracy"].mean())},
         "train_subset": int(n_sub), "ours": results, "wu_protocol": wu, "figure4": fig4,
         "chosen_combiners_by_validation": best_all, "figures": figures,
         "wall_seconds_report": time.time() - t0}
  md = [f"Test half ({len(wrong['test'])} predictions, {int(wrong['test'].sum())} wrong), "
        "our protocol: thresholds by Youden's J on the validation half, combiners fitted "
        "on the validation half; the last column is the paired bootstrap 95% interval "
        "(1000 resamples) of the AUROC gain over MSP.",
        detect_app.markdown(results["test"], results["test_vs_msp"]),
        "Validation half (combiners: 5-fold out-of-fold scores).",
        detect_app.markdown(results["validation"])]
  if wu is not None:
    md += [f"Wu et al.'s protocol on the validation half: combiners fitted on the training "
           f"subset's ({n_sub} images) [LCR over {extra} mutants, Wu detector score], "
           "thresholds at equal recalls on the validation half.",
           detect_app.markdown(wu["validation"]),
           "Wu et al.'s protocol on the test half.",
           detect_app.markdown(wu["test"], wu["test_vs_msp"])]
  for k in shifted:
    md += [f"{k}: the test half corrupted (image i by corruption i mod 6, severity "
           f"{k[-1]}), {int(wrong[k].sum())} of {len(wrong[k])} wrong; LCR over {extra} "
           "mutants; combiners fitted on the (clean) validation half, each set's kind "
           "chosen by validation AUROC.",
           detect_app.markdown(results[k], results[f"{k}_vs_msp"])]
  md += [reporting.markdown_table(["mutants", *map(str, fig4)],
                                  [["validation AUROC of LCR",
                                    *(f"{v:.3f}" for v in fig4.values())]])]
  reporting.save_results(args.out, res, md)
  print(f"report written ({time.time() - t0:.0f}s)")


def singles_names():
  return [*NAMES.values(), "Mahalanobis", "LCR", "conductance", "conductance (Wu)"]


if __name__ == "__main__":
  main()
