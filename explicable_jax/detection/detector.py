"""Detecting wrong predictions: Wu, Michel and Briot's error detector.

Wu et al. ("Leveraging Model Interpretability and Stability to increase
Model Robustness", 2019) train a small classifier on the layer conductance
of each prediction (:func:`explicable_jax.attribution.layer_conductance`
summed or averaged per feature map) to say whether the prediction is wrong,
pick its threshold on a validation set, and combine its score with the label
change rate of mutants (:mod:`explicable_jax.mutation`) in a second,
"unified" classifier.

* :func:`train_detector` / :func:`detector_scores`: the MLP (200-200 ReLU,
  dropout 0.5, sigmoid output; their ``create_verif``) trained with optax
  Adam on binary cross-entropy, labels 1 = wrong prediction; features are
  standardised with the training set's statistics (``normalize="range"``:
  ``(x - mean) / (max - min)``, their notebook's); ``class_weight="balanced"``
  (our default) weighs the rare wrong predictions up; their code trains with
  the plain, unweighted BCE (``class_weight=None``).
* :func:`roc_curve`, :func:`choose_threshold`, :func:`recalls`.
* :func:`fit_combiner`: the unified classifier on ``[LCR, detector score]``:
  ``nn`` (the same MLP, smaller), or scikit-learn's random forest, LDA, QDA,
  logistic regression.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import conventions
from explicable_jax import _optax, _validation, metrics

__all__ = [
    "COMBINERS", "Combiner", "Detector", "NORMALIZATIONS", "THRESHOLD_METHODS",
    "choose_threshold", "detector_scores", "evaluate_scores", "fit_combiner", "init_mlp",
    "mlp_logit", "recalls", "roc_curve", "train_detector",
]

THRESHOLD_METHODS = ("youden", "equal_recall", "recall")
COMBINERS = ("nn", "rf", "lda", "qda", "logreg")
NORMALIZATIONS = ("standard", "range")


def _features(name: str, x) -> np.ndarray:
  x = np.asarray(x, np.float32)
  if x.ndim == 1:
    x = x[:, None]
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"{name} must be a non-empty (N, features) matrix; got shape {x.shape}.")
  if not np.all(np.isfinite(x)):
    rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    raise ValueError(f"{name} must be finite; rows {', '.join(map(str, rows[:10]))}"
                     f"{' ...' if rows.size > 10 else ''} ({rows.size} in all) hold NaN/inf.")
  return x


def _binary(name: str, y, n: int) -> np.ndarray:
  y = np.asarray(y)
  if y.shape != (n,):
    raise ValueError(f"{name} must have shape ({n},), one per row; got {y.shape}.")
  if y.dtype != bool and not np.all(np.isin(y, (0, 1))):
    raise ValueError(f"{name} must hold booleans or 0/1 (1 = wrong prediction).")
  y = y.astype(bool)
  if y.all() or not y.any():
    raise ValueError(f"{name} needs both classes; got {int(y.sum())} positives of {n}.")
  return y


# ---------------------------------------------------------------------------
# The MLP detector.


@conventions.key_first
def init_mlp(key: jax.Array, sizes: Sequence[int]) -> list[dict]:
  """He-normal weights of an MLP with layer sizes ``sizes`` (input first)."""
  key = _validation.check_key("key", key, call="init_mlp(key, ...)")
  if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
    raise ValueError(f"sizes must hold at least two layer sizes (input first, output last); "
                     f"got {sizes!r}.")
  for s in sizes:
    _validation.check_positive("sizes", s, integer=True)
  params = []
  for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    w = jax.random.normal(jax.random.fold_in(key, i), (a, b)) * jnp.sqrt(2.0 / a)
    params.append({"w": w, "b": jnp.zeros(b)})
  return params


def mlp_logit(params: list[dict], x: jax.Array, *, dropout: float = 0.0,
              key: jax.Array | None = None) -> jax.Array:
  """The detector's logit (pre-sigmoid) for a batch ``x``; inverted dropout
  on the hidden layers when ``key`` is given (training)."""
  if not isinstance(params, (list, tuple)) or not params:
    raise ValueError(f"params must be init_mlp's non-empty list of layers; got {params!r}.")
  if not isinstance(dropout, jax.core.Tracer) and not (
      isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1):
    raise ValueError(f"dropout must be a rate in [0, 1); got {dropout!r}.")
  if dropout and key is None:
    raise ValueError(
        f"dropout={dropout!r} is applied only in training, with key= (the masks' PRNG key); "
        "got no key, so no dropout would be applied: pass key=, or dropout=0.0 to "
        "evaluate.")
  width = np.shape(params[0]["w"])[0]
  if np.shape(x)[-1] != width:
    raise ValueError(f"x must have {width} features per row (init_mlp's first size); got "
                     f"shape {tuple(np.shape(x))}.")
  h = x
  for i, layer in enumerate(params[:-1]):
    h = jax.nn.relu(h @ layer["w"] + layer["b"])
    if key is not None and dropout > 0:
      keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1 - dropout, h.shape)
      h = jnp.where(keep, h / (1 - dropout), 0.0)
  return (h @ params[-1]["w"] + params[-1]["b"])[..., 0]


@dataclasses.dataclass
class Detector:
  """A trained detector: MLP weights plus the feature standardisation."""
  params: Any
  mean: np.ndarray
  std: np.ndarray
  history: list[float]

  def scores(self, features) -> np.ndarray:
    """``P(wrong | features)`` for every row."""
    x = _features("features", features)
    if x.shape[1] != self.mean.shape[0]:  # before standardising, which would broadcast
      raise ValueError(f"features must have {self.mean.shape[0]} columns as in training; "
                       f"got {x.shape[1]}.")
    x = (x - self.mean) / self.std
    return np.asarray(jax.nn.sigmoid(_jit_logit(self.params, jnp.asarray(x))))


_jit_logit = jax.jit(lambda p, x: mlp_logit(p, x))


def _detector_optimizer(learning_rate: float, weight_decay: float):
  return optax.adamw(learning_rate, weight_decay=weight_decay)


@functools.partial(jax.jit, static_argnames=("batch_size", "dropout", "learning_rate",
                                             "weight_decay"))
def _detector_epoch(carry, xs, ys, w_pos, w_neg, key, *, batch_size, dropout, learning_rate,
                    weight_decay):
  """One shuffled epoch of :func:`train_detector` (module level, so that
  every call with the same shapes and settings reuses one compilation)."""
  opt = _detector_optimizer(learning_rate, weight_decay)
  steps = xs.shape[0] // batch_size
  order = jax.random.permutation(jax.random.fold_in(key, 0), xs.shape[0])
  order = order[: steps * batch_size].reshape(steps, batch_size)

  def loss_fn(p, xb, yb, k):
    z = mlp_logit(p, xb, dropout=dropout, key=k)
    w = jnp.where(yb > 0, w_pos, w_neg)
    return jnp.mean(w * optax.sigmoid_binary_cross_entropy(z, yb))

  def step(c, inp):
    p, s = c
    idx, i = inp
    loss, g = jax.value_and_grad(loss_fn)(p, xs[idx], ys[idx], jax.random.fold_in(key, i + 1))
    upd, s = _optax.update(opt, g, s, p)
    return (optax.apply_updates(p, upd), s), loss

  carry, losses = jax.lax.scan(step, carry, (order, jnp.arange(steps)))
  return carry, losses.mean()


@conventions.boundary(is_wrong="mask")
def train_detector(key: jax.Array, features, is_wrong, *, hidden: Sequence[int] = (200, 200),
                   dropout: float = 0.5, epochs: int = 50, batch_size: int = 128,
                   learning_rate: float = 1e-3, weight_decay: float = 0.0,
                   class_weight: str | None = "balanced",
                   normalize: str = "standard") -> Detector:
  """Trains Wu et al.'s error detector; returns a :class:`Detector`.

  Minimises the (optionally class-weighted) binary cross-entropy

  .. math:: -\\frac1N \\sum_i w_{y_i} [y_i \\log \\sigma(f(x_i)) + (1 - y_i) \\log(1 - \\sigma(f(x_i)))]

  with ``w_1 = N / (2 N_1)``, ``w_0 = N / (2 N_0)`` for ``"balanced"``,
  using optax Adam, shuffled mini-batches (order from ``key``) and dropout.

  Its keyword-only parameters are the detector's hyperparameters in Wu et al.'s code (hidden
  sizes, dropout, epochs, batch size, learning rate, weight decay, class weights,
  normalisation); :func:`fit_combiner` forwards them as ``**options``.

  Args:
    key: PRNG key for the weights, the batch order and dropout.
    features: ``(N, F)`` e.g. per-feature-map conductance of each prediction.
    is_wrong: ``(N,)`` 1 where the model's prediction was wrong.
    hidden: hidden layer sizes (Wu et al.: 200, 200).
    dropout: dropout rate after each hidden layer (0.5).
    class_weight: ``"balanced"`` or ``None`` (unweighted, Wu et al.'s code).
    normalize: ``"standard"`` (``(x - mean) / std``) or ``"range"``
      (``(x - mean) / (max - min)``, Wu et al.'s), training-set statistics.
    batch_size: examples per step (Wu et al.: 128); more than the ``N``
      examples means one full batch per epoch (a small validation half and
      the default size, unlike ``training.fit``, which refuses it).

  Returns:
    A :class:`Detector`; ``detector.scores(features)`` gives ``P(wrong)``
    ``(M,)`` for ``(M, F)`` features.

  Example:
    >>> import jax, numpy as np
    >>> from explicable_jax import metrics
    >>> f = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    >>> wrong = f[:, 0] > 0.5  # the errors lie on one side of feature 0
    >>> det = train_detector(jax.random.key(0), f, wrong, hidden=(16,), dropout=0.0,
    ...                      epochs=30, learning_rate=1e-2)
    >>> s = det.scores(f)
    >>> s.shape, metrics.auroc(s, wrong) > 0.95
    ((200,), True)
  """
  key = _validation.check_key("key", key, call="train_detector(key, ...)")
  if isinstance(hidden, (str, bytes)) or np.ndim(hidden) != 1:
    raise TypeError(f"hidden must be a sequence of layer widths, e.g. (200, 200); got "
                    f"{hidden!r}" + (f" (one layer? pass ({hidden},))" if np.ndim(hidden) == 0
                                     else "") + ".")
  x = _features("features", features)
  y = _binary("is_wrong", is_wrong, x.shape[0])
  _validation.check_fraction("dropout", dropout)
  if dropout >= 1:
    raise ValueError(f"dropout must be below 1; got {dropout!r}.")
  _validation.check_positive("epochs", epochs, integer=True)
  _validation.check_positive("batch_size", batch_size, integer=True)
  _validation.check_positive("learning_rate", learning_rate)
  _validation.check_choice("class_weight", class_weight, (None, "balanced"))
  _validation.check_choice("normalize", normalize, NORMALIZATIONS)
  mean = x.mean(0)
  spread = x.std(0) if normalize == "standard" else x.max(0) - x.min(0)
  if not np.any(spread > 0):
    raise ValueError(
        f"features must vary across the training examples; every one of its {x.shape[1]} "
        f"columns is constant over the {x.shape[0]} rows, so there is nothing to learn "
        "(the wrong array? all-zero attributions of a dead layer?).")
  # A constant column keeps scale 1 (as scikit-learn's StandardScaler): dividing by
  # its zero spread would blow any new value up to a saturated score.
  std = np.where(spread > 0, spread + 1e-8, 1.0)
  xs = jnp.asarray((x - mean) / std)
  ys = jnp.asarray(y, jnp.float32)
  n = len(y)
  if class_weight == "balanced":
    w_pos, w_neg = n / (2 * y.sum()), n / (2 * (~y).sum())
  else:
    w_pos = w_neg = 1.0
  params = init_mlp(jax.random.fold_in(key, 0), [x.shape[1], *hidden, 1])
  opt_state = _detector_optimizer(learning_rate, weight_decay).init(params)
  bs = min(batch_size, n)
  epoch = functools.partial(_detector_epoch, batch_size=bs, dropout=float(dropout),
                            learning_rate=float(learning_rate),
                            weight_decay=float(weight_decay))

  history = []
  carry = (params, opt_state)
  for e in range(epochs):
    carry, loss = epoch(carry, xs, ys, jnp.float32(w_pos), jnp.float32(w_neg),
                        jax.random.fold_in(key, e + 1))
    loss = float(loss)
    if not np.isfinite(loss):
      raise FloatingPointError(f"detector training diverged at epoch {e} (loss {loss}); "
                               "lower learning_rate.")
    history.append(loss)
  return Detector(params=carry[0], mean=mean, std=std, history=history)


def detector_scores(detector: Detector, features) -> np.ndarray:
  """``detector.scores(features)``: the probability that each prediction is wrong."""
  if not hasattr(detector, "scores"):
    raise TypeError(f"detector must be the Detector train_detector returns (the arguments are "
                    f"detector_scores(detector, features)); got {type(detector).__name__}.")
  return detector.scores(features)


# ---------------------------------------------------------------------------
# ROC, thresholds, recalls.


roc_curve = metrics.roc_curve
"""The ROC curve: :func:`explicable_jax.metrics.roc_curve` (one tie rule for
every ranking metric)."""


@conventions.boundary(scores="scores", is_wrong="mask")
def choose_threshold(scores, is_wrong, *, method: str = "youden",
                     target_recall: float | None = None) -> float:
  """A decision threshold for "wrong" (``score >= threshold``), chosen on
  validation data.

  ``youden``: maximise Youden's ``J = TPR - FPR``, i.e. the mean of the
  recalls of right and wrong predictions; this is what Wu et al.'s
  ``find_opti_thresh`` computes (argmax of ``1 - FPR + TPR``) before their
  notebook moves each threshold by hand. ``equal_recall``: the point where
  the two recalls are closest, ``argmin |TPR - (1 - FPR)|`` (the paper's
  "both recalls are close"; the larger threshold on a tie). ``recall``: the
  largest threshold whose recall of wrong predictions is at least
  ``target_recall``.
  """
  _validation.check_choice("method", method, THRESHOLD_METHODS)
  if method == "recall":
    if target_recall is None:
      raise ValueError("target_recall is required for method='recall'.")
    _validation.check_fraction("target_recall", target_recall)
    return metrics.roc_point_at_tpr(scores, is_wrong, target_recall)[2]
  if target_recall is not None:
    raise ValueError(f"target_recall applies to method='recall' only; got method={method!r}.")
  fpr, tpr, thr = roc_curve(scores, is_wrong)
  if method == "youden":
    i = int(np.argmax(tpr - fpr))
  else:
    i = int(np.argmin(np.abs(tpr - (1.0 - fpr))))
  return float(thr[max(i, 1)])  # never +inf: at least the top score


@conventions.boundary(scores="scores", is_wrong="mask", threshold="number")
def recalls(scores, is_wrong, threshold: float) -> dict[str, float]:
  """Recall of right and of wrong predictions at ``threshold`` (wrong when
  ``score >= threshold``), their mean, and the accuracy of the split."""
  s = np.asarray(scores, np.float64)
  w = _binary("is_wrong", is_wrong, len(s))
  flag = s >= threshold
  right_recall = float(np.mean(~flag[~w]))
  wrong_recall = float(np.mean(flag[w]))
  return {"right_recall": right_recall, "wrong_recall": wrong_recall,
          "mean_recall": (right_recall + wrong_recall) / 2,
          "accuracy": float(np.mean(flag == w))}


@conventions.boundary(scores="scores", is_wrong="mask")
def evaluate_scores(scores, is_wrong, threshold: float) -> dict[str, float]:
  """AUROC (:func:`explicable_jax.metrics.auroc`) plus :func:`recalls`."""
  return {"auroc": metrics.auroc(scores, is_wrong), **recalls(scores, is_wrong, threshold)}


# ---------------------------------------------------------------------------
# The unified classifier on [LCR, detector score].


@dataclasses.dataclass
class Combiner:
  """A fitted combiner; ``scores(features)`` gives ``P(wrong)`` per row."""
  kind: str
  model: Any

  def scores(self, features) -> np.ndarray:
    x = _features("features", features)
    if self.kind == "nn":
      return self.model.scores(x)
    width = getattr(self.model, "n_features_in_", None)
    if width is not None and x.shape[1] != width:
      raise ValueError(f"features must have {width} columns as in fitting; got {x.shape[1]}.")
    return self.model.predict_proba(x)[:, 1]


@conventions.boundary(is_wrong="mask")
def fit_combiner(kind: str, features, is_wrong, *, key: jax.Array | None = None,
                 **options) -> Combiner:
  """Wu et al.'s unified classifier of ``features`` (e.g. ``[LCR, detector
  score]`` per prediction).

  ``nn``: :func:`train_detector` with ``hidden=(32, 32)`` unless given (needs
  ``key``); ``rf``: ``RandomForestClassifier(n_estimators=100)`` (seeded
  from ``key`` when given); ``lda`` / ``qda``: scikit-learn's
  discriminant analyses (QDA with ``reg_param=1e-3`` unless given);
  ``logreg``: ``LogisticRegression``. The scikit-learn models see
  standardised features. ``options`` go to the underlying constructor (Wu
  et al.'s settings: ``nn`` with ``hidden=(10, 10), epochs=3,
  batch_size=100, class_weight=None``; ``rf`` with ``max_depth=10``).
  """
  _validation.check_choice("kind", kind, COMBINERS)
  x = _features("features", features)
  y = _binary("is_wrong", is_wrong, x.shape[0])
  if kind in ("lda", "qda") and x.shape[0] > 1:
    constant = np.flatnonzero(np.ptp(np.asarray(x), axis=0) == 0)
    if constant.size == x.shape[1]:
      raise ValueError(f"features are constant in every column, so a {kind!r} combiner has "
                       "nothing to separate: give features that vary.")
  wrong = int(np.asarray(y).astype(bool).sum())
  need = 2 if kind in ("lda", "qda") else 1  # a class covariance needs two points
  if min(wrong, len(y) - wrong) < need:
    raise ValueError(
        f"is_wrong must hold at least {need} wrong and {need} right prediction"
        f"{'s' if need > 1 else ''} to fit a {kind!r} combiner (one model of each class); "
        f"got {wrong} wrong and {len(y) - wrong} right.")
  if kind == "nn":
    if key is None:
      raise ValueError("key is required for kind='nn' (explicit PRNG keys).")
    options.setdefault("hidden", (32, 32))
    return Combiner("nn", train_detector(key, x, y, **options))
  from sklearn import discriminant_analysis, ensemble, linear_model  # Host-side work.
  if kind == "rf":
    seed = None if key is None else int(jax.random.randint(key, (), 0, 2**31 - 1))
    options.setdefault("n_estimators", 100)
    options["random_state"] = seed
    make = ensemble.RandomForestClassifier
  elif kind == "lda":
    make = discriminant_analysis.LinearDiscriminantAnalysis
  elif kind == "logreg":
    make = linear_model.LogisticRegression
  else:
    # A small ridge (on standardised features) keeps QDA defined when a
    # feature is constant within a class (e.g. an LCR of 0 for every right
    # prediction); scikit-learn rejects variances below 1e-4.
    options.setdefault("reg_param", 1e-3)
    make = discriminant_analysis.QuadraticDiscriminantAnalysis
  takes = set(make().get_params())
  unknown = sorted(set(options) - takes)
  if unknown:
    raise TypeError(
        f"kind={kind!r} (scikit-learn's {make.__name__}) takes no option "
        f"{', '.join(unknown)}; its options are {', '.join(sorted(takes))}.")
  model = make(**options)
  from sklearn import pipeline, preprocessing
  model = pipeline.make_pipeline(preprocessing.StandardScaler(), model)
  try:
    model.fit(x, y)
  except np.linalg.LinAlgError as e:
    counts = {c: int(np.sum(np.asarray(y).astype(bool) == c)) for c in (True, False)}
    raise ValueError(
        f"features cannot fit a {kind!r} combiner: a class's covariance of the "
        f"{x.shape[1]} feature columns is singular ({counts[True]} wrong and {counts[False]} "
        f"right predictions; a full covariance needs more examples per class than "
        f"features). Give more examples, fewer features, reg_param= (qda, now "
        f"{options.get('reg_param', 'unset')}), or kind='logreg' / 'lda'. "
        f"(scikit-learn: {str(e).splitlines()[0][:120]})") from None
  return Combiner(kind, model)
