"""Evaluation metrics: accuracy, confusion, explicability of mistakes, and the
error-detection metrics (AUROC, AUPR, FPR at 95% TPR, risk-coverage, AURC,
E-AURC, selective accuracy).

The explicability metrics follow Olmo, Sengupta and Kambhampati, "Not all
Failure Modes are Created Equal: Training Deep Neural Networks for Explicable
(Mis)Classification" (ICCV 2021), as their code computes them
(``aOlmo/weighted-misclassifications``):

* the **explicability-loss table**: every model evaluated with every weighted
  loss (L_IHL, L_CHL, L_EKL), the mean of
  :func:`explicable_jax.losses.weighted_cross_entropy` over a test set;
* **hard and soft scores** over a set of models: on the inputs that *every*
  model misclassifies, the model whose wrong class is most similar to the
  true one under ``M`` (the mean of the row-normalised IHL, CHL and EKL
  matrices, :func:`explicable_jax.similarity.explicability_matrix`) wins.
  Hard: +1 to the winner when it is the only one; soft: ``1/n`` to each of
  ``n`` tied winners;
* the **mean similarity of mistakes** ("mistake severity" in hierarchy-aware
  classification, Bertinetto et al. 2020): the mean of ``S[y, prediction]``
  over misclassified inputs.

Inputs are host or device arrays; every function validates its arguments on
the host and computes with ``jax.numpy``.

One module, not a package (over 500 lines): the error-detection metrics share
one grouping of tied scores (``_tie_blocks``: ROC, AUROC, AUPR, FPR at a TPR,
risk-coverage) and one argument check, and the explicability metrics are short;
a reader finds every metric of the paper tables in one file.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _validation, losses, similarity

__all__ = [
    "aupr", "aurc", "auroc", "bootstrap_auroc_difference", "bootstrap_auroc_differences",
    "confusion_matrix", "coverage_threshold", "e_aurc", "explicability_loss_table",
    "explicability_losses", "fpr_at_tpr", "hard_soft_scores", "mean_mistake_similarity",
    "predictions", "risk_coverage_curve", "roc_curve", "roc_point_at_tpr",
    "selective_accuracy", "top1_accuracy",
]


def _labels(name: str, labels, num_classes: int | None = None) -> np.ndarray:
  y = np.asarray(labels)
  if y.ndim != 1:
    raise ValueError(f"{name} must be a (N,) vector of class indices; got shape {y.shape}.")
  if num_classes is not None:
    _validation.check_labels(name, y, num_classes)
  elif y.size and not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class indices; got dtype {y.dtype}.")
  return y


def _logits(name: str, logits, n: int | None = None) -> np.ndarray:
  z = np.asarray(logits)
  if z.ndim != 2:
    raise ValueError(f"{name} must be (N, classes); got shape {z.shape}.")
  if n is not None and z.shape[0] != n:
    raise ValueError(f"{name} must have one row per label ({n}); got {z.shape[0]} rows.")
  if not np.all(np.isfinite(z)):
    raise ValueError(
        f"{name} must be finite; it holds {int(np.sum(~np.isfinite(z)))} NaN/inf entries.")
  return z


@conventions.boundary(logits="class_scores")
def predictions(logits: ArrayLike) -> jax.Array:
  """The top-1 class of each row of ``logits`` ``(N, C)``.

  Args:
    logits: ``(N, C)`` class scores.

  Returns:
    ``(N,)`` class indices.
  """
  return jnp.argmax(jnp.asarray(_logits("logits", logits)), axis=-1)


@conventions.boundary(logits="class_scores", labels="labels")
def top1_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
  """Fraction of rows whose largest logit is the true class.

  Args:
    logits: ``(N, C)`` scores (logits or probabilities).
    labels: ``(N,)`` true classes.
  """
  z = _logits("logits", logits)
  y = _labels("labels", labels, z.shape[1])
  if y.shape[0] != z.shape[0]:
    raise ValueError(f"labels must have one entry per row of logits ({z.shape[0]}); "
                     f"got {y.shape[0]}.")
  if y.size == 0:
    raise ValueError("labels is empty; accuracy of no examples is undefined.")
  return float(jnp.mean(jnp.argmax(z, -1) == y))


@conventions.boundary(labels="labels", preds="labels")
def confusion_matrix(labels: ArrayLike, preds: ArrayLike, num_classes: int, *,
                     normalize: str | None = None) -> np.ndarray:
  """``C[i, j]``: how many inputs of true class ``i`` were predicted ``j``.

  Args:
    labels, preds: ``(N,)`` true and predicted classes.
    num_classes: ``C``.
    normalize: ``None`` (counts), ``"true"`` (each row sums to 1, as in the
      paper's Figure 2), ``"pred"`` (columns) or ``"all"``. Same convention
      as ``sklearn.metrics.confusion_matrix``; a row or column without
      examples stays zero.
  """
  _validation.check_num_classes("num_classes", num_classes)
  _validation.check_choice("normalize", normalize, (None, "true", "pred", "all"))
  y = _labels("labels", labels, num_classes)
  p = _labels("preds", preds, num_classes)
  if y.shape != p.shape:
    raise ValueError(f"preds must match labels' shape {y.shape}; got {p.shape}.")
  counts = np.asarray(jnp.zeros((num_classes, num_classes), jnp.int32).at[y, p].add(1))
  if normalize is None:
    return counts
  c = counts.astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    if normalize == "true":
      c = c / c.sum(axis=1, keepdims=True)
    elif normalize == "pred":
      c = c / c.sum(axis=0, keepdims=True)
    else:
      c = c / c.sum()
  return np.nan_to_num(c)


@conventions.boundary(logits="logits", labels="labels")
def explicability_losses(logits: ArrayLike, labels: ArrayLike,
                         matrices: Mapping[str, np.ndarray], *, target: str = "softmax",
                         scale: float = 1.0) -> dict[str, float]:
  """Mean weighted cross-entropy of one model under each matrix.

  .. math:: \\bar L_W = \\frac1N \\sum_n -\\sum_k t_k(W_{y_n}) \\log p_k(x_n)

  Args:
    logits: ``(N, C)`` the model's logits on the test set.
    labels: ``(N,)`` true classes.
    matrices: name -> ``(C, C)`` similarity matrix, e.g.
      ``{"IHL": ihl, "CHL": chl, "EKL": ekl}``.
    target, scale: how a row becomes a target distribution
      (:func:`explicable_jax.losses.weighted_targets`). ``authors`` (the
      matrix's kind read from its name, ``IHL`` / ``CHL`` / ``EKL``, and the
      matrix given raw as :func:`~explicable_jax.similarity.as_stored_by_authors`
      takes it) is how the authors' table was computed; ``softmax`` (the
      default) softmaxes the matrices as given.

  Returns:
    name -> mean loss.
  """
  z = _logits("logits", logits)
  y = _labels("labels", labels, z.shape[1])
  if y.shape[0] != z.shape[0]:
    raise ValueError(f"labels must have one entry per row of logits ({z.shape[0]}); "
                     f"got {y.shape[0]}.")
  if not isinstance(matrices, Mapping):
    raise TypeError(
        f"matrices must be a mapping name -> (C, C) similarity matrix, e.g. {{'IHL': ihl, "
        f"'EKL': ekl}}; got {type(matrices).__name__} (one matrix? pass {{'W': matrix}}).")
  if not matrices:
    raise ValueError("matrices must name at least one similarity matrix.")
  out = {}
  for name, w in matrices.items():
    similarity.check_weight_matrix(f"matrices[{name!r}]", w, z.shape[1])
    kind = None
    if target == "authors":
      kind = str(name).lower()
      if kind not in similarity.AUTHORS_KINDS:
        raise ValueError(f"target='authors' reads each matrix's kind from its name, one of "
                         f"IHL, CHL, EKL; got the name {name!r}.")
    out[name] = float(jnp.mean(losses.weighted_cross_entropy(
        jnp.asarray(z), jnp.asarray(y), w, target=target, scale=scale, kind=kind)))
  return out


@conventions.boundary(logits_by_model="logits{}", labels="labels")
def explicability_loss_table(logits_by_model: Mapping[str, np.ndarray], labels: ArrayLike,
                             matrices: Mapping[str, np.ndarray], *,
                             target: str = "softmax",
                             scale: float = 1.0) -> dict[str, dict[str, float]]:
  """The paper's cross table: ``table[model][matrix]`` = mean loss of that
  model under that matrix's weighted loss (:func:`explicability_losses`).

  Args:
    logits_by_model: name -> ``(N, C)`` logits on the same test set.
    labels: ``(N,)`` true classes.
    matrices, target, scale: as in :func:`explicability_losses`.

  Returns:
    ``{model: {matrix: mean loss}}``.
  """
  if not logits_by_model:
    raise ValueError("logits_by_model must name at least one model.")
  return {m: explicability_losses(z, labels, matrices, target=target, scale=scale)
          for m, z in logits_by_model.items()}


def _stack_predictions(preds_by_model: Mapping[str, np.ndarray], labels,
                       num_classes: int) -> tuple[list[str], np.ndarray, np.ndarray]:
  if len(preds_by_model) < 1:
    raise ValueError("preds_by_model must name at least one model.")
  y = _labels("labels", labels, num_classes)
  names, rows = [], []
  for name, p in preds_by_model.items():
    p = _labels(f"preds_by_model[{name!r}]", p, num_classes)
    if p.shape != y.shape:
      raise ValueError(f"preds_by_model[{name!r}] must match labels' shape {y.shape}; "
                       f"got {p.shape}.")
    names.append(name)
    rows.append(p)
  return names, np.stack(rows), y


def _similarity_matrix(similarity_matrix, **class_arrays):
  """The one check of a mistake-similarity matrix beside the classes it
  scores: non-negative ``(C, C)``, a similarity (positive diagonal), a row and
  column for every class in ``class_arrays``."""
  m = similarity.check_weight_matrix("similarity_matrix", similarity_matrix)
  similarity.check_self_similarity("similarity_matrix", np.asarray(m))
  similarity.check_covers("similarity_matrix", m, **class_arrays)
  return m


@conventions.boundary(preds_by_model="labels{}", labels="labels")
def hard_soft_scores(preds_by_model: Mapping[str, np.ndarray], labels: ArrayLike,
                     similarity_matrix: ArrayLike) -> dict:
  """Olmo et al.'s hard and soft explicability scores of a set of models.

  On the inputs every model misclassifies, each model's mistake scores
  ``s_m = M[y, pred_m]``; with ``B`` the set of models attaining
  ``max_m s_m`` (exact ties):

  .. math:: \\mathrm{hard}_m = \\sum_x [B(x) = \\{m\\}], \\qquad
            \\mathrm{soft}_m = \\sum_x [m \\in B(x)] / |B(x)|

  Args:
    preds_by_model: name -> ``(N,)`` predicted classes of the same inputs.
    labels: ``(N,)`` true classes.
    similarity_matrix: ``(C, C)`` ``M`` with row = true class, e.g.
      :func:`explicable_jax.similarity.explicability_matrix` of IHL, CHL, EKL.

  Returns:
    ``{"hard": {name: int}, "soft": {name: float}, "num_common_mistakes": int}``.
    The soft scores add up to ``num_common_mistakes``.

  Example:
    >>> import numpy as np
    >>> m = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.1], [0.1, 0.1, 1.0]])
    >>> # both inputs are class 0; model a says 1 (similar) then 2, model b says 2 twice
    >>> hard_soft_scores({"a": [1, 2], "b": [2, 2]}, [0, 0], m)
    {'hard': {'a': 1, 'b': 0}, 'soft': {'a': 1.5, 'b': 0.5}, 'num_common_mistakes': 2}
  """
  if isinstance(preds_by_model, Mapping) and len(preds_by_model) < 2:
    raise ValueError(
        f"preds_by_model must hold at least 2 models: the hard and soft scores compare "
        f"models' common mistakes (one model wins every one of them); got "
        f"{len(preds_by_model)}. For one model's mistakes use mean_mistake_similarity.")
  m = _similarity_matrix(similarity_matrix, labels=labels, **{
      f"preds_by_model[{k!r}]": v for k, v in preds_by_model.items()})
  names, preds, y = _stack_predictions(preds_by_model, labels, m.shape[0])
  sims = jnp.asarray(m)[jnp.asarray(y)[None, :], jnp.asarray(preds)]  # (models, N)
  common = jnp.all(preds != y[None, :], axis=0)
  is_best = sims == sims.max(axis=0, keepdims=True)
  n_best = is_best.sum(axis=0)
  hard = jnp.sum(is_best & (n_best == 1) & common, axis=1)
  soft = jnp.sum(jnp.where(common, is_best.astype(jnp.float32) / n_best.astype(jnp.float32), 0.0),
                 axis=1)
  return {"hard": {n: int(h) for n, h in zip(names, hard)},
          "soft": {n: float(s) for n, s in zip(names, soft)},
          "num_common_mistakes": int(common.sum())}


@conventions.boundary(labels="labels", preds="labels")
def mean_mistake_similarity(labels: ArrayLike, preds: ArrayLike,
                            similarity_matrix: ArrayLike) -> float:
  """Mean ``S[y, pred]`` over the misclassified inputs: how reasonable the
  mistakes are (higher = more explicable; the "mistake severity" of
  hierarchy-aware classification with a similarity instead of a distance).

  .. math:: \\bar s = \\frac{1}{|E|} \\sum_{n \\in E} S_{y_n, \\hat y_n}, \\quad
            E = \\{n : \\hat y_n \\ne y_n\\}

  Args:
    labels, preds: ``(N,)`` true and predicted classes.
    similarity_matrix: ``(C, C)`` ``S``, row = true class.

  Returns:
    The mean similarity of the mistakes, a float.

  Raises ``ValueError`` when there is no mistake: the mean over none is
  undefined, and a made-up number would mislead.
  """
  s = _similarity_matrix(similarity_matrix, labels=labels, preds=preds)
  if s.max() > 1:
    warnings.warn(
        f"similarity_matrix has entries up to {s.max():g}, above 1: the mean is read in the "
        "matrix's units, while the library's similarities (wordnet_similarity, from_ratings, "
        "from_soft_labels) lie in [0, 1]; divide by the largest entry (raw ratings?) to "
        "compare with them.", UserWarning, stacklevel=_validation.user_stacklevel())
  y = _labels("labels", labels, s.shape[0])
  p = _labels("preds", preds, s.shape[0])
  if y.shape != p.shape:
    raise ValueError(f"preds must match labels' shape {y.shape}; got {p.shape}.")
  wrong = y != p
  if not wrong.any():
    raise ValueError("preds has no mistakes; the mean similarity of mistakes is undefined.")
  return float(jnp.mean(jnp.asarray(s)[y[wrong], p[wrong]]))


@conventions.boundary(scores="scores", is_positive="mask")
def auroc(scores: ArrayLike, is_positive: ArrayLike) -> float:
  """Area under the ROC curve: the probability that a random positive scores
  higher than a random negative, ties counting one half (Mann-Whitney U).

  .. math:: \\mathrm{AUROC} = \\frac{1}{n_+ n_-} \\sum_{i \\in +} \\sum_{j \\in -}
            \\left([s_i > s_j] + \\tfrac12 [s_i = s_j]\\right)

  Computed from average ranks in ``O(N log N)`` (float64, on the host); equals
  ``sklearn.metrics.roc_auc_score``.

  Args:
    scores: ``(N,)`` real scores, higher = more likely positive.
    is_positive: ``(N,)`` booleans (or 0/1), e.g. "this prediction is wrong".

  Returns:
    The AUROC, a float in ``[0, 1]`` (0.5 = chance).

  Example:
    >>> auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])  # 3 of the 4 pairs ordered
    0.75
  """
  s, t = _scores_and_labels(scores, is_positive, "is_positive", both=True)
  n_pos, n_neg = int(t.sum()), int((~t).sum())
  ranks = _average_ranks(s)
  u = ranks[t].sum() - n_pos * (n_pos + 1) / 2
  return float(u / (n_pos * n_neg))


def _average_ranks(s: np.ndarray) -> np.ndarray:
  """1-based ranks of ``s`` in float64, ties sharing their mean rank."""
  _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
  last = np.cumsum(counts)  # 1-based rank of each distinct value's last copy
  return (last - (counts - 1) / 2.0)[inverse]


def _scores_and_labels(scores, labels, name: str, *, both: bool):
  """``scores`` as finite float64 ``(N,)`` and ``labels`` as matching booleans;
  with ``both``, each label value must occur."""
  s = np.asarray(scores, dtype=np.float64)
  t = np.asarray(labels)
  if s.ndim != 1:
    raise ValueError(f"scores must be a (N,) vector; got shape {s.shape}.")
  if t.shape != s.shape:
    raise ValueError(f"{name} must match scores' shape {s.shape}; got {t.shape}.")
  if not np.all(np.isfinite(s)):
    raise ValueError(f"scores must be finite; it holds {int(np.sum(~np.isfinite(s)))} NaN/inf.")
  if t.dtype != bool:
    if not np.all(np.isin(t, (0, 1))):
      raise ValueError(f"{name} must hold booleans or 0/1.")
    t = t.astype(bool)
  if not s.size:
    raise ValueError("scores is empty.")
  if both:
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
      raise ValueError(
          f"{name} needs both classes; got {n_pos} positives and {n_neg} negatives.")
  return s, t


def _tie_blocks(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Distinct scores, highest first: ``(values, counts, positives)`` per block
  of ties. The one grouping of ties behind every ranking metric here (ROC,
  AUPR, FPR at a TPR, risk-coverage)."""
  order = np.argsort(-s, kind="stable")
  s, t = s[order], t[order]
  starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
  counts = np.diff(np.r_[starts, len(s)])
  positives = np.add.reduceat(t.astype(np.float64), starts)
  return s[starts], counts, positives


@conventions.boundary(scores="scores", is_positive="mask")
def roc_curve(scores: ArrayLike, is_positive: ArrayLike
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The ROC curve, one point per distinct score (ties are one point).

  .. math:: \\mathrm{TPR}(\\tau) = \\frac{|\\{i \\in + : s_i \\ge \\tau\\}|}{n_+},
            \\qquad
            \\mathrm{FPR}(\\tau) = \\frac{|\\{j \\in - : s_j \\ge \\tau\\}|}{n_-}

  Because tied scores move both rates at once, the curve crosses a block of
  ties on a diagonal, and the trapezoid area under it is :func:`auroc`, the
  Mann-Whitney statistic with ties counted one half. Same points as
  ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.

  Args:
    scores: ``(N,)`` real scores, higher = more likely positive.
    is_positive: ``(N,)`` booleans (or 0/1); both classes must occur.

  Returns:
    ``(fpr, tpr, thresholds)``, each ``(B + 1,)`` for ``B`` distinct scores,
    highest threshold first, starting at ``(0, 0)`` with threshold ``+inf``;
    a point counts ``score >= threshold`` as positive.

  Example:
    >>> fpr, tpr, thr = roc_curve([0.1, 0.4, 0.4, 0.8], [0, 1, 0, 1])
    >>> fpr.tolist(), tpr.tolist(), thr.tolist()
    ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], [inf, 0.8, 0.4, 0.1])
  """
  s, t = _scores_and_labels(scores, is_positive, "is_positive", both=True)
  values, counts, positives = _tie_blocks(s, t)
  tps, fps = np.cumsum(positives), np.cumsum(counts - positives)
  return (np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]], np.r_[np.inf, values])


@conventions.boundary(scores="scores", is_positive="mask")
def roc_point_at_tpr(scores: ArrayLike, is_positive: ArrayLike,
                     tpr: float) -> tuple[float, float, float]:
  """The first point of :func:`roc_curve` (highest threshold first) whose true
  positive rate reaches ``tpr``: the one threshold rule behind
  :func:`fpr_at_tpr` and ``detection.choose_threshold(method="recall")``.

  Args:
    scores: ``(N,)`` real scores, higher = more likely positive.
    is_positive: ``(N,)`` booleans (or 0/1); both classes must occur.
    tpr: the true positive rate to reach, in ``[0, 1]``.

  Returns:
    ``(fpr, tpr, threshold)`` at that point; never the ``+inf`` start (a
    ``tpr`` of 0 gives the top score's point).

  Example:
    >>> roc_point_at_tpr([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.9)
    (0.5, 1.0, 0.35)
  """
  _validation.check_fraction("tpr", tpr)
  fpr_c, tpr_c, thr_c = roc_curve(scores, is_positive)
  i = max(int(np.argmax(tpr_c >= tpr - 1e-12)), 1)
  return float(fpr_c[i]), float(tpr_c[i]), float(thr_c[i])


@conventions.boundary(scores="scores", is_positive="mask")
def aupr(scores: ArrayLike, is_positive: ArrayLike) -> float:
  """Area under the precision-recall curve as average precision, errors (the
  positives) ranked by ``scores``, higher first:

  .. math:: \\mathrm{AP} = \\sum_k (R_k - R_{k-1})\\,P_k

  over the distinct thresholds ``k`` (ties form one threshold), with
  precision ``P_k`` and recall ``R_k`` of flagging every score at or above
  it. Equals ``sklearn.metrics.average_precision_score``. Its chance level is
  the positive rate, so report it beside the error rate ("AUPR-Error" in
  Hendrycks and Gimpel, ICLR 2017).

  Args:
    scores: ``(N,)`` real scores, higher = more likely positive.
    is_positive: ``(N,)`` booleans (or 0/1); both classes must occur.

  Returns:
    The average precision, a float in ``[0, 1]``.
  """
  s, t = _scores_and_labels(scores, is_positive, "is_positive", both=True)
  _, counts, positives = _tie_blocks(s, t)
  tp, flagged = np.cumsum(positives), np.cumsum(counts)
  recall = tp / tp[-1]
  precision = tp / flagged
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@conventions.boundary(scores="scores", is_positive="mask")
def fpr_at_tpr(scores: ArrayLike, is_positive: ArrayLike, tpr: float = 0.95) -> float:
  """The false positive rate at the first threshold (highest scores first)
  whose true positive rate reaches ``tpr`` (FPR95 for ``tpr = 0.95``; Liang
  et al., ICLR 2018): the share of right predictions flagged when 95% of the
  errors are caught. Ties are one threshold, as in
  ``sklearn.metrics.roc_curve``.

  Args:
    scores: ``(N,)`` real scores, higher = more likely positive.
    is_positive: ``(N,)`` booleans (or 0/1); both classes must occur.
    tpr: the true positive rate to reach, in ``[0, 1]``.

  Returns:
    The false positive rate there, a float in ``[0, 1]``.
  """
  return roc_point_at_tpr(scores, is_positive, tpr)[0]


@conventions.boundary(error_scores="scores", is_wrong="mask")
def risk_coverage_curve(error_scores: ArrayLike,
                        is_wrong: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  """Selective risk against coverage (Geifman and El-Yaniv, NeurIPS 2017).

  Predictions are accepted from the lowest error score up; accepting the
  ``k`` most confident gives coverage ``k / N`` and selective risk ``(errors
  among them) / k``. Within a block of tied scores the errors are counted
  as their expected number under a random order (the block's error rate
  times the count taken), so the curve does not depend on how ties fall.

  Args:
    error_scores: ``(N,)``, higher = more likely wrong (e.g. ``1 - MSP``).
    is_wrong: ``(N,)`` booleans.

  Returns:
    ``(coverage, risk)``, each ``(N,)``, for ``k = 1 .. N``.
  """
  s, t = _scores_and_labels(error_scores, is_wrong, "is_wrong", both=False)
  _, counts, positives = _tie_blocks(-s, t)  # lowest error score first
  rate = np.repeat(positives / counts, counts)
  errors = np.cumsum(rate)
  k = np.arange(1, len(s) + 1)
  return k / len(s), errors / k


@conventions.boundary(error_scores="scores", is_wrong="mask")
def aurc(error_scores: ArrayLike, is_wrong: ArrayLike) -> float:
  """Area under the risk-coverage curve, the mean selective risk over the
  ``N`` coverages ``k / N`` (Geifman, Uziel and El-Yaniv, ICLR 2019):

  .. math:: \\mathrm{AURC} = \\frac1N \\sum_{k=1}^N \\frac{1}{k}
            \\sum_{i \\le k} [\\text{wrong}_{(i)}]

  with predictions ordered by increasing error score. Lower is better.

  Args:
    error_scores: ``(N,)`` error scores, higher = more likely wrong.
    is_wrong: ``(N,)`` booleans (or 0/1).

  Returns:
    The AURC, a float in ``[0, 1]``.
  """
  return float(np.mean(risk_coverage_curve(error_scores, is_wrong)[1]))


@conventions.boundary(error_scores="scores", is_wrong="mask")
def e_aurc(error_scores: ArrayLike, is_wrong: ArrayLike) -> float:
  """Excess AURC: :func:`aurc` minus that of the perfect ordering (every right
  prediction before every wrong one) on the same predictions (Geifman, Uziel
  and El-Yaniv, ICLR 2019). It removes the part of AURC due to the error
  rate ``r``; the optimum is close to ``r + (1 - r) ln(1 - r)`` for large
  ``N``.

  Args:
    error_scores: ``(N,)`` error scores, higher = more likely wrong.
    is_wrong: ``(N,)`` booleans (or 0/1).

  Returns:
    The excess AURC, a float ``>= 0`` (up to rounding).
  """
  s, t = _scores_and_labels(error_scores, is_wrong, "is_wrong", both=False)
  return aurc(s, t) - aurc(t.astype(np.float64), t)


@conventions.boundary(error_scores="scores", is_wrong="mask")
def selective_accuracy(error_scores: ArrayLike, is_wrong: ArrayLike, coverage: float) -> float:
  """Accuracy on the ``round(coverage * N)`` predictions with the lowest error
  scores (at least one): one minus the selective risk at that coverage
  (ties as in :func:`risk_coverage_curve`).

  Args:
    error_scores: ``(N,)`` error scores, higher = more likely wrong.
    is_wrong: ``(N,)`` booleans (or 0/1).
    coverage: the share of predictions accepted, in ``[0, 1]``.

  Returns:
    The accuracy of the accepted predictions, a float.
  """
  _validation.check_fraction("coverage", coverage)
  cov, risk = risk_coverage_curve(error_scores, is_wrong)
  k = max(1, int(round(coverage * len(cov))))
  return float(1.0 - risk[k - 1])


@conventions.boundary(error_scores="scores")
def coverage_threshold(error_scores: ArrayLike, coverage: float) -> float:
  """The threshold ``t`` that accepts (``score <= t``) the ``ceil(coverage
  n)`` lowest of ``n`` error scores (more on ties): a selective classifier's
  threshold, chosen on validation scores and applied to others.

  Args:
    error_scores: ``(n,)`` error scores, higher = more likely wrong.
    coverage: the share to accept, in ``(0, 1]``.

  Returns:
    ``t``, the ``ceil(coverage n)``-th smallest score.

  Example:
    >>> coverage_threshold([0.3, 0.1, 0.9, 0.2], 0.5)  # accepts 0.1 and 0.2
    0.2
  """
  _validation.check_fraction("coverage", coverage)
  if coverage == 0:
    raise ValueError("coverage must be in (0, 1], the share of predictions accepted; got 0.")
  s = np.sort(np.asarray(error_scores, np.float64))
  return float(s[max(int(np.ceil(coverage * len(s))) - 1, 0)])


@conventions.boundary(scores="scores", baseline_scores="scores", is_positive="mask")
def bootstrap_auroc_difference(key: jax.Array, scores: ArrayLike, baseline_scores: ArrayLike,
                               is_positive: ArrayLike, *,
                               n_resamples: int = 1000, level: float = 0.95
                               ) -> dict[str, float]:
  """The AUROC of ``scores`` minus that of ``baseline_scores`` on the same
  examples, with a paired percentile bootstrap interval (Efron and
  Tibshirani, 1993): both scores are re-evaluated on each of ``n_resamples``
  resamples of the examples drawn with replacement (indices from ``key``), and
  the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
  the differences. An interval above zero says that ``scores`` ranks errors
  better than the baseline beyond resampling noise. Resamples that hold a
  single class are redrawn out (counted in ``"dropped"``).

  Args:
    key: PRNG key for the resampled indices.
    scores, baseline_scores: ``(N,)`` two scores of the same examples.
    is_positive: ``(N,)`` booleans (or 0/1).
    n_resamples: bootstrap resamples (at least 2).
    level: the interval's coverage, in ``[0, 1]``.

  Returns:
    ``{"difference", "low", "high", "p_not_better", "dropped"}``, where
    ``p_not_better`` is the share of resamples with a difference ``<= 0``.
  """
  key = _validation.check_key("key", key, call="bootstrap_auroc_difference(key, scores, "
                                                "baseline_scores, is_positive)")
  return bootstrap_auroc_differences(key, {"scores": scores}, baseline_scores, is_positive,
                                     n_resamples=n_resamples, level=level)["scores"]


_MIN_PER_CLASS = 5
"""Below this many examples of a class, a bootstrap interval of an AUROC
resamples the same few examples and is warned about."""


@conventions.boundary(scores="scores{}", baseline_scores="scores", is_positive="mask")
def bootstrap_auroc_differences(key: jax.Array, scores: Mapping[str, np.ndarray],
                                baseline_scores: ArrayLike, is_positive: ArrayLike, *,
                                n_resamples: int = 1000,
                                level: float = 0.95) -> dict[str, dict[str, float]]:
  """:func:`bootstrap_auroc_difference` for several named scores against one
  baseline, on the same resamples: the indices are drawn once from ``key``
  and the baseline's resampled AUROCs are computed once, not once per score.

  Args:
    key: PRNG key for the resampled indices.
    scores: name -> ``(N,)`` scores of the same examples.
    baseline_scores: ``(N,)``.
    is_positive: ``(N,)`` booleans (or 0/1).
    n_resamples, level: as in :func:`bootstrap_auroc_difference`.

  Returns:
    name -> :func:`bootstrap_auroc_difference`'s dict.
  """
  key = _validation.check_key("key", key, call="bootstrap_auroc_differences(key, ...)")
  _validation.check_fraction("level", level, closed=False)
  if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 2:
    raise ValueError(f"n_resamples must be an int >= 2; got {n_resamples!r}.")
  if not isinstance(scores, Mapping) or not scores:
    raise ValueError(f"scores must be a non-empty mapping of name to (N,) scores; got "
                     f"{type(scores).__name__}.")
  if np.shape(baseline_scores) != np.shape(is_positive):
    raise ValueError(f"baseline_scores must match is_positive's shape "
                     f"{np.shape(is_positive)}; got {np.shape(baseline_scores)}.")
  b, t = _scores_and_labels(baseline_scores, is_positive, "is_positive", both=True)
  few = min(int(t.sum()), int((~t.astype(bool)).sum()))
  if few < _MIN_PER_CLASS:
    import warnings
    which = "positive" if int(t.sum()) == few else "negative"
    warnings.warn(
        f"bootstrap_auroc_differences: is_positive holds {few} {which} example"
        f"{'s' if few != 1 else ''}: every resample repeats {'it' if few == 1 else 'them'}, "
        f"so the interval measures {'that one example' if few == 1 else 'those few'}, not "
        f"the detector (a zero-width interval from one is no certainty); collect at least "
        f"{_MIN_PER_CLASS} of each class.", UserWarning, stacklevel=_validation.user_stacklevel())
  idx = np.asarray(jax.random.randint(key, (n_resamples, b.size), 0, b.size))
  keep = np.array([t[i].any() and not t[i].all() for i in idx])
  idx = idx[keep]

  def resampled(s):
    return np.array([auroc(s[i], t[i]) for i in idx])

  base, base_all = resampled(b), auroc(b, t)
  out = {}
  for name, v in scores.items():
    if np.shape(v) != b.shape:
      raise ValueError(f"scores[{name!r}] must match baseline_scores' shape {b.shape}; got "
                       f"{np.shape(v)}.")
    a, _ = _scores_and_labels(v, is_positive, "is_positive", both=True)
    d = resampled(a) - base
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    out[name] = {"difference": auroc(a, t) - base_all, "low": float(lo), "high": float(hi),
                 "p_not_better": float(np.mean(d <= 0)), "dropped": int(n_resamples - d.size)}
  return out
