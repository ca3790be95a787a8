"""``explicable-jax detect``: error scores of a trained classifier, one table.

For an exported model (zoo or adapted through the contract) and a dataset of
the registry or an ``.npz`` file, on the paper split (training set; the test
set halved into validation and test halves, seed 0):

* every logit score of the registry
  :data:`explicable_jax.detection.scores.LOGIT_SCORES` (MSP, entropy, margin,
  DOCTOR, energy, and any registered with ``register_score``), always, with
  MSP as the baseline;
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

The settings and their defaults are :class:`DetectConfig`'s fields, which
``run_detect``, the CLI's options and their help all read. The gate, the
mutants' key, the conductance features and the detector's training are
:mod:`explicable_jax.detection.pipeline`'s, shared with the audit.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import time
from collections.abc import Mapping

import jax
import numpy as np

from explicable_jax import conventions
from explicable_jax import _batching, _paths, _validation, detection
from explicable_jax.app import _options, reporting
from explicable_jax.app._options import setting
from explicable_jax.detection import pipeline
from explicable_jax.detection.pipeline import (conductance_features, default_layer,  # noqa: F401
                                               load_splits, predict_logits)

__all__ = ["DetectConfig", "run_detect", "OPTIONAL_SCORES", "logit_score_names",
           "score_names", "markdown", "plot_curves", "load_splits", "default_layer",
           "predict_logits", "conductance_features"]

OPTIONAL_SCORES = ("mahalanobis", "lcr", "conductance")
"""The scores beyond the logits' that ``scores`` may add (each needs more
than the logits: a layer's features, mutants, conductance)."""


def logit_score_names() -> tuple[str, ...]:
  """The logit scores detect always computes: every name of the registry
  :data:`explicable_jax.detection.scores.LOGIT_SCORES`."""
  return detection.scores.score_names()


def score_names() -> tuple[str, ...]:
  """Every score detect can compute: the logit scores, then
  :data:`OPTIONAL_SCORES`."""
  return logit_score_names() + OPTIONAL_SCORES


def _mutation_operators() -> tuple[str, ...]:
  from explicable_jax import mutation
  return mutation.operator_names()


@dataclasses.dataclass(frozen=True)
class DetectConfig:
  """Every setting of :func:`run_detect` and ``explicable-jax detect`` with its
  default; the CLI's options are built from these fields."""
  dataset: str | None = setting(None, "a dataset of the registry (its test set is halved)",
                                group="data")
  data_file: str | None = setting(None, "an .npz with x_train, y_train, x_test, y_test",
                                  flag="--data", group="data", metavar="FILE.npz")
  scores: tuple[str, ...] = setting(
      (), "comma-separated scores to add to the logit scores (always computed; default: "
      "those only)", items=str, choices=score_names)
  layer: str | None = setting(None, "split point for mahalanobis and conductance (default: "
                              "the last one with a feature map)")
  mutants: int = setting(20, "mutants for lcr")
  operator: str = setting("NAI", "mutation operator for lcr", choices=_mutation_operators)
  rate: float = setting(0.01, "mutation rate for lcr")
  train_limit: int = setting(10000, "training images for the conductance detector")
  threshold: str = setting("youden", "threshold rule on the validation half",
                           choices=("youden", "equal_recall"))
  seed: int = setting(0, "seed of the split, mutants and detector")
  data_dir: str | None = setting(None, "local data folder (default: $EXPLICABLE_JAX_DATA)")
  limit: int | None = setting(None, "first LIMIT images of each split only (quick checks)",
                              parse=int)
  n_resamples: int = setting(1000, "bootstrap resamples of the AUROC gain over MSP")

  def __post_init__(self):
    scores = (self.scores,) if isinstance(self.scores, str) else tuple(self.scores)
    object.__setattr__(self, "scores", scores)
    for s in scores:
      _validation.check_choice("scores", s, score_names())
    _validation.check_choice("threshold", self.threshold, ("youden", "equal_recall"))
    _validation.check_choice("operator", self.operator, _mutation_operators())
    _validation.check_positive("mutants", self.mutants, integer=True)
    _validation.check_positive("train_limit", self.train_limit, integer=True)
    _validation.check_positive("n_resamples", self.n_resamples, integer=True)
    _validation.check_fraction("rate", self.rate, positive=True)
    _validation.check_seed("seed", self.seed)
    if self.limit is not None:
      _validation.check_positive("limit", self.limit, integer=True)


def markdown(table: Mapping[str, dict], comparison: Mapping[str, dict] | None = None, *,
             digits: int = 3) -> str:
  """A Markdown table of :func:`explicable_jax.detection.score_table` rows and,
  when given, the :func:`~explicable_jax.detection.compare_to_baseline` column."""
  if not isinstance(table, Mapping) or not table or not all(
      isinstance(r, Mapping) for r in table.values()):
    raise TypeError("table must be the non-empty mapping score name -> row that "
                    f"detection.score_table returns; got {type(table).__name__}"
                    + (" (empty)" if isinstance(table, Mapping) and not table else "") + ".")
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


@conventions.boundary(scores="scores{}", is_wrong="mask")
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


@conventions.boundary()
def run_detect(model: str, out: str, config: DetectConfig | None = None, *,
               progress: bool = True, **overrides) -> dict:
  """Runs the detection table of a trained model; returns ``results.json``'s dict.

  Args:
    model: a train workdir or a ``models.save`` folder.
    out: the folder for ``scores.npz``, ``results.json``, ``table.md``, the
      figures and the caches (a rerun resumes from them).
    config: the settings (default: :class:`DetectConfig`'s defaults).
    progress: print what is done.
    **overrides: settings replacing ``config``'s (``dataset="cifar10"``,
      ``scores=("lcr",)``...; the fields of :class:`DetectConfig`).

  Returns:
    The results: accuracy per split, the table on the test half (every logit
    score, MSP the baseline, and the ``scores`` added), the AUROC gain over MSP
    with its bootstrap interval, the settings.
  """
  c = _options.overridden(config, overrides, what="run_detect()", kind=DetectConfig)
  _paths.check_folder("out", out)
  if c.data_file is not None:
    _paths.check_npz("data_file", c.data_file, "x_train, y_train, x_test and y_test")
  t0 = time.time()
  from explicable_jax import models
  path = models.model_folder(model, name="model")
  clf = models.load(path)
  logit_names = logit_score_names()
  want = list(logit_names) + [s for s in OPTIONAL_SCORES if s in c.scores]
  splits, note = load_splits(c.dataset, c.data_file, c.data_dir, c.seed, c.limit)
  pipeline.check_split_labels(splits, clf.num_classes, dataset=c.dataset,
                              data_file=c.data_file)
  layer = None
  if "lcr" not in want:  # mutation settings that no chosen score reads
    defaults = DetectConfig()
    unread = [f"--{k} {getattr(c, k)}" for k in ("operator", "mutants", "rate")
              if getattr(c, k) != getattr(defaults, k)]
    if unread:
      raise ValueError(f"{', '.join(unread)} {'is' if len(unread) == 1 else 'are'} read only "
                       f"by the lcr score, and --scores {','.join(want)} has none: add lcr, "
                       "or drop them.")
  if c.layer is not None and not ("mahalanobis" in want or "conductance" in want):
    raise ValueError(f"--layer {c.layer} is read only by the mahalanobis and conductance "
                     f"scores, and --scores {','.join(want)} has neither: add one, or drop "
                     "--layer.")
  if "mahalanobis" in want or "conductance" in want:
    layer = c.layer or default_layer(clf, splits["test"][0])
    if layer is None:
      raise ValueError("scores mahalanobis and conductance need a split point, and this "
                       "model has none; adapt it with layers=[...] or drop those scores.")
    clf.check_layer(layer)
  # The caches of one setting live in their own folder, so a rerun with other
  # settings never reads stale arrays.
  settings = {"model": path, "dataset": c.dataset, "data_file": c.data_file,
              "layer": layer, "scores": want, "mutants": c.mutants, "operator": c.operator,
              "rate": c.rate, "train_limit": c.train_limit, "seed": c.seed, "limit": c.limit}
  cache = os.path.join(out, "cache", hashlib.sha1(
      json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12])
  os.makedirs(cache, exist_ok=True)
  key = jax.random.key(c.seed)
  say = print if progress else (lambda *a, **k: None)

  features_fn = clf.split(layer)[0] if layer else None

  @jax.jit
  def forward(cl, xb):
    if features_fn is None:
      return cl.logits(xb), jax.numpy.zeros((xb.shape[0], 0))
    f, h = cl.split(layer)
    a = f(xb)
    return h(a), pipeline.pooled(a)

  fw = {}
  for k, (x, _) in splits.items():
    fw[k] = reporting.cached_arrays(
        os.path.join(cache, f"forward_{k}.npz"), lambda x=x: dict(zip(
            ("logits", "features"),
            _batching.map_batches(forward, [x], batch_size=pipeline.BATCH_SIZE,
                                  args=(clf,)))))
  pred = {k: f["logits"].argmax(-1) for k, f in fw.items()}
  wrong = {k: pred[k] != y for k, (_, y) in splits.items()}
  for k in pipeline.HALVES:
    if wrong[k].all() or not wrong[k].any():
      raise ValueError(f"the {k} half has {int(wrong[k].sum())} wrong predictions out of "
                       f"{len(wrong[k])}; detection needs both right and wrong ones.")
  say("predictions: accuracy " + ", ".join(f"{k} {1 - w.mean():.4f}" for k, w in wrong.items())
      + f" ({time.time() - t0:.0f}s)")
  halves = pipeline.HALVES
  sc = {h: detection.scores.logit_scores(fw[h]["logits"], names=logit_names) for h in halves}
  if "mahalanobis" in want:
    fit = detection.scores.fit_mahalanobis(fw["train"]["features"], splits["train"][1],
                                           clf.num_classes)
    for h in halves:
      sc[h]["mahalanobis"] = np.asarray(detection.scores.mahalanobis(fit, fw[h]["features"]))
  if "lcr" in want:
    def lcr_stage():
      gate = pipeline.accuracy_gate(clf, splits["validation"])
      lcr, info = pipeline.lcr_scores(key, clf, {h: splits[h][0] for h in halves}, pred,
                                      pipeline.Mutants(c.mutants, c.operator, c.rate), gate)
      say(f"{c.mutants} {c.operator} mutants at rate {c.rate} ({info['drawn']} drawn) "
          f"({time.time() - t0:.0f}s)")
      return {f"lcr_{h}": v for h, v in lcr.items()}
    lcr = reporting.cached_arrays(os.path.join(cache, "lcr.npz"), lcr_stage)
    for h in halves:
      sc[h]["lcr"] = lcr[f"lcr_{h}"]
  if "conductance" in want:
    cond = reporting.cached_arrays(
        os.path.join(cache, "conductance.npz"),
        lambda: conductance_features(clf, splits, layer, c.train_limit))
    feats = pipeline.detector_features(clf.num_classes, pred, cond)
    det_scores, _ = pipeline.conductance_detector(key, feats, wrong)
    for h in halves:
      sc[h]["conductance"] = det_scores[h]
  say(f"scores computed ({time.time() - t0:.0f}s)")
  thresholds = {n: detection.choose_threshold(sc["validation"][n], wrong["validation"],
                                              method=c.threshold) for n in sc["test"]}
  table = detection.score_table(sc["test"], wrong["test"], thresholds=thresholds)
  comparison = detection.compare_to_baseline(jax.random.fold_in(key, 99), sc["test"],
                                             wrong["test"], baseline=detection.scores.BASELINE,
                                             n_resamples=c.n_resamples)
  np.savez(os.path.join(out, "scores.npz"), **{f"{h}_{n}": s for h in halves
                                               for n, s in sc[h].items()},
           **{f"{h}_wrong": wrong[h] for h in halves})
  figures = plot_curves(out, sc["test"], wrong["test"], title="(test half)")
  md = markdown(table, comparison)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(md + "\n")
  result = {"date": datetime.date.today().isoformat(), "model": model, "layer": layer,
            "data": note, "threshold_rule": c.threshold, "accuracy": {
                k: float(1 - w.mean()) for k, w in wrong.items()},
            "table": table, "auroc_minus_msp": comparison, "figures": figures,
            "settings": {"scores": want, "mutants": c.mutants, "operator": c.operator,
                         "rate": c.rate, "train_limit": c.train_limit, "seed": c.seed,
                         "limit": c.limit}, "wall_seconds": time.time() - t0}
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(result, f, indent=1, default=float)
  say(md)
  return result
