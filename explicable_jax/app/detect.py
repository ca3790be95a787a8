"""``explicable-jax detect``: error scores of a trained classifier, one table.

For an exported model (zoo or adapted through the contract) and a dataset of
the registry or an ``.npz`` file, on the paper split (training set; the test
set halved into validation and test halves, seed 0):

* the logit scores of :mod:`explicable_jax.detection.scores` (MSP, entropy,
  margin, DOCTOR, energy), always, with MSP as the baseline;
* ``mahalanobis``: Lee et al.'s score at ``layer`` (the last split point by
  default), class Gaussians fitted on the training set's features and labels;
* ``lcr``: the label change rate over ``mutants`` model mutants (operator and
  rate given, accuracy gate on the validation half);
* ``conductance``: Wu et al.'s detector (MLP 200-200 on the one-hot
  prediction and per-feature-map conductance at ``layer``, black baseline,
  10 right-Riemann steps), trained on up to ``train_limit`` training images.

Each threshold is chosen on the validation half (``threshold`` rule) and the
table is computed on the test half: AUROC, AUPR, FPR@95%TPR, AURC, E-AURC,
selective accuracy, recalls, and every score's AUROC gain over MSP with a
paired bootstrap interval. Writes ``scores.npz``, ``results.json``,
``table.md``, ``roc.png`` and ``risk_coverage.png``; every stage is cached in
``out`` so a rerun of the same command resumes.
"""
from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from explicable_jax import _batching, _validation, data, detection, models, mutation
from explicable_jax.app import reporting

LOGIT_SCORES = ("msp", "entropy", "margin", "doctor_alpha", "energy")
OPTIONAL_SCORES = ("mahalanobis", "lcr", "conductance")
SCORES = LOGIT_SCORES + OPTIONAL_SCORES


def markdown(table: Mapping[str, dict], comparison: Mapping[str, dict] | None = None, *,
             digits: int = 3) -> str:
  """A Markdown table of :func:`explicable_jax.detection.score_table` rows and,
  when given, the :func:`~explicable_jax.detection.compare_to_baseline` column."""
  first = next(iter(table.values()))
  sel = [k for k in first if k.startswith("selective_accuracy@")]
  has_recall = any("right_recall" in r for r in table.values())
  header = ["score", "AUROC", "AUPR (errors)", "FPR@95%TPR", "AURC", "E-AURC",
            *[f"sel. acc. @{k.split('@')[1]}" for k in sel]]
  if has_recall:
    header += ["right recall", "wrong recall"]
  if comparison is not None:
    header += ["AUROC - MSP [95% CI]"]
  f = f"{{:.{digits}f}}"
  rows = []
  for name, r in table.items():
    row = [name, *(f.format(r[m]) for m in detection.evaluation.METRICS),
           *(f.format(r[k]) for k in sel)]
    if has_recall:
      row += [f.format(r[k]) if k in r else "-" for k in ("right_recall", "wrong_recall")]
    if comparison is not None:
      c = comparison.get(name)
      row.append("(baseline)" if c is None else
                 f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]")
    rows.append(row)
  return reporting.markdown_table(header, rows)


def plot_curves(out_dir: str, scores: Mapping[str, np.ndarray], is_wrong, *,
                title: str = "", prefix: str = "") -> list[str]:
  """ROC and risk-coverage curves of every score on the same predictions
  (:mod:`explicable_jax.viz`), written as ``{prefix}roc.png`` and
  ``{prefix}risk_coverage.png``; returns the paths."""
  import matplotlib
  matplotlib.use("Agg")
  from explicable_jax import viz
  return [viz.save(viz.roc_curves(scores, is_wrong, title=title),
                   os.path.join(out_dir, f"{prefix}roc.png")),
          viz.save(viz.risk_coverage_curves(scores, is_wrong, title=title),
                   os.path.join(out_dir, f"{prefix}risk_coverage.png"))]


def _pooled(a):
  """Per-channel means of a feature map (``(N, ..., C)`` to ``(N, C)``); a
  rank-2 activation is already one value per feature."""
  from explicable_jax import attribution
  return a if a.ndim <= 2 else attribution.per_feature_map(a, reduce="mean")


def default_layer(clf, x) -> str | None:
  """The last split point with a spatial feature map (Wu et al. use the last
  residual block), else the last one before the output."""
  if not clf.layers:
    return None
  ranks = {}
  for name in clf.layers:
    out = jax.eval_shape(clf.split(name)[0], jax.ShapeDtypeStruct(x[:2].shape, np.float32))
    ranks[name] = len(jax.tree.leaves(out)[0].shape)
  spatial = [n for n in clf.layers if ranks[n] >= 3]
  if spatial:
    return spatial[-1]
  return clf.layers[-2] if len(clf.layers) > 1 else clf.layers[-1]


def load_splits(dataset, data_file, data_dir, seed, limit, *, with_index: bool = False):
  """``({"train", "validation", "test": (x float32, y)}, note)``: the paper
  split of a registry dataset, or an ``.npz``'s test arrays halved at random
  (``seed``); with ``with_index`` also ``{"test": indices of the test half
  in the whole test set, "num_test": its size}``."""
  if (dataset is None) == (data_file is None):
    raise ValueError(f"give exactly one of dataset or data_file; got dataset={dataset!r}, "
                     f"data_file={data_file!r}.")
  if data_file is not None:
    if not os.path.exists(data_file):
      raise FileNotFoundError(f"data_file {data_file!r} does not exist.")
    with np.load(data_file, allow_pickle=False) as f:
      need = ("x_train", "y_train", "x_test", "y_test")
      missing = [k for k in need if k not in f.files]
      if missing:
        raise ValueError(f"data_file {data_file!r} must hold arrays {', '.join(need)}; "
                         f"it lacks {', '.join(missing)} (it holds {', '.join(f.files)}).")
      arrays = {k: f[k] for k in need}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays["y_test"]))
    half = len(order) // 2
    index = {"test": order[half:], "num_test": len(order)}
    splits = {"train": (arrays["x_train"], arrays["y_train"]),
              "validation": (arrays["x_test"][order[:half]], arrays["y_test"][order[:half]]),
              "test": (arrays["x_test"][order[half:]], arrays["y_test"][order[half:]])}
    splits = {k: (data.to_float(x) if x.dtype == np.uint8 else np.asarray(x, np.float32),
                  np.asarray(y)) for k, (x, y) in splits.items()}
    note = f"{data_file} (test arrays halved at random, seed {seed})"
  else:
    split = data.paper_split(dataset, data_dir=data_dir, seed=seed)
    splits = {k: (data.to_float(ds.x), np.asarray(ds.y)) for k, ds in split.items()}
    note = split["test"].note
    num_test = len(split["validation"]) + len(split["test"])
    index = {"test": data.paper_split_indices(num_test, seed=seed)["test"],
             "num_test": num_test}
  if limit is not None:
    splits = {k: (x[:limit], y[:limit]) for k, (x, y) in splits.items()}
    index["test"] = index["test"][:limit]
  return (splits, note, index) if with_index else (splits, note)


@jax.jit
def _logits(c, xb):
  return c.logits(xb)


def predict_logits(clf, x, *, batch_size: int = 250) -> np.ndarray:
  """``clf``'s logits of ``x`` in jitted batches (the library's batching helper)."""
  return _batching.map_batches(_logits, [x], batch_size=batch_size, args=(clf,))


def conductance_features(clf, splits, layer: str, train_limit: int, *,
                         batch_size: int = 250) -> dict:
  """Wu et al.'s detector input: per-feature-map conductance at ``layer``
  (predicted class, black baseline, 10 right-Riemann steps) of the first
  ``train_limit`` training images and of the validation and test halves."""
  from explicable_jax.attribution import batched

  @jax.jit
  def cond_batch(c, xb):
    return _pooled(batched.layer_conductance(
        c, xb, layer=layer, target="predicted", n_steps=10, method="riemann_right"))

  out = {}
  for k in ("train", "validation", "test"):
    x = splits[k][0][:train_limit] if k == "train" else splits[k][0]
    out[k] = _batching.map_batches(cond_batch, [x], batch_size=batch_size, args=(clf,))
  return out


def run_detect(model: str, out: str, *, dataset: str | None = None,
               data_file: str | None = None, scores: Sequence[str] = LOGIT_SCORES,
               layer: str | None = None, mutants: int = 20, operator: str = "NAI",
               rate: float = 0.01, train_limit: int = 10000, threshold: str = "youden",
               seed: int = 0, data_dir: str | None = None, limit: int | None = None,
               n_resamples: int = 1000, progress: bool = True) -> dict:
  """Runs the detection table of a trained model; returns ``results.json``'s dict.

  ``model``: a train workdir or a ``save_model`` folder. ``scores``: names of
  :data:`SCORES`; the logit scores are always included (MSP is the
  baseline). ``limit``: the first ``limit`` images of each split (checks).
  """
  t0 = time.time()
  scores = tuple(scores)
  for s in scores:
    _validation.check_choice("scores", s, SCORES)
  _validation.check_choice("threshold", threshold, detection.THRESHOLD_METHODS[:2])
  _validation.check_positive("mutants", mutants, integer=True)
  _validation.check_positive("train_limit", train_limit, integer=True)
  path = models.model_folder(model, name="model")
  clf = models.load(path)
  want = [s for s in LOGIT_SCORES] + [s for s in OPTIONAL_SCORES if s in scores]
  splits, note = load_splits(dataset, data_file, data_dir, seed, limit)
  if "mahalanobis" in want or "conductance" in want:
    layer = layer or default_layer(clf, splits["test"][0])
    if layer is None:
      raise ValueError("scores mahalanobis and conductance need a split point, and this "
                       "model has none; adapt it with layers=[...] or drop those scores.")
    clf.check_layer(layer)
  else:
    layer = None
  # The caches of one setting live in their own folder, so a rerun with other
  # settings never reads stale arrays.
  import hashlib
  settings = {"model": path, "dataset": dataset, "data_file": data_file,
              "layer": layer, "scores": want, "mutants": mutants, "operator": operator,
              "rate": rate, "train_limit": train_limit, "seed": seed, "limit": limit}
  cache = os.path.join(out, "cache", hashlib.sha1(
      json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12])
  os.makedirs(cache, exist_ok=True)
  key = jax.random.key(seed)
  say = print if progress else (lambda *a, **k: None)

  features_fn = clf.split(layer)[0] if layer else None

  @jax.jit
  def forward(c, xb):
    if features_fn is None:
      return c.logits(xb), jax.numpy.zeros((xb.shape[0], 0))
    f, h = c.split(layer)
    a = f(xb)
    return h(a), _pooled(a)

  fw = {}
  for k, (x, _) in splits.items():
    fw[k] = reporting.cached_arrays(
        os.path.join(cache, f"forward_{k}.npz"), lambda x=x: dict(zip(
            ("logits", "features"),
            _batching.map_batches(forward, [x], batch_size=250, args=(clf,)))))
  pred = {k: f["logits"].argmax(-1) for k, f in fw.items()}
  wrong = {k: pred[k] != y for k, (_, y) in splits.items()}
  for k in ("validation", "test"):
    if wrong[k].all() or not wrong[k].any():
      raise ValueError(f"the {k} half has {int(wrong[k].sum())} wrong predictions out of "
                       f"{len(wrong[k])}; detection needs both right and wrong ones.")
  say(f"predictions: accuracy " + ", ".join(f"{k} {1 - w.mean():.4f}" for k, w in wrong.items())
      + f" ({time.time() - t0:.0f}s)")
  halves = ("validation", "test")
  sc = {h: detection.scores.logit_scores(fw[h]["logits"], names=LOGIT_SCORES) for h in halves}
  if "mahalanobis" in want:
    fit = detection.scores.fit_mahalanobis(fw["train"]["features"], splits["train"][1],
                                           clf.num_classes)
    for h in halves:
      sc[h]["mahalanobis"] = np.asarray(detection.scores.mahalanobis(fit, fw[h]["features"]))
  if "lcr" in want:
    def lcr_stage():
      xv, yv = splits["validation"]
      gate = mutation.accuracy_gate(clf, xv[:1000], yv[:1000])
      muts, info = mutation.make_mutants(jax.random.fold_in(key, 7), clf, mutants, operator,
                                         rate, accuracy_fn=gate)
      say(f"{mutants} {operator} mutants at rate {rate} ({info['drawn']} drawn) "
          f"({time.time() - t0:.0f}s)")
      return {f"lcr_{h}": mutation.label_change_rate(
          clf, muts, splits[h][0], original_predictions=pred[h]) for h in halves}
    lcr = reporting.cached_arrays(os.path.join(cache, "lcr.npz"), lcr_stage)
    for h in halves:
      sc[h]["lcr"] = lcr[f"lcr_{h}"]
  if "conductance" in want:
    cond = reporting.cached_arrays(
        os.path.join(cache, "conductance.npz"),
        lambda: conductance_features(clf, splits, layer, train_limit))
    eye = np.eye(clf.num_classes, dtype=np.float32)
    feats = {k: np.concatenate([eye[pred[k][:len(cond[k])]], cond[k].reshape(len(cond[k]), -1)],
                               1) for k in cond}
    det = detection.train_detector(jax.random.fold_in(key, 11), feats["train"],
                                   wrong["train"][:len(feats["train"])], epochs=30)
    for h in halves:
      sc[h]["conductance"] = det.scores(feats[h])
  say(f"scores computed ({time.time() - t0:.0f}s)")
  thresholds = {n: detection.choose_threshold(sc["validation"][n], wrong["validation"],
                                              method=threshold) for n in sc["test"]}
  table = detection.score_table(sc["test"], wrong["test"], thresholds=thresholds)
  comparison = detection.compare_to_baseline(jax.random.fold_in(key, 99), sc["test"],
                                             wrong["test"], n_resamples=n_resamples)
  np.savez(os.path.join(out, "scores.npz"), **{f"{h}_{n}": s for h in halves
                                               for n, s in sc[h].items()},
           **{f"{h}_wrong": wrong[h] for h in halves})
  figures = plot_curves(out, sc["test"], wrong["test"], title="(test half)")
  md = markdown(table, comparison)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(md + "\n")
  result = {"date": datetime.date.today().isoformat(), "model": model, "layer": layer,
            "data": note, "threshold_rule": threshold, "accuracy": {
                k: float(1 - w.mean()) for k, w in wrong.items()},
            "table": table, "auroc_minus_msp": comparison, "figures": figures,
            "settings": {"scores": want, "mutants": mutants, "operator": operator,
                         "rate": rate, "train_limit": train_limit, "seed": seed,
                         "limit": limit}, "wall_seconds": time.time() - t0}
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(result, f, indent=1, default=float)
  say(md)
  return result
