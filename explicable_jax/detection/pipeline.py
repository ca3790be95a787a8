"""The error-detection pipeline that ``explicable-jax detect`` and the audit share.

Both commands score the same model on the same paper split (the training set;
the test set halved at random into a validation and a test half) with the same
steps, written once here so that they cannot drift apart:

* :func:`load_splits` and :func:`check_split_labels`: the split, with its labels
  checked against the model's classes;
* :func:`default_layer`: the split point for conductance and Mahalanobis;
* the label change rate (Wang et al., ICSE 2019): the accuracy gate on the first
  :data:`GATE_IMAGES` validation images, keeping mutants with 90% of the model's
  accuracy (:func:`accuracy_gate`); the mutated layers (:func:`mutated_layers`);
  the mutants' key (:func:`lcr_scores`); the audit's choice of rate among
  candidates by a :data:`TRIAL_MUTANTS`-mutant trial (:func:`rate_trial`,
  :func:`choose_rate`);
* Wu, Michel and Briot's conductance detector: per-feature-map conductance at
  the layer (predicted class, black baseline, :data:`CONDUCTANCE_STEPS`
  right-Riemann steps, :func:`conductance_features`), the one-hot prediction
  beside it (:func:`detector_features`), the MLP trained for
  :data:`DETECTOR_EPOCHS` epochs on the training images' wrong predictions, or
  out of fold on the validation half when the model makes none in training
  (:func:`conductance_detector`).

Every random draw comes from the run's key (``jax.random.key(seed)``) folded
with a stream number of this module, so the two commands draw the same mutants
and train the same detector for the same seed.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence

import jax
import numpy as np

from explicable_jax import conventions
from explicable_jax import _batching, _validation, data

__all__ = [
    "GATE_IMAGES", "TRIAL_MUTANTS", "DETECTOR_EPOCHS", "CONDUCTANCE_STEPS", "BATCH_SIZE",
    "HALVES", "load_splits", "check_split_labels", "default_layer", "predict_logits",
    "pooled", "mutated_layers", "accuracy_gate", "Mutants", "lcr_scores", "rate_trial", "failed_trial",
    "choose_rate",
    "conductance_features", "detector_features", "conductance_detector",
]

GATE_IMAGES = 1000
"""Validation images of the accuracy gate and of the rate trials."""
TRIAL_MUTANTS = 10
"""Mutants per candidate rate in the audit's rate trial."""
DETECTOR_EPOCHS = 30
"""Training epochs of the conductance detector."""
CONDUCTANCE_STEPS = 10
"""Right-Riemann steps of the conductance (Wu et al.)."""
BATCH_SIZE = 250
"""Images per jitted call."""
HALVES = ("validation", "test")
"""The halves every score is computed on: thresholds on the first, the table on the second."""

# Streams of the run's key: fold_in(key, stream).
_MUTANTS, _DETECTOR, _TRIALS = 7, 11, 1000


# ---------------------------------------------------------------------------
# The split.


@conventions.boundary()
def load_splits(dataset: str | None, data_file: str | None, data_dir: str | None,
                seed: int, limit: int | None, *, with_index: bool = False):
  """The paper split: ``({"train", "validation", "test": (x float32, y)}, note)``.

  A registry dataset's paper split, or an ``.npz``'s test arrays halved at
  random (``seed``); with ``with_index`` also ``{"test": indices of the test
  half in the whole test set, "num_test": its size}``.

  Args:
    dataset: a dataset of the registry, or ``None``.
    data_file: an ``.npz`` with ``x_train, y_train, x_test, y_test``, or
      ``None`` (exactly one of the two).
    data_dir: the local data folder (registry datasets).
    seed: the seed of the halving.
    limit: the first ``limit`` images of each split only, or ``None``.
    with_index: also return where the test half lies in the test set.

  Returns:
    ``(splits, note)`` or ``(splits, note, index)``.
  """
  if (dataset is None) == (data_file is None):
    raise ValueError(f"give exactly one of dataset or data_file; got dataset={dataset!r}, "
                     f"data_file={data_file!r}.")
  if data_file is not None:
    if not os.path.exists(data_file):
      raise FileNotFoundError(f"data_file {data_file!r} does not exist.")
    import zipfile
    need = ("x_train", "y_train", "x_test", "y_test")
    try:
      with np.load(data_file, allow_pickle=False) as f:
        missing = [k for k in need if k not in f.files]
        if missing:
          raise ValueError(f"data_file {data_file!r} must hold arrays {', '.join(need)}; "
                           f"it lacks {', '.join(missing)} (it holds {', '.join(f.files)}).")
        arrays = {k: f[k] for k in need}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
      raise ValueError(f"data_file {data_file!r} cannot be read as an .npz file "
                       f"({type(e).__name__}: {e}); it may be truncated: write it again "
                       "with numpy.savez.") from None
    # The file's arrays follow the conventions, checked once here.
    for part in ("train", "test"):
      x_name, y_name = f"x_{part}", f"y_{part}"
      arrays[x_name] = conventions.check_inputs(f"data_file {data_file!r}: {x_name}",
                                                arrays[x_name], convert=False)
      if len(arrays[y_name]) != len(arrays[x_name]):
        raise ValueError(f"data_file {data_file!r}: {y_name} must hold one label per row of "
                         f"{x_name} ({len(arrays[x_name])}); got {len(arrays[y_name])}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(arrays["y_test"]))
    half = len(order) // 2
    index = {"test": order[half:], "num_test": len(order)}
    splits = {"train": (arrays["x_train"], arrays["y_train"]),
              "validation": (arrays["x_test"][order[:half]], arrays["y_test"][order[:half]]),
              "test": (arrays["x_test"][order[half:]], arrays["y_test"][order[half:]])}
    splits = {k: (conventions.to_unit_float(x), np.asarray(y)) for k, (x, y) in splits.items()}
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


def check_split_labels(splits: Mapping[str, tuple], num_classes: int, *,
                       dataset: str | None = None, data_file: str | None = None) -> None:
  """Raises ``ValueError`` unless every split's labels are class indices of
  the model, ``(N,)`` integers in ``[0, num_classes)``; the message names the
  data argument (``dataset`` / ``data_file``, ``--dataset`` / ``--data`` on
  the command line), the array, the labels found and the classes expected.

  Args:
    splits: :func:`load_splits`'s ``{"train", "validation", "test": (x, y)}``.
    num_classes: the model's class count.
    dataset, data_file: where the split came from (for the message).
  """
  from explicable_jax import conventions
  source = (f"data_file (--data) {data_file!r}" if data_file is not None
            else f"dataset (--dataset) {dataset!r}")
  arrays = {"train": "y_train", "validation": "y_test", "test": "y_test"}
  for k, (_, y) in splits.items():
    array = arrays.get(k, k) if data_file is not None else f"the {k} labels"
    try:
      conventions.check_labels(f"{source}: {array}", y, num_classes)
    except ValueError as e:
      raise ValueError(f"{e} Give data labelled 0..{num_classes - 1} for this model, or "
                       "the model trained on this data.") from None


@conventions.boundary(x="inputs")
def default_layer(clf, x) -> str | None:
  """The last split point with a spatial feature map (Wu et al. use the last
  residual block), else the last one before the output; ``None`` without split
  points.

  Args:
    clf: a :class:`~explicable_jax.models.Classifier`.
    x: a batch of inputs (its first two rows give the shapes).

  Returns:
    A name of ``clf.layers`` or ``None``.
  """
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


@jax.jit
def _logits(c, xb):
  return c.logits(xb)


@conventions.boundary(x="inputs")
def predict_logits(clf, x, *, batch_size: int = BATCH_SIZE) -> np.ndarray:
  """``clf``'s logits of ``x`` in jitted batches (the library's batching helper)."""
  return _batching.map_batches(_logits, [x], batch_size=batch_size, args=(clf,))


def pooled(a):
  """Per-channel means of a feature map (``(N, ..., C)`` to ``(N, C)``); a
  rank-2 activation is already one value per feature."""
  from explicable_jax import attribution
  return a if a.ndim <= 2 else attribution.per_feature_map(a, reduce="mean")


# ---------------------------------------------------------------------------
# The label change rate.


def mutated_layers(clf) -> str:
  """The layers the mutation operators change: the convolution filters where
  the model has them (Wang et al.), else every kernel."""
  from explicable_jax import mutation
  return "conv" if mutation.eligible_paths(clf.params, layers="conv") else "kernels"


def _layers_option(operator, layers: str) -> dict:
  """``{"layers": layers}`` for an operator that takes the option (the
  built-in ones do; a registered one may not)."""
  from explicable_jax import mutation
  fn = operator if callable(operator) else mutation.OPERATORS.get(operator)
  return {"layers": layers} if fn is not None and _validation.accepts_keyword(
      fn, "layers") else {}


def accuracy_gate(clf, validation: tuple) -> Callable:
  """Wang et al.'s gate on the first :data:`GATE_IMAGES` images of the
  validation half ``(x, y)``: the stacked mutants' accuracies there
  (:func:`explicable_jax.mutation.accuracy_gate`)."""
  from explicable_jax import mutation
  x, y = validation
  return mutation.accuracy_gate(clf, x[:GATE_IMAGES], y[:GATE_IMAGES])


@dataclasses.dataclass(frozen=True)
class Mutants:
  """An ensemble of accuracy-gated mutants: how many, made by which operator
  at which rate, mutating which layers (``None``: :func:`mutated_layers`)."""
  count: int
  operator: str = "NAI"
  rate: float = 0.01
  layers: str | None = None

  def make(self, key: jax.Array, clf, gate: Callable, *, count: int | None = None):
    """``make_mutants(key, clf, count, operator, rate, accuracy_fn=gate)``
    (``count`` defaults to :attr:`count`); returns ``(mutants, info)``."""
    from explicable_jax import mutation
    layers = mutated_layers(clf) if self.layers is None else self.layers
    return mutation.make_mutants(key, clf, self.count if count is None else count,
                                 self.operator, self.rate, accuracy_fn=gate,
                                 **_layers_option(self.operator, layers))


@conventions.boundary(inputs="inputs{}")
def lcr_scores(key: jax.Array, clf, inputs: Mapping[str, np.ndarray],
               predictions: Mapping[str, np.ndarray], mutants: Mutants, gate: Callable
               ) -> tuple[dict[str, np.ndarray], dict]:
  """The label change rate of every input over ``mutants.count`` gated mutants.

  .. math:: \\mathrm{LCR}(x) = \\frac{1}{M} \\sum_{m=1}^{M} [m(x) \\ne f(x)]

  Args:
    key: the run's key (the mutants come from its stream for mutants).
    clf: the model.
    inputs: ``{name: (N, ...) images}``.
    predictions: ``{name: (N,) the model's predictions}`` for the same names.
    mutants: the ensemble (``M = mutants.count``).
    gate: :func:`accuracy_gate`'s function.

  Returns:
    ``({name: (N,) LCR}, make_mutants' info)``.
  """
  from explicable_jax import mutation
  muts, info = mutants.make(jax.random.fold_in(key, _MUTANTS), clf, gate)
  return {k: np.asarray(mutation.label_change_rate(clf, muts, x,
                                                   original_predictions=predictions[k]))
          for k, x in inputs.items()}, info


@conventions.key_first
def rate_trial(key: jax.Array, clf, validation: tuple, predictions: np.ndarray,
               mutants: Mutants, gate: Callable, *, index: int) -> dict:
  """One candidate rate's trial: the validation AUROC of the LCR over
  ``min(TRIAL_MUTANTS, mutants.count)`` gated mutants on the gate images.

  Args:
    key: the run's key (trial ``index`` uses its own stream).
    clf: the model.
    validation: the validation half ``(x, y)``.
    predictions: the model's predictions on it.
    mutants: the ensemble, at the candidate rate.
    gate: :func:`accuracy_gate`'s function.
    index: the candidate's position among the rates.

  Returns:
    ``{"rate", "validation_auroc" (None when the gate images are all right or
    all wrong), "drawn"}``.
  """
  from explicable_jax import metrics, mutation
  x, y = (a[:GATE_IMAGES] for a in validation)
  muts, info = mutants.make(jax.random.fold_in(key, _TRIALS + index), clf, gate,
                            count=min(TRIAL_MUTANTS, mutants.count))
  lcr = mutation.label_change_rate(clf, muts, x, original_predictions=predictions[:len(x)])
  w = np.asarray(predictions[:len(x)] != y)
  auroc = metrics.auroc(lcr, w) if 0 < w.sum() < len(w) else None
  return {"rate": mutants.rate, "validation_auroc": auroc, "drawn": int(info["drawn"])}


def failed_trial(rate: float, error: Exception) -> dict:
  """The record of a rate whose trial raised: ``error_kind`` says why (``"no
  unit"``: the rate selects no unit of this model, it is too low; ``"gate"``:
  too few mutants keep the gate's accuracy, it is too high; ``"other"``)."""
  from explicable_jax import mutation
  text = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
  kind = ("gate" if isinstance(error, mutation.GateRejectedError) else
          "no unit" if "selects no unit" in text else "other")
  return {"rate": rate, "validation_auroc": None, "error": text[:200], "error_kind": kind}


def choose_rate(trials: Sequence[dict], *, operator: str) -> float:
  """The rate of the trial with the best validation AUROC; when none has one,
  a ``ValueError`` that says what went wrong with each rate and what to give
  instead (higher rates when every one selects no unit of the model, lower
  ones when the gate rejects their mutants)."""
  ok = [t for t in trials if t["validation_auroc"] is not None]
  if ok:
    return max(ok, key=lambda t: t["validation_auroc"])["rate"]
  rates = [t["rate"] for t in trials]
  by_kind: dict[str, list[dict]] = {}
  for t in trials:
    by_kind.setdefault(t.get("error_kind", "no errors"), []).append(t)
  low, high = by_kind.get("no unit", []), by_kind.get("gate", [])
  if low and not high and len(low) == len(trials):
    raise ValueError(
        f"rates: every mutation rate of {rates} is too low for this model: operator "
        f"{operator} changes no unit at any of them ({low[-1]['error'].rstrip('.')}). Give higher "
        "rates (--rates on the command line).")
  if high and len(high) == len(trials):
    raise ValueError(
        f"rates: every mutation rate of {rates} is too high: too few {operator} mutants keep "
        f"90% of the model's accuracy ({high[0]['error'].rstrip('.')}). Give lower rates "
        "(--rates on the command line).")
  if "no errors" in by_kind:
    raise ValueError(
        f"rates: the mutants were drawn but the first {GATE_IMAGES} validation images hold "
        "only right or only wrong predictions, so no rate could be compared; give more "
        "data (limit) or a dataset the model makes mistakes on.")
  parts = []
  if low:
    parts.append(f"{[t['rate'] for t in low]} change no unit (too low: {low[-1]['error'].rstrip('.')})")
  if high:
    parts.append(f"{[t['rate'] for t in high]} give mutants that fail the accuracy gate "
                 "(too high)")
  for t in by_kind.get("other", []):
    parts.append(f"{t['rate']} failed: {t['error'].rstrip('.')}")
  raise ValueError(f"rates: no mutation rate of {rates} gave usable {operator} mutants: "
                   + "; ".join(parts) + ". Give rates between (--rates on the command line).")


# ---------------------------------------------------------------------------
# The conductance detector.


def conductance_features(clf, splits: Mapping[str, tuple], layer: str, train_limit: int, *,
                         batch_size: int = BATCH_SIZE) -> dict[str, np.ndarray]:
  """Wu et al.'s detector input: per-feature-map conductance at ``layer``
  (predicted class, black baseline, :data:`CONDUCTANCE_STEPS` right-Riemann
  steps) of the first ``train_limit`` training images and of the validation
  and test halves.

  Returns:
    ``{"train", "validation", "test": (N, features)}``.
  """
  from explicable_jax.attribution import batched

  @jax.jit
  def cond_batch(c, xb):
    return pooled(batched.layer_conductance(
        c, xb, layer=layer, target="predicted", n_steps=CONDUCTANCE_STEPS,
        method="riemann_right"))

  out = {}
  for k in ("train", *HALVES):
    x = splits[k][0][:train_limit] if k == "train" else splits[k][0]
    out[k] = _batching.map_batches(cond_batch, [x], batch_size=batch_size, args=(clf,))
  return out


def detector_features(num_classes: int, predictions: Mapping[str, np.ndarray],
                      conductance: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """``[one-hot prediction, conductance]`` per image, the detector's input."""
  eye = np.eye(num_classes, dtype=np.float32)
  return {k: np.concatenate([eye[predictions[k][:len(v)]], v.reshape(len(v), -1)], 1)
          for k, v in conductance.items()}


@conventions.key_first
def conductance_detector(key: jax.Array, features: Mapping[str, np.ndarray],
                         wrong: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
  """Wu et al.'s detector trained on the training images' wrong predictions,
  scoring the validation and test halves.

  A model that fits its training set leaves no wrong training prediction to
  learn from: then the detector is trained on the validation half, whose own
  scores are out of fold (5-fold stratified).

  Args:
    key: the run's key (the detector uses its own stream).
    features: :func:`detector_features` of ``train``, ``validation``, ``test``.
    wrong: whether each prediction is wrong, for the same splits.

  Returns:
    ``({"validation", "test": (N,) scores}, what it was trained on)``.
  """
  from explicable_jax import detection
  dkey = jax.random.fold_in(key, _DETECTOR)
  w_train = np.asarray(wrong["train"][:len(features["train"])])
  if 0 < w_train.sum() < len(w_train):
    det = detection.train_detector(dkey, features["train"], w_train, epochs=DETECTOR_EPOCHS)
    return ({h: np.asarray(det.scores(features[h])) for h in HALVES},
            f"{len(w_train)} training images ({int(w_train.sum())} wrong)")
  from sklearn.model_selection import StratifiedKFold
  wv = np.asarray(wrong["validation"])
  if min(int(wv.sum()), int((~wv).sum())) < 2:
    raise ValueError(
        f"the conductance detector has nothing to learn from: the {len(w_train)} training "
        f"images have {int(w_train.sum())} wrong predictions and the validation half "
        f"{int(wv.sum())} of {len(wv)}; give more data (limit, train_limit).")
  oof = np.empty(len(wv))
  folds = StratifiedKFold(min(5, int(wv.sum()), int((~wv).sum())), shuffle=True,
                          random_state=0)
  for i, (tr, te) in enumerate(folds.split(features["validation"], wv)):
    d = detection.train_detector(jax.random.fold_in(dkey, i), features["validation"][tr],
                                 wv[tr], epochs=DETECTOR_EPOCHS)
    oof[te] = np.asarray(d.scores(features["validation"][te]))
  det = detection.train_detector(dkey, features["validation"], wv, epochs=DETECTOR_EPOCHS)
  return ({"validation": oof, "test": np.asarray(det.scores(features["test"]))},
          f"the validation half (the {len(w_train)} training images have "
          f"{int(w_train.sum())} wrong predictions; validation scores out of fold)")
