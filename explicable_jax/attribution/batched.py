"""Captum-style attributions of a :class:`~explicable_jax.models.Classifier`.

Every method here takes the classifier, a batch ``x`` ``(N, ...)`` and a
``target`` (a class index, ``N`` indices, or ``"predicted"``), like Captum's
``attribute(inputs, target=...)``; layer methods also take ``layer=`` (one of
``clf.layers``). They are thin: input methods ``jax.vmap`` the one-example
core of :mod:`explicable_jax.attribution.input` over the batch with
``class_score_fn(clf.logits, t)``, and layer methods call the core of
:mod:`explicable_jax.attribution.layer` on ``clf.split(layer)``. Jit them at
the outermost boundary with the classifier as an argument::

    ig = jax.jit(lambda c, x: batched.integrated_gradients(c, x, target="predicted"))
    maps = ig(clf, images)

Called outside ``jax.jit`` (on the host), every method checks its result
and raises ``ValueError`` naming the examples whose attributions hold NaN or
inf (``check_finite=False`` turns this off); under ``jax.jit`` the check is
skipped, since a traced value cannot be inspected, so check the jitted
result on the host.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation, models
from explicable_jax.attribution import _common, input as input_lib
from explicable_jax.attribution import layer as layer_lib
from explicable_jax.attribution import second_order as second_order_lib
from explicable_jax import _class_index

__all__ = [
    "saliency", "gradient_x_input", "integrated_gradients", "smoothgrad",
    "layer_conductance", "neuron_conductance", "layer_gradient_x_activation",
    "layer_integrated_gradients", "grad_cam", "second_order_attribution",
    "targets", "compute_convergence_delta",
]


def _finite_examples(result, name: str) -> None:
  """Raises naming the examples whose ``result`` holds NaN or inf; skipped
  under tracing (a jitted caller checks what it gets back on the host)."""
  leaves = [a for a in jax.tree.leaves(result) if hasattr(a, "shape") and a.ndim >= 1]
  if not leaves or any(isinstance(a, jax.core.Tracer) for a in leaves):
    return
  bad = np.zeros(leaves[0].shape[0], bool)
  for a in leaves:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.inexact) and a.shape[:1] == bad.shape:
      bad |= ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
  if bad.any():
    idx = np.flatnonzero(bad)
    raise ValueError(
        f"{name} holds NaN or inf for {idx.size} example(s), indices "
        f"{', '.join(map(str, idx[:10]))}{' ...' if idx.size > 10 else ''}; check those "
        "inputs and the model's outputs on them, or pass check_finite=False.")


def _checked(fn: Callable | None = None, **kinds: str) -> Callable:
  """Declares ``x`` an input batch (:mod:`~explicable_jax.conventions`: a
  concrete ``x`` with NaN or inf, off-scale images or a channel-first batch
  raise; a NaN input can give finite, meaningless attributions, e.g. zero
  gradients through a ReLU) and adds ``check_finite=True``: a concrete result
  (outside ``jax.jit``) with NaN or inf raises ``ValueError`` naming the
  examples; under tracing the check is skipped and the caller checks on the
  host."""
  import functools
  if fn is None:  # @_checked(param=kind, ...): more declared parameters
    return lambda f: _checked(f, **kinds)
  fn = conventions.boundary(x="inputs", **kinds)(fn)

  @functools.wraps(fn)
  def wrapped(*args, check_finite: bool = True, **kwargs):
    if not isinstance(check_finite, bool):
      raise TypeError(f"check_finite must be True or False; got {check_finite!r}.")
    out = fn(*args, **kwargs)
    if check_finite:
      _finite_examples(out, f"{fn.__name__}'s result")
    return out
  return wrapped


@conventions.boundary(x="inputs")
def targets(clf: Any, x: _common.InputsLike, target: _common.Target) -> jax.Array:
  """Per-example class indices ``(N,)`` for ``target`` (int, ``(N,)`` array
  or ``"predicted"``), checked against ``clf``'s number of classes."""
  clf = models.as_classifier("clf", clf)
  x = _check_batch(x)
  n = _batch_size(x)
  logits = jax.eval_shape(clf.logits, x)
  if logits.ndim != 2 or logits.shape[0] != n:
    raise ValueError(
        f"clf.logits(x) must return (batch, classes) scores; got shape "
        f"{tuple(logits.shape)} for a batch of {n}.")
  return _common.resolve_target(target, logits.shape, lambda: clf.logits(x))


def _check_batch(x, integer_ok: bool = False):
  """A batch, or Captum's tuple of batches (one per input, same length)."""
  if _common.is_multi(x):
    leaves = _common._leaves("x", x, batched=True)
    return tuple(_common.check_input(f"x[{i}]", a, min_rank=1, integer_ok=integer_ok)
                 for i, a in enumerate(leaves))
  return _common.check_input("x", x, min_rank=1, integer_ok=integer_ok)


def _batch_size(x) -> int:
  return (x[0] if _common.is_multi(x) else x).shape[0]


def _per_example_baseline(b, xi):
  """A baseline per example ``(N, ...)`` or one shared by all (or ``None``)."""
  if b is None:
    return None, None
  b = jnp.asarray(b, xi.dtype)
  if b.shape == xi.shape:
    return b, 0
  try:  # shared: kept as one example, not copied per example
    return _common.resolve_baselines(b, jax.ShapeDtypeStruct(xi.shape[1:], xi.dtype)), None
  except ValueError:
    raise ValueError(
        f"baselines must broadcast to one example {tuple(xi.shape[1:])} or be one per "
        f"example {tuple(xi.shape)}; got shape {tuple(b.shape)}.") from None


def _per_example(core: Callable, clf, x, target, baselines, **kwargs):
  """``core(class_score_fn(clf.logits, t_i), x_i, ...)`` for every example
  (``x_i`` a tuple for tuple inputs)."""
  clf = models.as_classifier("clf", clf)
  x = _check_batch(x)
  t = targets(clf, x, target)
  if _common.is_multi(x):
    if baselines is not None and not _common.is_multi(baselines):
      baselines = (baselines,) * len(x)
    if baselines is not None and len(baselines) != len(x):
      raise ValueError(
          f"baselines must have one entry per input ({len(x)}); got {len(baselines)}.")
    pairs = [_per_example_baseline(None if baselines is None else bi, xi)
             for bi, xi in zip(baselines or (None,) * len(x), x)]
    b = None if baselines is None else tuple(p[0] for p in pairs)
    b_axes = None if baselines is None else tuple(p[1] for p in pairs)
  else:
    b, b_axes = _per_example_baseline(baselines, x)
    if b is not None and b_axes is None:
      # One shared baseline, mapped like a per-example one: the batch's
      # boundary checked it in the model's units, so the one-example method
      # sees it traced and does not check it again in [0, 1] units.
      b, b_axes = cast(Any, jnp.broadcast_to(b, x.shape)), cast(Any, 0)

  def one(xi, ti, bi):
    extra = {} if bi is None else {"baselines": bi}
    return core(input_lib.class_score_fn(clf.logits, ti), xi, **extra, **kwargs)

  return jax.vmap(one, in_axes=(0, 0, b_axes))(x, t, b)


@_checked(absolute="flag")
def saliency(clf: Any, x: _common.InputsLike, *, target: _common.Target,
             absolute: bool = False) -> jax.Array:
  """Input gradients of a batch (:func:`~explicable_jax.attribution.gradient`)."""
  return _per_example(input_lib.gradient, clf, x, target, None, absolute=absolute)


@_checked
def gradient_x_input(clf: Any, x: _common.InputsLike, *, target: _common.Target) -> jax.Array:
  """Gradient times input of a batch
  (:func:`~explicable_jax.attribution.gradient_x_input`)."""
  return _per_example(input_lib.gradient_x_input, clf, x, target, None)


@_checked(baselines="baseline")
def integrated_gradients(clf: Any, x: _common.InputsLike, *, target: _common.Target,
                         baselines: _common.Baselines = None,
                         **kwargs) -> jax.Array | tuple[jax.Array, jax.Array]:
  r"""Integrated gradients of a batch
  (:func:`~explicable_jax.attribution.integrated_gradients`; same options,
  ``baselines`` one per example ``(N, ...)`` or shared).

  .. math:: \phi_i = (x_i - x'_i) \int_0^1 \partial_i F_t(x' + \alpha (x - x'))\, d\alpha

  Args:
    clf: a :class:`~explicable_jax.models.Classifier` (or a model
      :func:`~explicable_jax.models.as_classifier` accepts).
    x: ``(N, ...)`` inputs, or Captum's tuple of batches.
    target: a class index, ``N`` indices, or ``"predicted"``.
    baselines: ``x'``: ``None`` (zeros), one shared example, or ``(N, ...)``.
    **kwargs: ``n_steps``, ``method``, ``internal_batch_size``,
      ``return_convergence_delta``, ... as the one-example method.

  Returns:
    ``(N, ...)`` attributions shaped like ``x`` (and the convergence deltas
    ``(N,)`` with ``return_convergence_delta=True``).

  Example:
    >>> import jax.numpy as jnp
    >>> from explicable_jax import models
    >>> w = jnp.array([[1.0, -1.0], [2.0, 0.0], [0.0, 3.0]])  # 3 features, 2 classes
    >>> clf = models.from_functions(lambda p, x: x @ p, w, input_shape=(3,), num_classes=2)
    >>> x = jnp.array([[1.0, 1.0, 1.0], [0.0, 0.5, 1.0]])
    >>> integrated_gradients(clf, x, target=0).round(4).tolist()  # linear: w[:, 0] * x
    [[1.0, 2.0, 0.0], [0.0, 1.0, 0.0]]

  Sundararajan, Taly and Yan, "Axiomatic attribution for deep networks"
  (ICML 2017).
  """
  return _per_example(input_lib.integrated_gradients, clf, x, target, baselines, **kwargs)


@_checked(stdevs="perturbation")
def smoothgrad(key: jax.Array, clf: Any, x: _common.InputsLike, *,
               target: _common.Target, stdevs: float | None = None,
               **kwargs) -> jax.Array | tuple[jax.Array, jax.Array]:
  """SmoothGrad of a batch (:func:`~explicable_jax.attribution.smoothgrad`);
  example ``i`` draws its noise from ``fold_in(key, i)``, so a result does
  not depend on how the examples were batched. With
  ``return_convergence_delta=True`` (and an ``attribution_fn`` that has one)
  the deltas come back as ``(N, n_samples)``. ``stdevs`` is the noise's
  standard deviation in the inputs' units (``[0, 1]`` images: e.g. ``0.1``,
  not ``25.5``); ``None`` uses 15% of each example's range."""
  key = _validation.check_key("key", key, call="smoothgrad(key, clf, x, ...)")
  clf = models.as_classifier("clf", clf)
  x = _check_batch(x)
  keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(_batch_size(x)))
  t = targets(clf, x, target)
  return jax.vmap(lambda k, xi, ti: input_lib.smoothgrad(
      k, input_lib.class_score_fn(clf.logits, ti), xi, stdevs=stdevs, **kwargs))(keys, x, t)


@conventions.boundary(x="inputs", baselines="baseline", attributions="maps")
def compute_convergence_delta(clf: Any, attributions: _common.InputsLike, x: _common.InputsLike, *,
                              target: _common.Target,
                              baselines: _common.Baselines = None) -> jax.Array:
  """Captum's ``compute_convergence_delta``: per example,

  .. math:: \\delta = \\sum_i \\phi_i - (F(x) - F(x'))

  for attributions ``(N, ...)`` of the target scores ``F`` of ``clf`` (input
  attributions, or layer attributions whose path runs from ``x'`` to ``x``).
  Zero for an exact integrated-gradients or conductance computation.
  """
  clf = models.as_classifier("clf", clf)
  x = _check_batch(x, integer_ok=True)
  n = _batch_size(x)
  parts = (tuple(cast(tuple, attributions)) if _common.is_multi(attributions)
           else (attributions,))
  total: jax.Array | float = 0.0
  for a in parts:
    a = jnp.asarray(a)
    if a.ndim < 1 or a.shape[0] != n:
      raise ValueError(
          f"attributions must have one row per example of x ({n}); got shape "
          f"{tuple(a.shape)}.")
    if not _common.is_multi(x):
      _attribution_shape(clf, x, tuple(a.shape))
    total = total + a.reshape(n, -1).sum(1)
  t = targets(clf, x, target)
  ref: jax.Array | tuple[jax.Array, ...]
  if _common.is_multi(x):
    xs = cast(tuple, x)
    per_input = (cast(tuple, baselines) if baselines is not None and _common.is_multi(baselines)
                 else (baselines,) * len(xs))
    ref = tuple(_common.resolve_baselines(b, xi) for b, xi in zip(per_input, xs))
  else:
    ref = _common.resolve_baselines(baselines, x)
    _warn_at_baseline(x, ref)
  scores = lambda v: _class_index.entries(clf.logits(v), t)
  return total - (scores(x) - scores(ref))


def _warn_at_baseline(x, ref) -> None:
  """Inputs equal to their baseline have ``F(x) - F(x') = 0``: any
  attribution of them should sum to 0, and the delta is the attributions'
  own sum (the attributions and ``x`` swapped, say). Concrete inputs only."""
  if isinstance(x, jax.core.Tracer) or isinstance(ref, jax.core.Tracer):
    return
  same = np.flatnonzero(np.all(np.asarray(x).reshape(len(x), -1)
                               == np.broadcast_to(np.asarray(ref), np.shape(x)).reshape(len(x), -1),
                               axis=1))
  if same.size:
    warnings.warn(
        f"compute_convergence_delta: {same.size} of {len(x)} examples of x "
        f"({', '.join(map(str, same[:10]))}{', ...' if same.size > 10 else ''}) equal their "
        "baseline, so F(x) - F(baseline) = 0 and their delta is the attributions' own sum: "
        "attributions and x swapped? (the call is compute_convergence_delta(clf, "
        "attributions, x, ...)).", UserWarning, stacklevel=_validation.user_stacklevel())


def _attribution_shape(clf, x, shape: tuple) -> None:
  """Attributions of ``x`` have its shape (input methods) or a layer's
  activation shape (layer methods); any other shape explains something
  else."""
  allowed = {tuple(np.shape(x))}
  if shape in allowed:  # input attributions: no layer traced
    return
  spec = jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x))
  for name in clf.layers:
    try:
      allowed.add(tuple(jax.eval_shape(clf.split(name)[0], spec).shape))
    except Exception:  # noqa: BLE001 - a layer that cannot take this batch is no candidate
      continue
    if shape in allowed:  # the first layer of that shape: traced no further
      return
  if shape not in allowed:
    raise ValueError(
        f"attributions must have the shape of x {tuple(np.shape(x))} (input attributions) or "
        f"of one of the model's layers (layer attributions: {sorted(allowed - {tuple(np.shape(x))})}); "
        f"got {shape}.")


def _at_layer(core: Callable, clf, name: str, x, kwargs: dict):
  """``core`` at layer ``name`` (the split's functions carry the name, so the
  core methods' messages name the layer)."""
  return core(*clf.split(name), x, **kwargs)


def _layer_method(core: Callable, details: str = "") -> Callable:
  def method(clf, x, *, layer, **kwargs):
    clf = models.as_classifier("clf", clf)
    if _common.is_multi(layer):  # Captum's list of layers: one result each
      if not layer:
        raise ValueError("layer must name at least one layer; got an empty list.")
      return tuple(_at_layer(core, clf, name, x, kwargs) for name in layer)
    return _at_layer(core, clf, layer, x, kwargs)

  method.__doc__ = (
      f"``{core.__name__}`` of a classifier cut at ``layer``: "
      f"``{core.__name__}(*clf.split(layer), x, **kwargs)``.\n\n"
      f"Call as ``{core.__name__}(clf, x, layer=..., target=..., ...)``; the "
      f"options are those of :func:`explicable_jax.attribution.{core.__name__}`. "
      "``layer`` may be a list of layer names (one result each, in a tuple) "
      "and ``x`` a tuple of inputs." + details)
  method.__name__ = method.__qualname__ = core.__name__
  checked = _checked(method)
  checked.__doc__ = (checked.__doc__ or "") + (
      " A concrete result with NaN or inf raises naming the examples "
      "(``check_finite=False`` to skip; skipped under ``jax.jit``).")
  setattr(checked, "core", core)  # the unbatched method, for introspection
  return checked


layer_conductance = _layer_method(layer_lib.layer_conductance, """

.. math:: \\mathrm{Cond}_j = \\int_0^1 \\frac{\\partial F_t}{\\partial h_j}
          \\frac{\\partial h_j(x' + \\alpha (x - x'))}{\\partial \\alpha}\\, d\\alpha

Args:
  clf: a :class:`~explicable_jax.models.Classifier` with the layer in ``clf.layers``.
  x: ``(N, ...)`` inputs.
  layer: the layer ``h`` (a name of ``clf.layers``), or a list of names.
  target: a class index, ``N`` indices, or ``"predicted"``.
  **kwargs: ``baselines``, ``n_steps``, ``method``, ``internal_batch_size``,
    ``return_convergence_delta``, ... as the unbatched method.

Returns:
  ``(N, *h.shape[1:])`` conductances that add up to ``F_t(x) - F_t(x')``
  (a tuple with a list of layers).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from explicable_jax import models
  >>> p = {"w1": jnp.array([[1.0, 0.0], [0.0, 2.0]]), "w2": jnp.array([[1.0, -1.0], [0.0, 1.0]])}
  >>> hidden = lambda p, x: jax.nn.relu(x @ p["w1"])
  >>> head = lambda p, h: h @ p["w2"]
  >>> clf = models.from_functions(lambda p, x: head(p, hidden(p, x)), p, input_shape=(2,),
  ...                             num_classes=2, splits={"hidden": (hidden, head)})
  >>> layer_conductance(clf, jnp.array([[1.0, 1.0]]), layer="hidden", target=1).tolist()
  [[-1.0, 2.0]]

Dhamdhere, Yan and Sundararajan, "How important is a neuron?" (ICLR 2019).
""")
neuron_conductance = _layer_method(layer_lib.neuron_conductance)
layer_gradient_x_activation = _layer_method(layer_lib.layer_gradient_x_activation)
layer_integrated_gradients = _layer_method(layer_lib.layer_integrated_gradients)
grad_cam = _layer_method(layer_lib.grad_cam)
second_order_attribution = _layer_method(second_order_lib.second_order_attribution)
