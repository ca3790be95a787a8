"""``explicable-jax audit``: one command that examines a trained classifier.

For an exported model (the zoo, or any model adapted through the contract of
:mod:`explicable_jax.models`) and a dataset (a name of the registry, or an
``.npz`` with ``x_train, y_train, x_test, y_test``), on the paper split (the
training set; the test set halved at random into a validation and a test
half, ``seed``), :func:`audit` answers five questions and writes one report:

1. **Mistakes** (Olmo, Sengupta and Kambhampati, ICCV 2021): the confusion
   matrix of the test half; a class-similarity matrix ``W`` (EKL: WordNet
   path similarity of the class names; IHL / CHL for CIFAR-10 from the
   human labels in the data folder; or a given ``.npy``); the mean ``W`` of
   the mistakes beside the **chance baseline** (each mistake moved to a
   uniformly random wrong class); the most and least explicable
   confusions; with ``reference``, Olmo et al.'s hard and soft scores of
   the two models.
2. **Error detection** (Wu, Michel and Briot; Wang et al., ICSE 2019): the
   **baseline** MSP (the model's own confidence, Hendrycks and Gimpel); the
   label change rate over ``mutants`` accuracy-gated mutants, the rate
   chosen among ``rates`` by the validation AUROC of a 10-mutant trial on
   1000 validation images; Wu et al.'s conductance detector (MLP on the
   one-hot prediction and per-feature-map conductance at ``layer``, trained
   on ``train_limit`` training images); and their combination (LDA on the
   three scores, fitted on the validation half). On the test half: AUROC,
   AURC, E-AURC, the paired bootstrap gain over MSP, risk-coverage curves,
   and the threshold that accepts ``coverage`` of the validation half with
   the coverage and risk it gives on the test half.
3. **Reliance** (Ross, Hughes and Doshi-Velez, IJCAI 2017): with
   ``annotations`` (an ``.npz`` whose ``mask`` marks the features the model
   should *not* use: one ``(H, W[, C])`` mask for every image, or one per
   test image), the share of the input gradient's mass on the annotated
   features (``|d sum_k log p_k / dx|``, the quantity RRR penalises) beside
   the annotated share of the input (what a uniform attribution gives),
   and the accuracy when the annotated features are replaced by the
   training images' per-channel mean.
4. **Hesitation** (Wang and Vasconcelos, NeurIPS 2019): the insecurities of
   the ``hardest`` test images by normalised entropy (gradient class maps
   at ``layer``, entropy difficulty map, top ``r = 0.2`` region), drawn.
5. **Robustness**: accuracy of the test half under Gaussian noise, FGSM
   (``fgsm`` epsilons) and the CIFAR-10-C-style corruptions of
   :mod:`explicable_jax.robustness` at ``severities``.

Every stage is cached under ``out/cache`` (keyed by its settings), so a
rerun of the same command after an interruption resumes. Writes
``report.html`` (self-contained, a one-screen summary first; figures through
:mod:`explicable_jax.viz`), ``results.json`` (every number) and
``command.txt``.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shlex
import time
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _batching, _validation, data, detection, metrics, models
from explicable_jax.app import detect, reporting

SIMILARITIES = ("ekl", "ihl", "chl")
DEFAULT_CORRUPTIONS = ("gaussian_noise", "shot_noise", "defocus_blur", "contrast",
                       "brightness")


@dataclasses.dataclass(frozen=True)
class AuditResult:
  """What :func:`audit` measured; :meth:`as_dict` is ``results.json``.

  ``summary`` holds the headline numbers of the report's first screen; the
  five sections hold every number of theirs; ``report`` and ``results`` are
  the written files' paths.
  """
  summary: dict
  mistakes: dict
  detection: dict
  reliance: dict
  hesitation: dict
  robustness: dict
  settings: dict
  data: str
  command: str
  date: str
  wall_seconds: float
  report: str
  results: str
  note: str | None = None

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


# ---------------------------------------------------------------------------
# Arguments.


def _resolve_model(name: str, model):
  """A Classifier from a Classifier (or anything the contract adapts) or a
  folder (train workdir or ``models.save``); its folder or None."""
  if isinstance(model, (str, os.PathLike)):
    path = models.model_folder(model, name=name)
    return models.load(path), path
  return models.as_classifier(name, model), None


def _check_sequence(name, values, check):
  values = tuple(values)
  for v in values:
    check(name, v)
  return values


def _class_names(classes, clf, dataset_names, num_classes):
  if classes is None:
    classes = clf.class_names or dataset_names
  if classes is None:
    return None
  if isinstance(classes, str):
    raise TypeError(f"classes must be a sequence of names; got the string {classes!r} "
                    "(on the command line: --classes a,b,c).")
  classes = [str(c) for c in classes]
  if len(classes) != num_classes:
    raise ValueError(f"classes must name the model's {num_classes} classes; got "
                     f"{len(classes)}: {classes}.")
  return classes


def similarity_matrix(kind, class_names, *, dataset: str | None, data_dir: str | None,
                      seed: int = 0, num_classes: int) -> tuple[np.ndarray, str]:
  """The ``(C, C)`` class-similarity matrix ``W`` the audit scores mistakes
  with, and where it came from.

  ``ekl``: WordNet path similarity of the class names (CIFAR-10's names map
  to the curated synsets of :data:`explicable_jax.similarity.CIFAR10_SYNSETS`);
  ``ihl``: CIFAR-10H's soft labels on the *validation* half
  (:func:`~explicable_jax.similarity.from_soft_labels`), so nothing of the
  test half enters; ``chl``: Olmo et al.'s 0-4 class ratings divided by 4;
  a path: an ``.npy`` of shape ``(C, C)``.
  """
  from explicable_jax import similarity as sim
  if not isinstance(kind, str):
    return sim.check_weight_matrix("similarity", kind, num_classes), "a matrix given in Python"
  if kind not in SIMILARITIES:
    if not kind.endswith(".npy"):
      raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)} or a path to a "
                       f"(C, C) .npy file; got {kind!r}.")
    if not os.path.exists(kind):
      raise FileNotFoundError(f"similarity file {kind!r} does not exist.")
    w = sim.check_weight_matrix("similarity", np.load(kind, allow_pickle=False), num_classes)
    return w, f"the matrix in {kind}"
  if kind in ("ihl", "chl") and dataset != "cifar10":
    raise ValueError(f"similarity={kind!r} comes from CIFAR-10's human labels and needs "
                     f"dataset='cifar10'; got dataset={dataset!r}. Use 'ekl' or a .npy file.")
  if kind == "ihl":
    test = data.load("cifar10", "test", data_dir=data_dir)
    val = data.paper_split_indices(len(test), seed=seed)["validation"]
    probs = data.load_human_labels("cifar10h", data_dir=data_dir)
    return (sim.from_soft_labels(probs[val], test.y[val], 10),
            "IHL: CIFAR-10H soft labels of the validation half (Peterson et al.)")
  if kind == "chl":
    return (sim.from_ratings(data.load_human_labels("cifar10_chl", data_dir=data_dir)),
            "CHL: Olmo et al.'s 0-4 class ratings / 4")
  if class_names is None:
    raise ValueError("similarity='ekl' needs class names: give classes=[...] (--classes), or "
                     "save the model with class_names.")
  names = [sim.CIFAR10_SYNSETS.get(c, c) for c in class_names]
  return (sim.wordnet_similarity(names, metric="path", data_dir=data_dir),
          "EKL: WordNet 3.0 path similarity of the class names")


def _load_annotations(path, splits, index):
  """The annotation masks of the test half, ``(N, H, W, C)`` floats in [0, 1]."""
  if path is None:
    return None
  if not os.path.exists(path):
    raise FileNotFoundError(f"annotations file {path!r} does not exist.")
  with np.load(path, allow_pickle=False) as f:
    if "mask" not in f.files:
      raise ValueError(f"annotations file {path!r} must hold an array 'mask'; it holds "
                       f"{', '.join(f.files) or 'nothing'}.")
    mask = np.asarray(f["mask"], np.float32)
  x = splits["test"][0]
  shape = x.shape[1:]
  if mask.shape in (shape, shape[:-1]):
    mask = np.broadcast_to(mask.reshape(shape[:-1] + (-1,)), shape)[None]
    return np.broadcast_to(mask, x.shape)
  if mask.ndim == x.ndim - 1 and mask.shape[1:] == shape[:-1]:
    mask = mask[..., None]  # (N, H, W): one mask per image, every channel
  if mask.ndim == x.ndim and mask.shape[1:] in (shape, shape[:-1] + (1,)):
    if mask.shape[0] != index["num_test"]:
      raise ValueError(f"annotations 'mask' has {mask.shape[0]} masks; expected one per test "
                       f"image ({index['num_test']}) or one {shape} mask for all.")
    return np.broadcast_to(mask[index["test"]], x.shape)
  raise ValueError(f"annotations 'mask' must have shape {shape} or {shape[:-1]} (one mask "
                   f"for all images) or (num_test, *{shape}) (one per test image); got "
                   f"{mask.shape}.")


# ---------------------------------------------------------------------------
# The stages.


class _Cache:
  """Each stage's output in ``folder``, named by the stage and a hash of its
  settings: a rerun reads it back, other settings never see it."""

  def __init__(self, folder: str, base: Mapping):
    self.folder = folder
    self.base = dict(base)
    os.makedirs(folder, exist_ok=True)

  def _path(self, name, settings, ext):
    h = hashlib.sha1(json.dumps({**self.base, **settings}, sort_keys=True,
                                default=str).encode()).hexdigest()[:12]
    return os.path.join(self.folder, f"{name}-{h}{ext}")

  def arrays(self, name, settings, fn):
    return reporting.cached_arrays(self._path(name, settings, ".npz"), fn)

  def json(self, name, settings, fn):
    return reporting.cached_json(self._path(name, settings, ".json"), fn)


def _confusions(cm, w, names, k=5):
  """The off-diagonal cells with mistakes, most and least similar first."""
  rows = []
  for i in range(cm.shape[0]):
    for j in range(cm.shape[1]):
      if i != j and cm[i, j] > 0:
        rows.append({"true": names[i], "predicted": names[j], "count": int(cm[i, j]),
                     "similarity": float(w[i, j])})
  frequent = sorted(rows, key=lambda r: (-r["count"], -r["similarity"]))[:k]
  most = sorted(rows, key=lambda r: (-r["similarity"], -r["count"]))[:k]
  least = sorted(rows, key=lambda r: (r["similarity"], -r["count"]))[:k]
  return frequent, most, least


def mistakes_stage(y, pred, w, names, reference_pred=None) -> dict:
  """Section 1's numbers from labels and predictions (host-side)."""
  c = w.shape[0]
  cm = np.asarray(metrics.confusion_matrix(y, pred, c))
  wrong = pred != y
  out = {"accuracy": float(1 - wrong.mean()), "mistakes": int(wrong.sum()),
         "confusion": cm.tolist(), "similarity": np.asarray(w).tolist()}
  if wrong.any():
    out["mean_similarity_of_mistakes"] = metrics.mean_mistake_similarity(y, pred, w)
    # Chance: each mistake's true class keeps its mistake, the wrong class is
    # uniform over the other C - 1.
    off = (np.asarray(w).sum(1) - np.diag(w)) / (c - 1)
    out["chance_similarity_of_mistakes"] = float(off[y[wrong]].mean())
    freq, most, least = _confusions(cm, np.asarray(w), names)
    out.update(frequent_confusions=freq, most_explicable=most, least_explicable=least)
  if reference_pred is not None:
    ref_wrong = reference_pred != y
    out["reference"] = {"accuracy": float(1 - ref_wrong.mean())}
    if ref_wrong.any():
      out["reference"]["mean_similarity_of_mistakes"] = metrics.mean_mistake_similarity(
          y, reference_pred, w)
    out["hard_soft"] = metrics.hard_soft_scores({"model": pred, "reference": reference_pred},
                                                y, w)
  return out


def coverage_threshold(val_scores, coverage: float) -> float:
  """The threshold ``t`` that accepts (``score <= t``) the ``ceil(coverage
  n)`` lowest of ``n`` validation scores (more on ties)."""
  s = np.sort(np.asarray(val_scores, np.float64))
  return float(s[max(int(np.ceil(coverage * len(s))) - 1, 0)])


def _at_threshold(scores, wrong, t):
  accept = np.asarray(scores) <= t
  n = max(int(accept.sum()), 1)
  return {"threshold": t, "coverage": float(accept.mean()),
          "risk": float(wrong[accept].sum() / n),
          "errors_caught": float(wrong[~accept].sum() / max(int(wrong.sum()), 1))}


def detection_stage(key, clf, splits, pred, wrong, cache, *, layer, mutants, operator, rates,
                    coverage, train_limit, say) -> tuple[dict, dict]:
  """Section 2: scores on the validation and test halves, the table, the
  coverage thresholds. Returns ``(numbers, test scores)``."""
  from explicable_jax import mutation
  halves = ("validation", "test")
  logits = {h: splits[h + "_logits"] for h in halves}
  sc = {h: {"MSP": np.asarray(detection.scores.msp(logits[h]))} for h in halves}
  xv, yv = splits["validation"]
  n_gate = min(1000, len(yv))
  # The mutation rate: a 10-mutant trial per candidate on the gate images.
  gate = mutation.accuracy_gate(clf, xv[:n_gate], yv[:n_gate])
  # Conv filters where the model has them (Wang et al.), else every kernel.
  layers = "conv" if mutation.eligible_paths(clf.params, layers="conv") else "kernels"

  def trial(rate):
    muts, info = mutation.make_mutants(jax.random.fold_in(key, 1000 + rates.index(rate)), clf,
                                       min(10, mutants), operator, rate, accuracy_fn=gate,
                                       layers=layers)
    lcr = mutation.label_change_rate(clf, muts, xv[:n_gate],
                                     original_predictions=pred["validation"][:n_gate])
    w = wrong["validation"][:n_gate]
    auroc = metrics.auroc(lcr, w) if 0 < w.sum() < len(w) else None
    return {"rate": rate, "validation_auroc": auroc, "drawn": int(info["drawn"])}

  trials = []
  for r in rates:
    try:
      trials.append(cache.json("rate_trial", {"operator": operator, "rate": r,
                                              "mutants": mutants, "layers": layers}, lambda r=r: trial(r)))
    except (mutation.GateRejectedError, ValueError) as e:
      # Too few mutants pass the gate, or the rate selects no unit: not a candidate.
      trials.append({"rate": r, "validation_auroc": None,
                     "error": str(e).splitlines()[0][:200]})
    say(f"  rate {r}: validation AUROC of LCR {trials[-1]['validation_auroc']}"
        + (f" ({trials[-1]['error']})" if "error" in trials[-1] else ""))
  ok = [t for t in trials if t["validation_auroc"] is not None]
  if not ok:
    raise ValueError(f"no mutation rate of {list(rates)} gave mutants that pass the accuracy "
                     "gate; give lower rates.")
  rate = max(ok, key=lambda t: t["validation_auroc"])["rate"]

  def lcr_stage():
    # detect's key and gate: the same mutants as `explicable-jax detect`.
    muts, info = mutation.make_mutants(jax.random.fold_in(key, 7), clf, mutants, operator,
                                       rate, accuracy_fn=gate, layers=layers)
    return {h: mutation.label_change_rate(clf, muts, splits[h][0],
                                          original_predictions=pred[h]) for h in halves}
  lcr = cache.arrays("lcr", {"operator": operator, "rate": rate, "mutants": mutants,
                             "layers": layers},
                     lcr_stage)
  say(f"  LCR over {mutants} {operator} mutants at rate {rate}")
  for h in halves:
    sc[h]["LCR"] = lcr[h]
  names = ["MSP", "LCR"]
  if layer is not None:
    cond = cache.arrays("conductance", {"layer": layer, "train_limit": train_limit},
                        lambda: detect.conductance_features(clf, splits, layer, train_limit))
    eye = np.eye(clf.num_classes, dtype=np.float32)
    feats = {k: np.concatenate([eye[pred[k][:len(v)]], v.reshape(len(v), -1)], 1)
             for k, v in cond.items()}
    w_train = wrong["train"][:len(feats["train"])]
    dkey = jax.random.fold_in(key, 11)
    if 0 < w_train.sum() < len(w_train):  # Wu et al.: trained on training images
      det = detection.train_detector(dkey, feats["train"], w_train, epochs=30)
      for h in halves:
        sc[h]["conductance detector"] = np.asarray(det.scores(feats[h]))
      trained_on = f"{len(w_train)} training images ({int(w_train.sum())} wrong)"
    else:
      # A model that fits its training set leaves no wrong training prediction to
      # learn from: the validation half instead, its own scores out of fold.
      from sklearn.model_selection import StratifiedKFold
      wv = wrong["validation"]
      oof = np.empty(len(wv))
      folds = StratifiedKFold(min(5, int(wv.sum()), int((~wv).sum())), shuffle=True,
                              random_state=0)
      for i, (tr, te) in enumerate(folds.split(feats["validation"], wv)):
        d = detection.train_detector(jax.random.fold_in(dkey, i), feats["validation"][tr],
                                     wv[tr], epochs=30)
        oof[te] = np.asarray(d.scores(feats["validation"][te]))
      det = detection.train_detector(dkey, feats["validation"], wv, epochs=30)
      sc["validation"]["conductance detector"] = oof
      sc["test"]["conductance detector"] = np.asarray(det.scores(feats["test"]))
      trained_on = (f"the validation half (the {len(w_train)} training images have "
                    f"{int(w_train.sum())} wrong predictions; validation scores out of fold)")
    names.append("conductance detector")
    say(f"  conductance detector at {layer}, trained on {trained_on}")
  stack = {h: np.stack([sc[h][n] for n in names], 1) for h in halves}
  comb = detection.fit_combiner("lda", stack["validation"], wrong["validation"])
  for h in halves:
    sc[h]["combination (LDA)"] = np.asarray(comb.scores(stack[h]))
  table = detection.score_table(sc["test"], wrong["test"], coverages=(coverage,))
  comparison = detection.compare_to_baseline(jax.random.fold_in(key, 99), sc["test"],
                                             wrong["test"], baseline="MSP")
  at_cov = {}
  for n in sc["test"]:
    t = coverage_threshold(sc["validation"][n], coverage)
    at_cov[n] = {"validation": _at_threshold(sc["validation"][n], wrong["validation"], t),
                 "test": _at_threshold(sc["test"][n], wrong["test"], t)}
  numbers = {"rate_trials": trials, "operator": operator, "rate": rate, "mutants": mutants,
             "mutated_layers": layers,
             "layer": layer, "detector_trained_on": trained_on if layer is not None else None, "combined": names, "coverage": coverage, "table": table,
             "auroc_minus_msp": comparison, "at_coverage": at_cov,
             "note": "the combination is fitted on the validation half; so is every threshold"}
  return numbers, sc["test"]


def reliance_stage(clf, x, y, mask, fill) -> tuple[dict, np.ndarray]:
  """Section 3: gradient share on the annotated features, accuracy masked."""
  from explicable_jax import rrr, robustness
  g = np.abs(rrr.model_input_gradients(clf, x, batch_size=500))
  total = g.reshape(len(g), -1).sum(1)
  on = (g * mask).reshape(len(g), -1).sum(1)
  share = np.where(total > 0, on / np.maximum(total, 1e-30), 0.0)
  area = mask.reshape(len(mask), -1).mean(1)
  masked = x * (1 - mask) + fill * mask
  return {"gradient_share_on_annotation": float(share.mean()),
          "annotated_share_of_input": float(area.mean()),
          "ratio": float(share.mean() / max(area.mean(), 1e-12)),
          "accuracy": robustness.accuracy_under(clf, x, y),
          "accuracy_masked": robustness.accuracy_under(clf, masked, y),
          "fill": "per-channel mean of the training images",
          "images": int(len(x))}, g


def mask_to_rows(mask) -> list[str]:
  """An ``(H, W)`` boolean mask as ``H`` strings of ``0`` and ``1`` (compact in JSON)."""
  return ["".join("1" if v else "0" for v in row) for row in np.asarray(mask, bool)]


def rows_to_mask(rows: Sequence[str]) -> np.ndarray:
  """The inverse of :func:`mask_to_rows`."""
  return np.array([[c == "1" for c in row] for row in rows], bool)


def hesitation_stage(clf, x, y, logits, layer, hardest, names, r=0.2) -> dict:
  """Section 4: insecurities of the ``hardest`` test images."""
  from explicable_jax import deliberative
  ent = np.asarray(deliberative.normalized_entropy(jnp.asarray(logits)))
  idx = np.argsort(-ent, kind="stable")[:hardest]
  if layer is None:  # no split point: the maps live in input space
    items = deliberative.insecurities(lambda v: v, clf.logits, x[idx], r=r, top_k=5, top=3)
  else:
    items = deliberative.insecurities(clf, x[idx], layer=layer, r=r, top_k=5, top=3)
  images = []
  for i, its in zip(idx, items):
    images.append({
        "index": int(i), "label": names[int(y[i])], "predicted": names[int(logits[i].argmax())],
        "normalized_entropy": float(ent[i]),
        "insecurities": [{"class_a": names[d["class_a"]], "class_b": names[d["class_b"]],
                          "strength": float(d["strength"]), "mask": mask_to_rows(d["mask"])}
                         for d in its]})
  pairs = {}
  for im in images:
    if im["insecurities"]:
      d = im["insecurities"][0]
      p = " / ".join(sorted((d["class_a"], d["class_b"])))
      pairs[p] = pairs.get(p, 0) + 1
  return {"layer": layer, "r": r, "images": images,
          "strongest_pairs": dict(sorted(pairs.items(), key=lambda kv: -kv[1])),
          "mean_normalized_entropy_test": float(ent.mean())}


def robustness_stage(key, clf, x, y, *, noise, fgsm, corruptions, severities) -> dict:
  """Section 5: accuracy of the test half under each perturbation."""
  from explicable_jax import robustness as rb
  rows = [{"perturbation": "none", "strength": "-", "accuracy": rb.accuracy_under(clf, x, y)}]
  for i, s in enumerate(noise):
    k = jax.random.fold_in(key, i)
    rows.append({"perturbation": "Gaussian noise", "strength": f"stddev {s:g}",
                 "accuracy": rb.accuracy_under(
                     clf, x, y, key=k, perturb=lambda kk, xb, yb, s=s:
                     rb.gaussian_noise(kk, xb, s))})
  for e in fgsm:
    rows.append({"perturbation": "FGSM", "strength": f"epsilon {e * 255:g}/255",
                 "accuracy": rb.accuracy_under(
                     clf, x, y, key=key, perturb=lambda kk, xb, yb, e=e:
                     rb.fgsm(clf, xb, yb, e))})
  for name, sev, xs in rb.corruption_suite(jax.random.fold_in(key, 100), x,
                                           corruptions=corruptions, severities=severities):
    rows.append({"perturbation": name.replace("_", " "), "strength": f"severity {sev}",
                 "accuracy": rb.accuracy_under(clf, np.asarray(xs), y)})
  return {"rows": rows}


# ---------------------------------------------------------------------------
# The report.


def _summary(res) -> list[list[str]]:
  m, d, rel, hes, rob = (res["mistakes"], res["detection"], res["reliance"],
                         res["hesitation"], res["robustness"])
  rows = [["How accurate is it?", f"{m['accuracy']:.4f} on the test half "
           f"({m['mistakes']} mistakes)"]]
  if "mean_similarity_of_mistakes" in m:
    top = m["frequent_confusions"][0]
    better = m["mean_similarity_of_mistakes"] > m["chance_similarity_of_mistakes"]
    rows.append(["How explicable are its mistakes?",
                 f"mean similarity {m['mean_similarity_of_mistakes']:.3f} against "
                 f"{m['chance_similarity_of_mistakes']:.3f} for mistakes at random "
                 f"({'above' if better else 'not above'} chance); most frequent: "
                 f"{top['true']} taken for {top['predicted']} ({top['count']} times)"])
  t = d["table"]
  best = max((n for n in t if n != "MSP"), key=lambda n: t[n]["auroc"])
  gain = d["auroc_minus_msp"].get(best)
  cov = d["at_coverage"]["MSP"]["test"]
  rows.append(["Can its errors be caught?",
               f"MSP (its own confidence) AUROC {t['MSP']['auroc']:.3f}; best other: "
               f"{best} {t[best]['auroc']:.3f} ({gain['difference']:+.3f} "
               f"[{gain['low']:+.3f}, {gain['high']:+.3f}] over MSP); MSP at "
               f"{d['coverage']:.0%} coverage: risk {cov['risk']:.3f} against "
               f"{1 - m['accuracy']:.3f} overall"])
  if rel.get("given"):
    rows.append(["Does it rely on the features it should not?",
                 f"{rel['gradient_share_on_annotation']:.1%} of the input gradient lies on "
                 f"the annotated {rel['annotated_share_of_input']:.1%} of the input "
                 f"({rel['ratio']:.1f}x uniform); accuracy {rel['accuracy']:.3f} -> "
                 f"{rel['accuracy_masked']:.3f} with them masked"])
  else:
    rows.append(["Does it rely on the features it should not?",
                 "not measured: no annotations given"])
  if hes["strongest_pairs"]:
    pair, n = next(iter(hes["strongest_pairs"].items()))
    k = len(hes["images"])
    rows.append(["Where does it hesitate?",
                 f"on the {k} hardest test images the strongest insecurity is most often "
                 f"between {pair} ({n} of them)" if n > 1 else
                 f"on the {k} hardest test images the strongest insecurities are "
                 f"{len(hes['strongest_pairs'])} different class pairs (the hardest image: "
                 f"{pair})"])
  worst = min(rob["rows"][1:], key=lambda r: r["accuracy"]) if len(rob["rows"]) > 1 else None
  if worst:
    rows.append(["How robust is it?",
                 f"clean {rob['rows'][0]['accuracy']:.3f}; lowest: {worst['perturbation']} "
                 f"{worst['strength']} {worst['accuracy']:.3f}"])
  return rows


def write_report(res: dict, out: str, figures: Mapping[str, object]) -> str:
  """Renders ``res`` (``results.json``'s dict) into ``out/report.html``."""
  from explicable_jax.app.html_report import HtmlReport
  s = res["settings"]
  report = HtmlReport("explicable_jax audit",
                      f"{res['date']}; model {s['model']}; data: {res['data'].rstrip('.')}; "
                      f"{res['wall_seconds']:.0f} s on {s['backend']}")
  report.section("summary", "Summary")
  if res.get("note"):
    report.paragraph(res["note"])
  report.table(["question", "answer"], _summary(res))
  report.paragraph("Command: " + res["command"], note=True)

  m = res["mistakes"]
  report.section("mistakes", "1. Mistakes: how explicable are they?")
  report.paragraph(f"Similarity W: {m['similarity_source']}. Mean W of the mistakes against "
                   "the chance baseline (each mistake sent to a uniformly random wrong "
                   "class); Olmo, Sengupta and Kambhampati (ICCV 2021).")
  rows = [["accuracy (test half)", m["accuracy"]], ["mistakes", m["mistakes"]]]
  if "mean_similarity_of_mistakes" in m:
    rows += [["mean W of the mistakes", m["mean_similarity_of_mistakes"]],
             ["chance baseline", m["chance_similarity_of_mistakes"]]]
  if "reference" in m:
    r = m["reference"]
    rows += [["reference accuracy", r["accuracy"]],
             ["reference mean W of mistakes", r.get("mean_similarity_of_mistakes", "n/a")]]
  report.table(["measure", "value"], rows)
  for key, title in (("frequent_confusions", "Most frequent confusions"),
                     ("most_explicable", "Most explicable confusions (highest W)"),
                     ("least_explicable", "Least explicable confusions (lowest W)")):
    if key in m:
      report.table(["true", "predicted", "count", "W"],
                   [[c["true"], c["predicted"], c["count"], c["similarity"]] for c in m[key]],
                   caption=title)
  if "hard_soft" in m:
    hs = m["hard_soft"]
    report.table(["model", "hard score", "soft score"],
                 [[n, hs["hard"][n], hs["soft"][n]] for n in hs["hard"]],
                 caption=f"Hard and soft explicability scores over the "
                         f"{hs['num_common_mistakes']} test images both models get wrong.")
  report.figure(figures["mistakes"], "The similarity matrix W and the confusion matrix of "
                "the test half (rows: true class).")

  d = res["detection"]
  report.section("detection", "2. Error detection: can its errors be caught?")
  report.paragraph(
      f"Baseline: MSP, one minus the model's top softmax probability. LCR: label change rate "
      f"over {d['mutants']} {d['operator']} mutants at rate {d['rate']} (chosen among "
      f"{[t['rate'] for t in d['rate_trials']]} by the validation AUROC of a 10-mutant trial), "
      "mutants gated at 90% of the model's accuracy (Wang et al.). "
      + (f"Conductance detector: Wu et al.'s MLP on the conductance at {d['layer']}, "
         f"trained on {d['detector_trained_on']}. "
         if d["layer"] else "No split point: no conductance detector. ")
      + f"Combination: LDA on {', '.join(d['combined'])}, fitted on the validation half. "
      "Numbers on the test half; the interval is a paired bootstrap (1000 resamples).")
  cov = d["coverage"]
  header = ["score", "AUROC", "AUROC - MSP [95% CI]", "AURC", "E-AURC",
            f"threshold for {cov:.0%} (validation)", "test coverage", "test risk",
            "errors caught"]
  rows = []
  for n, r in d["table"].items():
    c = d["auroc_minus_msp"].get(n)
    a = d["at_coverage"][n]["test"]
    rows.append([n, r["auroc"], "(baseline)" if c is None else
                 f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]",
                 r["aurc"], r["e_aurc"], a["threshold"], a["coverage"], a["risk"],
                 a["errors_caught"]])
  report.table(header, rows)
  report.figure(figures["detection"], "ROC and risk-coverage curves on the test half.")

  rel = res["reliance"]
  report.section("reliance", "3. Reliance: does it use the features it should not?")
  if rel.get("given"):
    report.paragraph(
        "Ross, Hughes and Doshi-Velez: the share of |d sum_k log p_k / dx| on the annotated "
        "features, against their share of the input (what a uniform attribution gives); "
        f"and the accuracy with them replaced by the {rel['fill']}.")
    report.table(["measure", "value"],
                 [["gradient share on the annotation", rel["gradient_share_on_annotation"]],
                  ["annotated share of the input", rel["annotated_share_of_input"]],
                  ["ratio", rel["ratio"]], ["accuracy", rel["accuracy"]],
                  ["accuracy, annotated features masked", rel["accuracy_masked"]]])
    report.figure(figures["reliance"], "Test images and |input gradient| over them.")
  else:
    report.paragraph("No annotations were given, so reliance was not measured. Give an .npz "
                     "whose 'mask' marks the features the model should not use (one mask for "
                     "all images or one per test image): --annotations FILE.npz.", note=True)

  h = res["hesitation"]
  report.section("hesitation", "4. Hesitation: where does it hesitate?")
  report.paragraph(
      "Wang and Vasconcelos (NeurIPS 2019): for the test images of highest normalised "
      f"entropy, the regions (top {h['r']:.0%} of m_a m_b d) where the class maps of two "
      f"likely classes and the entropy's difficulty map overlap"
      + (f", at layer {h['layer']}." if h["layer"] else ", in input space."))
  report.figure(figures["hesitation"], "The hardest test images; outlined: the strongest "
                "insecurity and its two classes.")
  report.table(["index", "label", "predicted", "normalised entropy",
                "the three strongest insecure pairs"],
               [[im["index"], im["label"], im["predicted"], im["normalized_entropy"],
                 ", ".join(f"{d['class_a']} / {d['class_b']} ({d['strength']:.3g})"
                           for d in im["insecurities"][:3])]
                for im in h["images"]])

  report.section("robustness", "5. Robustness")
  report.table(["perturbation", "strength", "accuracy"],
               [[r["perturbation"], r["strength"], r["accuracy"]]
                for r in res["robustness"]["rows"]],
               caption="Accuracy of the test half; FGSM against the true label.")
  report.section("settings", "Settings")
  report.table(["setting", "value"], [[k, json.dumps(v)] for k, v in s.items()])
  report.paragraph(f"Data: {res['data']}.", note=True)
  return report.write(os.path.join(out, "report.html"))


def _figures(res, splits, grads, names):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from explicable_jax import viz
  m, d = res["mistakes"], res["detection"]
  short = [n[:12] for n in names]
  figs = {}
  fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
  viz.heatmap(np.asarray(m["similarity"]), short, ax=axes[0], title="similarity W")
  viz.heatmap(np.asarray(m["confusion"], float), short, ax=axes[1],
              title="confusion (test half)", fmt="{:.0f}")
  figs["mistakes"] = fig
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
  scores, wrong = res["_test_scores"], res["_test_wrong"]
  viz.roc_curves(scores, wrong, ax=axes[0], title="(test half, errors positive)")
  viz.risk_coverage_curves(scores, wrong, ax=axes[1], title="(test half)")
  figs["detection"] = fig
  x = splits["test"][0]
  if grads is not None:
    n = min(6, len(x))
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.8), squeeze=False)
    for j in range(n):
      img = x[j][..., 0] if x.shape[-1] == 1 else x[j]
      axes[0, j].imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None)
      axes[0, j].set_title(names[int(splits["test"][1][j])][:12], fontsize=8)
      axes[0, j].axis("off")
      viz.attribution_overlay(x[j], grads[j].sum(-1), ax=axes[1, j], signed=False)
    figs["reliance"] = fig
  ims = res["hesitation"]["images"]
  fig, axes = plt.subplots(1, max(len(ims), 1), figsize=(2.0 * max(len(ims), 1), 2.8),
                           squeeze=False)
  for ax, im in zip(axes[0], ims):
    its = im["insecurities"]
    mask = rows_to_mask(its[0]["mask"]) if its else np.zeros(x.shape[1:3], bool)
    title = f"{im['label'][:10]} -> {im['predicted'][:10]}"
    if its:
      title += f"\n{its[0]['class_a'][:9]} / {its[0]['class_b'][:9]}"
    viz.insecurity_outline(x[im["index"]], mask, ax=ax, title=title, color="red", dim=0.0)
  figs["hesitation"] = fig
  return figs


# ---------------------------------------------------------------------------
# The entry point.


def audit(model, out: str, *, dataset: str | None = None, data_file: str | None = None,
          classes: Sequence[str] | None = None, similarity="ekl",
          annotations: str | None = None, reference=None, layer: str | None = None,
          mutants: int = 20, operator: str = "NAI", rates: Sequence[float] = (0.005, 0.01, 0.02),
          coverage: float = 0.9, train_limit: int = 5000, hardest: int = 8,
          noise: Sequence[float] = (0.02, 0.05, 0.1),
          fgsm: Sequence[float] = (1 / 255, 2 / 255, 4 / 255),
          corruptions: Sequence[str] = DEFAULT_CORRUPTIONS, severities: Sequence[int] = (1, 3, 5),
          seed: int = 0, data_dir: str | None = None, limit: int | None = None,
          progress: bool = True, command: str | None = None,
          note: str | None = None) -> AuditResult:
  """Audits a trained classifier; writes ``out/report.html``,
  ``out/results.json`` and ``out/command.txt``; returns the numbers.

  Args:
    model: a folder (a train workdir or one written by ``models.save``) or a
      model in memory (a :class:`~explicable_jax.models.Classifier`, or an
      NNX module / linen or plain-JAX model adapted through
      :mod:`explicable_jax.models`).
    out: the output folder (its ``cache/`` makes a rerun resume).
    dataset, data_file: a dataset of the registry, or an ``.npz`` with
      ``x_train, y_train, x_test, y_test`` (exactly one).
    classes: class names (default: the model's, else the dataset's).
    similarity: ``ekl``, ``ihl``, ``chl``, a ``.npy`` path or a ``(C, C)``
      array (see :func:`similarity_matrix`).
    annotations: an ``.npz`` whose ``mask`` marks the features the model
      should not rely on (section 3).
    reference: a second model (same forms as ``model``) for the hard/soft
      scores.
    layer: split point for conductance and insecurities (default: the last
      one with a spatial map).
    mutants, operator, rates: LCR's mutant count, operator and candidate
      rates (the best validation AUROC of a 10-mutant trial is used).
    coverage: the share of validation predictions each threshold accepts.
    train_limit: training images for the conductance detector.
    hardest: how many of the hardest test images section 4 draws.
    noise, fgsm, corruptions, severities: section 5's perturbations
      (Gaussian stddevs and FGSM epsilons for inputs in [0, 1]).
    seed: the split's, the mutants' and the noise's seed.
    limit: the first ``limit`` images of each split only (quick checks).
    command: the command line to record (the CLI passes its own).
    note: a paragraph for the top of the report (what was audited, caveats).
  """
  t0 = time.time()
  _validation.check_choice("operator", operator, ("NAI", "GF", "WS", "NS"))
  _validation.check_positive("mutants", mutants, integer=True)
  _validation.check_positive("train_limit", train_limit, integer=True)
  _validation.check_positive("hardest", hardest, integer=True)
  _validation.check_fraction("coverage", coverage)
  if not 0 < coverage < 1:
    raise ValueError(f"coverage must lie strictly between 0 and 1; got {coverage}.")
  rates = _check_sequence("rates", rates, lambda n, v: _validation.check_fraction(n, v))
  if not rates or any(r <= 0 for r in rates):
    raise ValueError(f"rates must be one or more fractions in (0, 1]; got {list(rates)}.")
  noise = _check_sequence("noise", noise, lambda n, v: _validation.check_positive(n, v))
  fgsm = _check_sequence("fgsm", fgsm, lambda n, v: _validation.check_positive(n, v))
  from explicable_jax import robustness as rb
  corruptions = _check_sequence("corruptions", corruptions,
                                lambda n, v: _validation.check_choice(n, v, rb.CORRUPTIONS))
  severities = _check_sequence("severities", severities,
                               lambda n, v: _validation.check_choice(n, v, rb.SEVERITIES))
  if limit is not None:
    _validation.check_positive("limit", limit, integer=True)
  if annotations is not None and not os.path.exists(annotations):
    raise FileNotFoundError(f"annotations file {annotations!r} does not exist.")
  clf, model_path = _resolve_model("model", model)
  ref, ref_path = (None, None) if reference is None else _resolve_model("reference", reference)
  say = print if progress else (lambda *a, **k: None)
  from tqdm.auto import tqdm
  bar = tqdm(total=6, desc="audit", unit="stage", disable=not progress)

  splits, data_note, index = detect.load_splits(dataset, data_file, data_dir, seed, limit,
                                           with_index=True)
  # The training set serves the conductance detector (and the reliance fill
  # value) only: its first train_limit images.
  splits["train"] = tuple(a[:train_limit] for a in splits["train"])
  num_classes = clf.num_classes
  ds_names = None
  if dataset is not None:
    ds_names = data.load(dataset, "test", data_dir=data_dir).class_names
  names = _class_names(classes, clf, ds_names, num_classes)
  if ref is not None and ref.num_classes != num_classes:
    raise ValueError(f"reference has {ref.num_classes} classes; the model has {num_classes}.")
  w, w_source = similarity_matrix(similarity, names, dataset=dataset, data_dir=data_dir,
                                  seed=seed, num_classes=num_classes)
  names = names or [str(i) for i in range(num_classes)]
  mask = _load_annotations(annotations, splits, index)
  if layer is None:
    layer = detect.default_layer(clf, splits["test"][0])
  elif layer not in clf.layers:
    clf.check_layer(layer)
  settings = {"model": model_path or repr(type(model).__name__), "reference": ref_path,
              "dataset": dataset, "data_file": data_file, "classes": names,
              "similarity": similarity if isinstance(similarity, str) else "array",
              "annotations": annotations, "layer": layer, "mutants": mutants,
              "operator": operator, "rates": list(rates), "coverage": coverage,
              "train_limit": train_limit, "hardest": hardest, "noise": list(noise),
              "fgsm": list(fgsm), "corruptions": list(corruptions),
              "severities": list(severities), "seed": seed, "limit": limit,
              "backend": jax.default_backend(), "jax": jax.__version__}
  # The caches are keyed by the weights themselves (a model retrained into the
  # same folder never meets the old model's cached numbers).
  ident = _checksum(clf)
  data_id = dataset
  if data_file is not None:
    with open(data_file, "rb") as fh:
      data_id = hashlib.sha1(fh.read()).hexdigest()
  cache = _Cache(os.path.join(out, "cache"), {"model": ident, "data": data_id, "seed": seed,
                                              "limit": limit, "train_limit": train_limit})
  key = jax.random.key(seed)

  logits = {}
  for k, (x, _) in splits.items():
    logits[k] = cache.arrays(f"logits_{k}", {}, lambda x=x: {
        "logits": detect.predict_logits(clf, x)})["logits"]
  pred = {k: v.argmax(-1) for k, v in logits.items()}
  wrong = {k: pred[k] != splits[k][1] for k in splits}
  for k in ("validation", "test"):
    if wrong[k].all() or not wrong[k].any():
      raise ValueError(f"the {k} half has {int(wrong[k].sum())} wrong predictions out of "
                       f"{len(wrong[k])}; the audit needs both right and wrong ones.")
  yt = splits["test"][1]
  ref_pred = None
  if ref is not None:
    ref_pred = cache.arrays("reference_logits", {"reference": _checksum(ref)}, lambda: {
        "logits": detect.predict_logits(ref, splits["test"][0])})["logits"].argmax(-1)
  say(f"predictions: accuracy test half {1 - wrong['test'].mean():.4f} "
      f"({time.time() - t0:.0f}s)")
  bar.update(1)

  bar.set_postfix_str("mistakes")
  mis = mistakes_stage(yt, pred["test"], w, names, ref_pred)
  mis["similarity_source"] = w_source
  bar.update(1)

  bar.set_postfix_str("error detection")
  say("error detection")
  det_splits = {**splits, **{f"{h}_logits": logits[h] for h in ("validation", "test")}}
  det, test_scores = detection_stage(
      key, clf, det_splits, pred, wrong, cache, layer=layer,
      mutants=mutants, operator=operator, rates=list(rates), coverage=coverage,
      train_limit=train_limit, say=say)
  say(f"  done ({time.time() - t0:.0f}s)")
  bar.update(1)

  bar.set_postfix_str("reliance")
  grads = None
  if mask is not None:
    fill = splits["train"][0].mean(axis=(0, 1, 2), keepdims=True)[0]
    with open(annotations, "rb") as fh:
      ann_sha = hashlib.sha1(fh.read()).hexdigest()
    rel = cache.json("reliance", {"annotations": ann_sha, "train_limit": train_limit},
                     lambda: {"given": True, **reliance_stage(clf, splits["test"][0], yt, mask,
                                                              fill)[0]})
    from explicable_jax import rrr
    grads = np.abs(rrr.model_input_gradients(clf, splits["test"][0][:6]))  # for the figure
  else:
    rel = {"given": False, "note": "no annotations given"}
  bar.update(1)

  bar.set_postfix_str("hesitation")
  # Insecurities need (H, W) maps: at the split point when its output is
  # spatial, else in input space.
  h_layer = layer
  if layer is not None:
    shape = jax.eval_shape(clf.split(layer)[0],
                           jax.ShapeDtypeStruct(splits["test"][0][:2].shape, np.float32))
    if len(jax.tree.leaves(shape)[0].shape) < 4:
      h_layer = None
  hes = cache.json("hesitation", {"layer": h_layer, "hardest": hardest},
                   lambda: hesitation_stage(clf, splits["test"][0], yt, logits["test"], h_layer,
                                            hardest, names))
  say(f"hesitation: {len(hes['images'])} hardest images ({time.time() - t0:.0f}s)")
  bar.update(1)

  bar.set_postfix_str("robustness")
  rob = cache.json("robustness", {k: settings[k] for k in ("noise", "fgsm", "corruptions",
                                                            "severities")},
                   lambda: robustness_stage(jax.random.fold_in(key, 5), clf, splits["test"][0],
                                            yt, noise=noise, fgsm=fgsm,
                                            corruptions=corruptions, severities=severities))
  say(f"robustness: {len(rob['rows'])} settings ({time.time() - t0:.0f}s)")
  bar.update(1)
  bar.close()

  if command is None:
    command = (_equivalent_command(model_path, settings, out, data_dir) if model_path
               else "explicable_jax.app.audit.audit(<a model in memory>, ...) from Python")
  os.makedirs(out, exist_ok=True)
  res = {"summary": {}, "mistakes": mis, "detection": det, "reliance": rel, "hesitation": hes,
         "robustness": rob, "settings": settings, "data": data_note, "command": command,
         "date": datetime.date.today().isoformat(), "wall_seconds": time.time() - t0,
         "report": os.path.abspath(os.path.join(out, "report.html")),
         "results": os.path.abspath(os.path.join(out, "results.json")), "note": note}
  res["summary"] = {q: a for q, a in _summary(res)}
  figs = _figures({**res, "_test_scores": test_scores, "_test_wrong": wrong["test"]}, splits,
                  grads, names)
  write_report(res, out, figs)
  with open(res["results"] + ".tmp", "w") as f:
    json.dump(res, f, indent=1, default=float)
  os.replace(res["results"] + ".tmp", res["results"])
  with open(os.path.join(out, "command.txt"), "w") as f:
    f.write(command + "\n")
  return AuditResult(**res)


def _checksum(clf) -> str:
  """SHA-1 of a classifier's parameters and state."""
  h = hashlib.sha1()
  for v in jax.tree.leaves((clf.params, clf.state)):
    a = np.asarray(jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key)
                   else v)
    h.update(str(a.shape).encode() + a.tobytes())
  return h.hexdigest()


def _equivalent_command(model_path, s, out, data_dir) -> str:
  args = ["explicable-jax", "audit", "--model", model_path]
  args += ["--dataset", s["dataset"]] if s["dataset"] else ["--data", s["data_file"]]
  if s["similarity"] != "array":
    args += ["--similarity", s["similarity"]]
  for flag, k in (("--annotations", "annotations"), ("--reference", "reference"),
                  ("--layer", "layer"), ("--limit", "limit")):
    if s[k] is not None:
      args += [flag, str(s[k])]
  fmt = lambda v: ",".join(f"{r:g}" if isinstance(r, float) else str(r) for r in v)  # noqa: E731
  args += ["--classes", fmt(s["classes"]), "--mutants", str(s["mutants"]),
           "--operator", s["operator"], "--rates", fmt(s["rates"]),
           "--coverage", f"{s['coverage']:g}", "--train-limit", str(s["train_limit"]),
           "--hardest", str(s["hardest"]), "--noise", fmt(s["noise"]), "--fgsm", fmt(s["fgsm"]),
           "--corruptions", fmt(s["corruptions"]), "--severities", fmt(s["severities"]),
           "--seed", str(s["seed"]), "--out", out]
  if data_dir:
    args += ["--data-dir", data_dir]
  return shlex.join(args)
