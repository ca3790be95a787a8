"""Per-example losses for classifiers.

Each loss takes ``logits`` of shape ``(batch, classes)`` and returns one value
per example; the caller reduces (optax's convention). Training losses plug
into :func:`explicable_jax.training.make_train_step` through the signature
``loss_fn(logits, batch, params) -> (batch,)`` and are registered by name in
:data:`LOSSES` for the command line.

One module, not a package (over 500 lines): every loss here (cross-entropy and
label smoothing, Olmo et al.'s weighted losses, Ross et al.'s input-gradient
penalties) is built for the one training contract above and registered in the
one :data:`LOSSES` table; the penalties' input gradients are part of RRR's
loss, not a tool of their own.
"""
from __future__ import annotations

import os
import warnings

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _paths, _validation, similarity
from explicable_jax import _class_index

__all__ = [
    "GRADIENT_CLASSES", "GRADIENT_SCALES", "LOSSES", "WEIGHTED_TARGETS", "certainty_penalty",
    "cross_entropy", "cross_entropy_loss", "input_gradient_penalty", "input_gradients",
    "make_certainty_loss", "make_label_smoothing_loss", "make_loss", "make_rrr_loss",
    "make_weighted_loss", "register_loss", "weighted_cross_entropy", "weighted_targets",
]


def _batch_labels(batch) -> Any:
  """``batch["y"]``: a training loss takes the batch dict of
  :func:`~explicable_jax.data.batches`, not the labels themselves."""
  if not isinstance(batch, Mapping) or "y" not in batch:
    got = (f"a mapping with keys {sorted(batch)}" if isinstance(batch, Mapping)
           else type(batch).__name__)
    raise TypeError(
        f"batch must be the batch dict with 'y' (labels) that make_train_step passes, as in "
        f"loss_fn(logits, batch, params); got {got}: pass {{'y': labels}}, or call "
        "losses.cross_entropy(logits, labels) for the plain loss.")
  return conventions.check_labels("batch['y']", batch["y"])


@conventions.boundary(logits="logits", labels="labels")
def cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
  """Softmax cross-entropy with integer labels, one value per example.

  .. math:: \\ell(z, y) = -\\log \\mathrm{softmax}(z)_y

  Same as ``optax.softmax_cross_entropy_with_integer_labels``.

  Args:
    logits: ``(N, C)`` class scores.
    labels: ``(N,)`` class indices.

  Returns:
    ``(N,)`` losses.
  """
  logits = jnp.asarray(logits)
  return _class_index.valid(optax.softmax_cross_entropy_with_integer_labels(logits, labels),
                            labels, logits.shape[-1])


@conventions.boundary(logits="logits")
def cross_entropy_loss(logits: ArrayLike, batch: dict, params: Any = None) -> jax.Array:
  """Training-loss form of :func:`cross_entropy`: reads ``batch['y']``.

  Args:
    logits: ``(N, C)`` class scores.
    batch: a batch with ``"y"`` ``(N,)`` class indices.
    params: unused (the loss signature of :func:`make_train_step`).

  Returns:
    ``(N,)`` losses.
  """
  del params
  return cross_entropy(logits, _batch_labels(batch))


def make_label_smoothing_loss(alpha: float) -> Callable:
  """Cross-entropy against ``(1 - alpha) * onehot + alpha / C`` (Szegedy et al. 2016)."""
  _validation.check_fraction("alpha", alpha)
  def loss(logits, batch, params=None):
    del params
    targets = optax.smooth_labels(
        _class_index.one_hot(_batch_labels(batch), logits.shape[-1]), alpha)
    return optax.softmax_cross_entropy(logits, targets)
  return loss


WEIGHTED_TARGETS = ("l1", "softmax", "authors")


def weighted_targets(weights: ArrayLike, *, target: str = "l1", scale: float = 1.0,
                     kind: str | None = None) -> jax.Array:
  """The target distribution of every true class: row ``y`` is ``t(W_y)``.

  * ``l1``: ``W_y / sum_k W_yk``, the paper's WLF;
  * ``authors``: ``softmax(scale * S_y)`` with ``S`` the matrix as the
    authors' code stores it (:func:`explicable_jax.similarity.as_stored_by_authors`:
    raw 0-4 CHL ratings, L1-normalised EKL, IHL as is; ``kind`` says which,
    and ``weights`` is the raw matrix of that kind). This is exactly their
    ``WeightedCC(weights, scaling=scale)`` (``losses.py``), ``scale`` 1 by
    default as theirs;
  * ``softmax``: ``softmax(scale * W_y)`` of ``W`` as given.

  How peaked the targets are, as the mean true-class mass on CIFAR-10 (the
  authors' stored matrices; ``experiments/explicable_cifar10/matrices.py``
  prints ours): ``authors``: CHL 0.72, EKL 0.15, IHL 0.22; ``l1``: CHL
  0.43, EKL 0.52, IHL 0.95; ``softmax`` of CHL scaled to ``[0, 1]``:
  about 0.20. So the authors' form keeps most of the mass on the true class
  for CHL but spreads it almost uniformly for EKL and IHL.

  Args:
    weights: ``(C, C)`` non-negative similarity matrix ``W``, row = true class.
    target, scale, kind: how a row becomes a distribution (above).

  Returns:
    ``(C, C)`` float32, each row a target distribution.
  """
  if isinstance(weights, (str, bytes, os.PathLike)):
    raise TypeError(
        f"weights must be a (C, C) similarity matrix; got the path or name "
        f"{os.fspath(weights)!r}: load it first (np.load(path)), or build the loss by name, "
        "losses.make_loss('weighted', weights=path).")
  _validation.check_choice("target", target, WEIGHTED_TARGETS)
  _validation.check_positive("scale", scale)
  if target == "authors":
    if kind is None:
      raise ValueError(f"target='authors' needs kind= (one of "
                       f"{', '.join(similarity.AUTHORS_KINDS)}): the authors store each "
                       "matrix differently.")
    stored = similarity.as_stored_by_authors(kind, np.asarray(weights))
    return jax.nn.softmax(scale * jnp.asarray(stored, jnp.float32), axis=1)
  if kind is not None:
    raise ValueError(f"kind= is only for target='authors'; got target={target!r}.")
  checked: ArrayLike
  try:
    checked = similarity.check_weight_matrix("weights", weights)
  except jax.errors.TracerArrayConversionError:
    checked = weights  # Traced: validated by the caller on the host.
  w = jnp.asarray(checked, jnp.float32)
  if target == "l1":
    if scale != 1.0:
      raise ValueError(
          f"scale is read only with target='authors' or 'softmax' (a softmax's inverse "
          f"temperature); target='l1' normalises the rows as they are, so scale={scale!r} "
          "would be ignored: drop scale, or pass target='softmax'.")
    if isinstance(checked, np.ndarray):
      similarity.check_self_similarity("weights", checked)
    return w / w.sum(axis=1, keepdims=True)
  if isinstance(checked, np.ndarray):
    similarity.check_self_similarity("weights", checked)
    _warn_one_hot_targets(scale * checked)
  return jax.nn.softmax(scale * w, axis=1)


def _warn_one_hot_targets(z: np.ndarray) -> None:
  """Softmax targets of rows whose weights differ by more than ~30 are one-hot
  to float32 precision: the similarity they were meant to carry is lost, and
  the weighted loss is the plain cross-entropy (a matrix on the 0..255 or
  0..100 scale, say)."""
  z = np.asarray(z, np.float64)
  gap = z.max(axis=1) - np.where(z < z.max(axis=1, keepdims=True), z, -np.inf).max(axis=1)
  lost = np.flatnonzero(np.isfinite(gap) & (gap > 30))
  if lost.size:
    warnings.warn(
        f"weighted_targets(target='softmax'): rows {lost[:8].tolist()} of scale * weights "
        f"span more than 30 (largest gap {gap[lost].max():.4g}), so their softmax targets "
        "are one-hot and the loss is plain cross-entropy: pass weights on the [0, 1] scale "
        "(a similarity matrix; W / W.max()), or a smaller scale.", UserWarning,
        stacklevel=_validation.user_stacklevel())


@conventions.boundary(logits="logits", labels="labels")
def weighted_cross_entropy(logits: ArrayLike, labels: ArrayLike, weights: ArrayLike, *,
                           target: str = "l1", scale: float = 1.0,
                           kind: str | None = None) -> jax.Array:
  r"""Weighted loss function WLF(y, p) = L(t(W_y), p), one value per example.

  Olmo, Sengupta and Kambhampati (2020): cross-entropy against the
  distribution built from row ``y`` of the class-similarity matrix ``W``, so
  that probability on explicable (similar) classes costs less than on
  inexplicable ones:

  .. math:: \ell(z, y) = -\sum_k t_k(W_y) \log \mathrm{softmax}(z)_k

  With ``W = I`` and ``target="l1"`` it is plain cross-entropy.

  Args:
    logits: ``(N, C)``.
    labels: ``(N,)`` integer true classes.
    weights: ``(C, C)`` similarity matrix (row = true class); see
      :mod:`explicable_jax.similarity`.
    target: ``l1`` (row normalisation, the paper), ``authors`` (the authors'
      code, with ``kind``) or ``softmax``; see :func:`weighted_targets`.
    scale: softmax temperature inverse, for ``authors`` / ``softmax``.
    kind: ``ihl``, ``chl`` or ``ekl``, for ``target="authors"``.

  Returns:
    ``(N,)`` losses, unreduced (the caller takes the mean).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> logits, labels = jnp.array([[2.0, 1.0, 0.0]]), jnp.array([0])
    >>> bool(jnp.allclose(weighted_cross_entropy(logits, labels, jnp.eye(3)),  # W = I
    ...                   optax.softmax_cross_entropy_with_integer_labels(logits, labels)))
    True
    >>> w = jnp.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> weighted_cross_entropy(logits, labels, w).round(4).tolist()  # targets (2/3, 1/3, 0)
    [0.7409]
  """
  logits = jnp.asarray(logits)
  targets = weighted_targets(weights, target=target, scale=scale, kind=kind)
  if targets.shape[0] != logits.shape[-1]:
    raise ValueError(
        f"weights must be {logits.shape[-1]}x{logits.shape[-1]} for logits with "
        f"{logits.shape[-1]} classes; got shape {tuple(targets.shape)}.")
  return optax.softmax_cross_entropy(logits, _class_index.rows(targets, labels))


def make_weighted_loss(weights: ArrayLike, *, target: str = "l1", scale: float = 1.0,
                       kind: str | None = None) -> Callable:
  """Training-loss form of :func:`weighted_cross_entropy` for ``make_train_step``.

  The matrix is validated and normalised once, here, on the host.
  """
  targets = weighted_targets(weights, target=target, scale=scale, kind=kind)
  classes = int(targets.shape[0])

  def loss(logits, batch, params=None):
    del params
    if logits.shape[-1] != classes:  # Static: raised when the step is traced.
      raise ValueError(
          f"weights is {classes}x{classes} but the model returns {logits.shape[-1]} class "
          f"scores; give a {logits.shape[-1]}x{logits.shape[-1]} similarity matrix.")
    return optax.softmax_cross_entropy(logits, _class_index.rows(targets, _batch_labels(batch)))
  # Checked by training.fit against the dataset before the first step.
  setattr(loss, "num_classes", classes)
  return loss


def _weighted_from_file(weights: str, target: str = "l1", scale: float = 1.0,
                        kind: str | None = None):
  """The weighted loss of a similarity matrix saved with ``np.save``."""
  if not isinstance(weights, str):
    raise ValueError(f"weights must be the path of a .npy matrix; got {weights!r}.")
  _paths.check_existing_file("weights", weights, "a (C, C) similarity matrix (np.save)")
  return make_weighted_loss(np.load(weights), target=target, scale=scale, kind=kind)


def _cross_entropy_factory():
  return cross_entropy_loss


def _rrr_factory(lam: float = 1000.0, l2: float = 0.0, scale: str = "log",
                 classes: str = "sum", normalize: bool = False,
                 annotation_key: str | None = "annotation"):
  return make_rrr_loss(lam, l2=l2, scale=scale, classes=classes, normalize=normalize,
                       annotation_key=annotation_key)


def _certainty_factory(lam: float = 1.0, l2: float = 0.0, scale: str = "log",
                       classes: str = "sum"):
  return make_certainty_loss(lam, l2=l2, scale=scale, classes=classes)


def _label_smoothing_factory(alpha: float = 0.1):
  return make_label_smoothing_loss(alpha)


LOSSES: dict[str, Callable[..., Callable]] = {
    "cross_entropy": _cross_entropy_factory,
    "label_smoothing": _label_smoothing_factory,
    "weighted": _weighted_from_file,
    "rrr": _rrr_factory,
    "certainty": _certainty_factory,
}
"""Loss factories by name: ``LOSSES[name](**options) -> loss_fn``; build one
with :func:`make_loss`, which checks the options."""


def make_loss(name: str, **options) -> Callable:
  """The loss ``name`` of :data:`LOSSES` built with ``options``.

  Raises:
    ValueError: an unknown name, or an option the factory does not take
      (``alhpa=0.5``), naming the valid ones; a missing required option.
  """
  import inspect
  factory = _validation.lookup("loss", name, LOSSES)
  params = inspect.signature(factory).parameters
  _validation.check_options(f"loss {name!r}", options, factory, error=ValueError)
  if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty
               and p.kind is not inspect.Parameter.VAR_POSITIONAL and k not in options]
    if missing:
      raise ValueError(f"loss {name!r} needs the option{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(missing)} (e.g. --loss-kwargs '{{\"{missing[0]}\": ...}}').")
  return factory(**options)


@conventions.boundary()
def register_loss(name: str, factory: Callable[..., Callable], *,
                  overwrite: bool = False) -> None:
  """Makes ``factory(**options) -> loss_fn`` available to the CLI as ``name``.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True`` to replace it).
  """
  _validation.register("loss", LOSSES, name, factory, arg="factory", overwrite=overwrite)


# ---------------------------------------------------------------------------
# Right for the Right Reasons (Ross, Hughes and Doshi-Velez, IJCAI 2017).

GRADIENT_SCALES = ("log", "linear")
GRADIENT_CLASSES = ("sum", "max", "true")


def _check_gradient_classes(classes: str, labels) -> None:
  """The one rule of ``classes`` and ``labels`` for the input gradients
  (:func:`input_gradients`, :func:`explicable_jax.rrr.model_input_gradients`):
  ``classes`` one of :data:`GRADIENT_CLASSES`; ``labels`` given exactly when
  ``classes='true'`` (any other choice would ignore them)."""
  _validation.check_choice("classes", classes, GRADIENT_CLASSES)
  if classes == "true" and labels is None:
    raise ValueError("labels are required for classes='true'.")
  if classes != "true" and labels is not None:
    raise ValueError(
        f"labels are read only with classes='true'; got labels with classes={classes!r}, "
        "which ignores them: drop labels, or pass classes='true'.")


@conventions.boundary(x="batch", labels="labels")
def input_gradients(model_fn: Callable, x: ArrayLike, *, scale: str = "log",
                    classes: str = "sum", labels: ArrayLike | None = None) -> jax.Array:
  """``d/dx f(x)`` for every example, with ``f`` built from the model's
  (log-)probabilities as in Ross et al.'s ``input_gradients``:

  * ``scale="log"``: ``log p_k(x)``; ``"linear"``: ``p_k(x)``;
  * ``classes="sum"``: ``sum_k``; ``"max"``: ``max_k``; ``"true"``: the
    label's class (needs ``labels``).

  ``model_fn(x) -> (N, C)`` returns logits or log-probabilities: a
  log-softmax is applied either way (it leaves log-probabilities unchanged).
  The per-example gradients come from one gradient of the batch sum, exact
  because examples do not interact (as with autograd's ``elementwise_grad``
  in the original); a model in training mode with batch norm would couple
  them.

  Args:
    model_fn: a batch ``(N, ...)`` -> ``(N, C)`` logits or log-probabilities.
    x: ``(N, ...)`` inputs.
    scale, classes: the differentiated function (above).
    labels: ``(N,)`` class indices, for ``classes="true"``.

  Returns:
    ``(N, ...)`` gradients, ``x``'s shape.
  """
  _validation.check_signature("model_fn", model_fn, 1, "x -> (N, C) logits")
  x = conventions.check_inputs_of("x", model_fn, x)
  _validation.check_choice("scale", scale, GRADIENT_SCALES)
  _check_gradient_classes(classes, labels)
  conventions.check_model_output("model_fn", model_fn, x)
  if labels is not None and not isinstance(labels, jax.core.Tracer):
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), x)
    z = jax.eval_shape(model_fn, shapes)
    if len(z.shape) == 2:  # labels against the logits' classes (C)
      conventions.check_labels("labels", labels, int(z.shape[1]), n=int(z.shape[0]))

  def total(x):
    z = model_fn(x)
    if classes == "sum":
      logp = jax.nn.log_softmax(z, axis=-1)
      per = (logp if scale == "log" else jnp.exp(logp)).sum(-1)
    else:
      k = (jnp.argmax(z, axis=-1) if classes == "max"
           else jnp.asarray(labels).astype(jnp.int32))
      per = _log_probability_of(z, k)
      if scale == "linear":
        per = jnp.exp(per)
    return per.sum()
  return jax.grad(total)(x)


def _log_probability_of(z: jax.Array, k: jax.Array) -> jax.Array:
  """``log softmax(z)_k`` per row, written so that its gradient stays exact
  when the model is sure.

  ``jax.nn.log_softmax`` differentiates to ``e_k - softmax(z)``, whose
  ``k``-th entry ``1 - p_k`` rounds to 0 in float32 once ``p_k`` rounds to 1
  (a logit gap of about 17), leaving a gradient that points the wrong way.
  Here ``log p_k = -logsumexp_j (z_j - z_k)`` with the ``j = k`` term the
  constant 0, so the ``k``-th entry is the sum of the other probabilities:

  .. math:: \\nabla_z \\log p_k = \\textstyle\\sum_{j \\ne k} p_j\\,(e_k - e_j)
  """
  onehot = jax.nn.one_hot(k, z.shape[-1], dtype=bool)
  zk = _class_index.entries(z, k)[:, None]
  return -jax.nn.logsumexp(jnp.where(onehot, 0.0, z - zk), axis=-1)


@conventions.boundary(x="batch", annotation="mask", labels="labels")
def input_gradient_penalty(model_fn: Callable, x: ArrayLike, annotation: ArrayLike, *,
                           scale: str = "log", classes: str = "sum",
                           labels: ArrayLike | None = None,
                           normalize: bool = False) -> jax.Array:
  """The "right reasons" penalty of every example (Ross et al., eq. 1):

  .. math:: R(x) = \\sum_d \\Big(A_d \\frac{\\partial}{\\partial x_d}
            \\sum_k \\log p_k(x)\\Big)^2

  with ``A`` marking the features that must not matter (1 = irrelevant).

  Args:
    model_fn: a batch ``(N, ...)`` -> logits or log-probabilities ``(N, C)``.
    x: the inputs ``(N, ...)``.
    annotation: ``A``, ``x``'s shape ``(N, ...)``, 1 where a feature must
      not matter.
    scale, classes, labels: the differentiated function
      (:func:`input_gradients`).
    normalize: divide by the number of annotated features of the example
      (at least 1).

  Returns:
    ``(N,)``, one penalty per example (the caller reduces).

  Example:
    >>> import jax.numpy as jnp
    >>> model_fn = lambda x: x @ jnp.array([[1.0, -1.0], [0.0, 0.0]])  # feature 1 unused
    >>> x = jnp.array([[1.0, 0.0]])
    >>> input_gradient_penalty(model_fn, x, jnp.array([[0.0, 1.0]])).tolist()
    [0.0]
    >>> input_gradient_penalty(model_fn, x, jnp.array([[1.0, 0.0]])).round(4).tolist()
    [2.3201]
  """
  x = jnp.asarray(conventions.check_inputs_of("x", model_fn, x))
  a = jnp.asarray(annotation)
  if a.shape != x.shape:
    raise ValueError(f"annotation must have the input's shape {tuple(x.shape)}; "
                     f"got {tuple(a.shape)}.")
  a = a.astype(x.dtype)
  g = input_gradients(model_fn, x, scale=scale, classes=classes, labels=labels)
  axes = tuple(range(1, x.ndim))
  pen = jnp.sum((a * g) ** 2, axis=axes)
  if normalize:
    pen = pen / jnp.maximum(jnp.sum(a != 0, axis=axes).astype(pen.dtype), 1.0)
  return pen


@conventions.boundary(x="batch")
def certainty_penalty(model_fn: Callable, x: ArrayLike, **options) -> jax.Array:
  """Certainty regularisation: :func:`input_gradient_penalty` with every
  feature annotated (``A = 1``), which flattens the model's log-probabilities
  around the data (Ross et al., section 5).

  Args:
    model_fn: a batch ``(N, ...)`` -> ``(N, C)`` logits or log-probabilities.
    x: ``(N, ...)`` inputs.
    **options: :func:`input_gradients`'s ``scale``, ``classes``, ``labels``.

  Returns:
    ``(N,)`` penalties.
  """
  _validation.check_options("certainty_penalty", options,
                            ("scale", "classes", "labels", "normalize"))
  return input_gradient_penalty(model_fn, x, jnp.ones_like(x), **options)


@conventions.boundary()
def make_rrr_loss(lam: float, *, l2: float = 0.0, scale: str = "log",
                  classes: str = "sum", normalize: bool = False,
                  annotation_key: str | None = "annotation") -> Callable:
  """The full RRR training loss for :func:`explicable_jax.training.make_train_step`:

  .. math:: \\ell_i = -\\log p_{y_i}(x_i) + \\lambda R(x_i) + \\lambda_2 \\|\\theta\\|^2

  The annotation mask is read from ``batch[annotation_key]`` (a missing
  key is an error); ``annotation_key=None`` annotates every feature, which is
  certainty regularisation (:func:`make_certainty_loss`). The original sums
  the cross-entropy and the penalty over the batch and adds
  ``l2 ||theta||^2`` once; the step here averages, so the original's
  ``l2_params`` equals this ``l2`` times the batch size (``lam`` is the same).
  """
  _validation.check_nonnegative("lam", lam)
  _validation.check_nonnegative("l2", l2)
  _validation.check_choice("scale", scale, GRADIENT_SCALES)
  _validation.check_choice("classes", classes, GRADIENT_CLASSES)
  if annotation_key in ("x", "y", "mask"):
    raise ValueError(
        f"annotation_key must name the batch's annotation entry (a Dataset extra, "
        f"'annotation' by default); got {annotation_key!r}, which is the batch's own "
        + {"x": "inputs", "y": "labels", "mask": "padding-row mask (one flag per row)"}[
            annotation_key] + ".")

  def loss(logits, batch, params, *, model_fn):
    if annotation_key is None:
      annotation = jnp.ones_like(batch["x"])
    elif annotation_key in batch:
      annotation = batch[annotation_key]
    else:
      raise ValueError(f"batch has no {annotation_key!r} entry (the annotation mask); "
                       f"its keys are {sorted(batch)}.")
    ce = cross_entropy(logits, _batch_labels(batch))
    aux = {"cross_entropy": ce.mean()}
    total = ce
    if lam:  # lam = 0 (a plain model with the same l2) skips the double backward pass.
      pen = input_gradient_penalty(model_fn, batch["x"], annotation, scale=scale,
                                   classes=classes,
                                   labels=_batch_labels(batch) if classes == "true" else None,
                                   normalize=normalize)
      total = total + lam * pen
      aux["gradient_penalty"] = pen.mean()
    if l2:
      total = total + l2 * sum(jnp.sum(p ** 2) for p in jax.tree.leaves(params))
    return total, aux
  return loss


def make_certainty_loss(lam: float, *, l2: float = 0.0, scale: str = "log",
                        classes: str = "sum") -> Callable:
  """Cross-entropy plus ``lam`` times :func:`certainty_penalty` (``A = 1``):
  :func:`make_rrr_loss` with every feature annotated."""
  return make_rrr_loss(lam, l2=l2, scale=scale, classes=classes, annotation_key=None)
