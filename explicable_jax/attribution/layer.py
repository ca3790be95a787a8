"""Layer attributions of a batch: conductance, Grad-CAM, gradient x activation.

Every method takes the model cut in two at a layer, ``features_fn`` (batch of
inputs ``(N, ...)`` -> activations ``(N, *layer)``) and ``head_fn``
(activations -> class scores ``(N, C)``), as returned by a classifier's
``clf.split(layer)`` (:class:`explicable_jax.models.Classifier`), and a ``target``: a class index, one
index per example, or ``"predicted"`` (the model's prediction at the input).
The score differentiated is ``head_fn``'s output for the target class
(logits for the zoo's models, as in Wu et al.'s code; wrap ``head_fn`` in a
softmax for probabilities). Examples must not interact inside the model
(evaluation-mode batch norm), so one gradient of the summed target scores
gives every example's own gradient. Captum's tuples work too: ``x`` a
tuple of inputs, and a layer whose ``features_fn`` returns a tuple.

Jit at the outermost boundary, e.g.::

    features_fn, head_fn = clf.split("layer3.2")
    conductance = jax.jit(lambda x: layer_conductance(
        features_fn, head_fn, x, target="predicted", n_steps=10))

One module, not a package (over 500 lines): the conductance family, layer
integrated gradients, Grad-CAM and gradient x activation share one setup (the
split model, target, baselines: ``_setup``) and one path integral (the chunked
sum), and conductance is defined through layer integrated gradients; split
apart, each piece would import the others' private helpers.
"""
from __future__ import annotations

import functools
import warnings

from collections.abc import Callable
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _jaxpr, _validation
from explicable_jax.attribution import _common
from explicable_jax import _class_index

__all__ = [
    "grad_cam", "head_gradient_is_constant", "layer_conductance", "layer_gradient_x_activation",
    "layer_integrated_gradients", "neuron_conductance", "per_feature_map", "upsample",
]

BatchFn = Callable[[jax.Array], jax.Array]

# Gradient weights (left end, right end) of each step's rule; the midpoint
# rule evaluates its gradient at separate points.
_STEP_RULES = {
    "riemann_left": (1.0, 0.0),
    "riemann_right": (0.0, 1.0),
    "riemann_trapezoid": (0.5, 0.5),
    "riemann_middle": (0.0, 0.0),
    "gausslegendre": (1.0, 0.0),
}


_NO_BASELINE = object()


def _setup(features_fn, head_fn, x, target, baselines=_NO_BASELINE, *,
           integer_inputs: bool = True):
  """Validates the pair and the batch.

  Returns ``(x, target (N,), layer, activations)``, plus
  ``(baseline, baseline_activations)`` when ``baselines`` is passed.
  ``layer`` is the activations' ``ShapeDtypeStruct``; ``activations()`` is
  ``features_fn(x)`` and ``baseline_activations()`` is ``features_fn(x')``.
  Both come from one forward pass (of ``[x; x']`` when there is a baseline),
  traced at most once however often they are called, so that
  ``target="predicted"``, the method and its delta share it. Integer inputs
  (token ids) are accepted unless ``integer_inputs=False`` (methods that
  interpolate or differentiate the input itself).
  """
  for name, fn in (("features_fn", features_fn), ("head_fn", head_fn)):
    if not callable(fn):
      raise TypeError(f"{name} must be a function of a batch; got {type(fn).__name__}.")
  x = _common.check_input("x", x, min_rank=1, integer_ok=integer_inputs)
  layer = jax.eval_shape(features_fn, x)
  logits = jax.eval_shape(head_fn, layer)
  if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
    raise ValueError(
        f"head_fn(features_fn(x)) must return class scores of shape "
        f"({x.shape[0]}, classes) for a batch of {x.shape[0]}; got shape "
        f"{tuple(logits.shape)}.")
  with_baseline = baselines is not _NO_BASELINE
  baseline = _common.resolve_baselines(baselines, x) if with_baseline else None
  memo: list[jax.Array] = []

  def both():
    if not memo:
      memo.append(features_fn(jnp.concatenate([x, baseline]) if with_baseline else x))
    return memo[0]

  n = x.shape[0]
  activations = lambda: jax.tree.map(lambda a: a[:n], both())
  t = _common.resolve_target(target, logits.shape, lambda: head_fn(activations()))
  if not with_baseline:
    return x, t, layer, activations
  return x, t, layer, activations, baseline, lambda: jax.tree.map(lambda a: a[n:], both())


def _accepts_tuples(*, input_shaped_output: bool = False, tuple_layers: bool = True):
  """Captum's tuples for a ``(features_fn, head_fn, x, ...)`` core: ``x`` a
  tuple of inputs (raveled per example, :func:`_common.accepts_tuple_inputs`)
  and, with ``tuple_layers``, a layer whose ``features_fn`` returns a tuple
  of arrays (raveled per example for the core, the attributions given back
  as a tuple, one per array)."""
  with_inputs = _common.accepts_tuple_inputs(
      x_index=2, fn_index=0, batched=True, input_shaped_output=input_shaped_output)

  def decorate(core):
    core_inputs = with_inputs(core)

    @functools.wraps(core)
    def wrapped(features_fn, head_fn, x, **kwargs):
      if not callable(features_fn):
        raise TypeError(
            f"features_fn must be a function of a batch; got {type(features_fn).__name__}.")
      x = tuple(x) if _common.is_multi(x) else x
      layer = _check_composition(features_fn, head_fn, x)
      if not _common.is_multi(layer):
        return core_inputs(features_fn, head_fn, x, **kwargs)
      if not tuple_layers:
        raise ValueError(
            f"{core.__name__} needs a layer with one activation array; features_fn "
            f"returns a tuple of {len(layer)}.")
      unravel = _common.unraveller(layer, batched=True)
      flat_features = lambda v: _common.ravel_inputs(
          "activations", features_fn(v), batched=True)[0]
      flat_head = lambda h: head_fn(unravel(h))
      out = core_inputs(flat_features, flat_head, x, **kwargs)
      if isinstance(out, tuple):  # (attributions, delta)
        return (unravel(out[0]),) + tuple(out[1:])
      return unravel(out)
    return wrapped
  return decorate


def _shapes(tree) -> str:
  return ", ".join(str(tuple(l.shape)) for l in jax.tree.leaves(tree))


def _check_composition(features_fn, head_fn, x):
  """The layer's abstract activation, after checking that ``head_fn(
  features_fn(x))`` gives ``(N, classes)`` scores; a failure names both
  functions and the shapes, since swapped arguments are the usual cause."""
  if not callable(head_fn):
    raise TypeError(f"head_fn must be a function of a batch; got {type(head_fn).__name__}.")
  try:
    layer = jax.eval_shape(features_fn, x)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"features_fn cannot take x of shape {_shapes(x)}: {str(e).splitlines()[0]} "
        "(features_fn comes first, head_fn second, as clf.split(layer) returns them).") from e
  try:
    out = jax.eval_shape(head_fn, layer)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"head_fn cannot take features_fn's output of shape {_shapes(layer)}: "
        f"{str(e).splitlines()[0]} (features_fn comes first, head_fn second, as "
        "clf.split(layer) returns them).") from e
  leaves = jax.tree.leaves(out)
  n = jax.tree.leaves(x)[0].shape[0] if jax.tree.leaves(x) and jax.tree.leaves(x)[0].ndim else None
  if len(leaves) != 1 or leaves[0].ndim != 2 or (n is not None and leaves[0].shape[0] != n):
    raise ValueError(
        f"head_fn(features_fn(x)) must give (N, classes) scores for x's N={n} examples; got "
        f"{_shapes(out)} (features_fn comes first, head_fn second, as clf.split(layer) "
        "returns them).")
  return layer


def _score_gap(head_fn, a, a_ref, t):
  """``F(x) - F(x')`` per example from the layer's activations at both ends."""
  batch = a.shape[0]
  logits = head_fn(jnp.concatenate([a, a_ref]))
  scores = _class_index.entries(logits, jnp.concatenate([t, t]))
  return scores[:batch] - scores[batch:]


def _with_delta(attributions, gap_fn, with_delta):
  """``attributions``, or ``(attributions, sum - (F(x) - F(x')))`` where
  ``gap_fn()`` gives ``F(x) - F(x')``."""
  if not with_delta:
    return attributions
  total = attributions.reshape(attributions.shape[0], -1).sum(axis=1)
  return attributions, total - gap_fn()


def _check_local(multiply_by_inputs, return_convergence_delta) -> None:
  if not isinstance(multiply_by_inputs, bool):
    raise TypeError(f"multiply_by_inputs must be True or False; got {multiply_by_inputs!r}.")
  if not multiply_by_inputs and return_convergence_delta:
    raise ValueError(
        "return_convergence_delta needs multiply_by_inputs=True: without the (x - x') "
        "factor the attributions do not sum to F(x) - F(x').")


def _steps_per_chunk(internal_batch_size, batch: int, steps: int) -> int:
  """Path steps per forward pass for Captum's ``internal_batch_size`` (rows =
  examples x steps); all ``steps`` when unset, at least one."""
  if internal_batch_size is None:
    return steps
  _validation.check_positive("internal_batch_size", internal_batch_size, integer=True)
  return max(1, min(steps, int(internal_batch_size) // batch))


def _layer_grad(head_fn, a, t):
  """Per-example gradient of the target score with respect to the layer."""
  return jax.grad(lambda h: _common.target_score(head_fn(h), t))(a)


def head_gradient_is_constant(head_fn: BatchFn, activations: jax.ShapeDtypeStruct,
                              target: ArrayLike) -> bool:
  """True when ``d head_fn(a)[target] / da`` does not depend on ``a``.

  This holds for an affine head (global average pooling and a dense layer,
  the head after the last residual block of the zoo's ResNets); then the
  layer conductance telescopes exactly and needs only the path's two end
  points. Decided from the gradient's jaxpr, so it never guesses "constant"
  for a head that is not.
  """
  target = jnp.asarray(target)
  if not isinstance(activations, jax.ShapeDtypeStruct):
    if not hasattr(activations, "shape"):
      raise TypeError(f"activations must be the layer's activations or their shape and dtype "
                      f"(jax.ShapeDtypeStruct); got {type(activations).__name__}.")
    activations = jax.ShapeDtypeStruct(np.shape(activations), jnp.result_type(activations))
  if target.ndim == 0:  # one class for every example
    target = jnp.full((activations.shape[0],), target)
  out = jax.eval_shape(head_fn, activations)
  if len(out.shape) == 2 and not isinstance(target, jax.core.Tracer):
    # the head's classes: an index beyond them would be clamped
    _validation.check_labels("target", np.asarray(target), int(out.shape[1]))
  closed = jax.make_jaxpr(lambda h: _layer_grad(head_fn, h, target))(activations)
  return not any(_jaxpr.dependent_outputs(closed.jaxpr, [True] * len(closed.jaxpr.invars)))


@conventions.boundary(x="batch", baselines="baseline")
@_accepts_tuples()
def layer_conductance(features_fn: BatchFn, head_fn: BatchFn, x: _common.InputsLike, *,
                      target: _common.Target, baselines: _common.Baselines = None,
                      n_steps: int = 10,
                      method: str = "riemann_right",
                      internal_batch_size: int | None = None,
                      return_convergence_delta: bool = False,
                      shortcut_affine_head: bool = True) -> jax.Array | tuple[jax.Array, jax.Array]:
  """Conductance of every neuron of a layer (Dhamdhere, Yan and Sundararajan,
  ICLR 2019), in the fast form of Shrikumar, Su and Kundaje (2018).

  The conductance of neuron ``j`` with activation ``a_j`` is the flow of the
  score ``F`` through it along the input path ``x_alpha = x' + alpha (x - x')``:

  .. math::

     \\mathrm{Cond}_j(x) = \\int_0^1 \\frac{\\partial F}{\\partial a_j}(x_\\alpha)
        \\frac{d a_j(x_\\alpha)}{d\\alpha}\\,d\\alpha
     \\approx \\sum_{k=1}^{n} \\frac{\\partial F}{\\partial a_j}(x_{\\beta_k})
        \\,\\big(a_j(x_{\\alpha_k}) - a_j(x_{\\alpha_{k-1}})\\big)

  and the conductances of a layer sum to ``F(x) - F(x')`` (completeness;
  equation 3 of Wu, Michel and Briot, 2019), up to the discretisation error
  returned as the convergence delta. The ``n_steps + 1`` nodes ``alpha_k`` and
  where the gradient is taken (``beta_k``) depend on ``method``:

  * ``riemann_right`` (default): nodes ``k/n``, gradient at the right end of
    each step, ``beta_k = alpha_k``. This is Wu et al.'s computation (their
    ``integratedGrad`` with n = 10, zero baseline).
  * ``riemann_left``: nodes ``k/n``, gradient at the left end. Identical to
    Captum's ``LayerConductance(method="riemann_trapezoid")``, whose ``n + 1``
    trapezoid nodes are ``k/n`` and whose gradient is always at the left end.
  * ``riemann_trapezoid``: nodes ``k/n``, mean of the two ends' gradients.
  * ``riemann_middle``: nodes ``k/n``, gradient at the step's midpoint (``n``
    more forward passes).
  * ``gausslegendre``: Captum's default, reproduced exactly: the nodes are
    the ``n + 1`` Gauss-Legendre nodes in ``(0, 1)``, gradient at the left
    end. The path then starts and stops short of ``x'`` and ``x``, so the
    delta does not vanish as ``n`` grows as fast as with the Riemann nodes.

  Its parameters are Captum's, under Captum's names (``LayerConductance.attribute``), so a
  Captum call translates name for name; every one after the inputs is keyword-only with Captum's
  default, and a config object would break that correspondence.

  Args:
    features_fn: batch -> layer activations.
    head_fn: layer activations -> class scores ``(N, C)``.
    x: batch of inputs ``(N, ...)``.
    target: class index, ``(N,)`` class indices, or ``"predicted"``.
    baselines: ``x'``: ``None`` (zeros), a scalar, or an array broadcasting
      to ``x``.
    n_steps: number of steps ``n``.
    method: see above.
    internal_batch_size: at most this many rows (examples x steps) per
      forward pass, as in Captum; the chunks of steps run one after another.
      ``None``: all steps in one pass.
    return_convergence_delta: also return, per example,
      ``sum_j Cond_j - (F(x) - F(x'))``.
    shortcut_affine_head: when the head's gradient does not depend on the
      activation (an affine head: average pooling and a dense layer, i.e. the
      last residual block, Wu et al.'s layer; see
      :func:`head_gradient_is_constant`), every rule's sum telescopes to
      ``dF/da * (a(x_{alpha_n}) - a(x_{alpha_0}))``: evaluate only those two
      points, ``(n + 1) / 2`` times fewer forward passes, same result up to
      float rounding. ``False`` forces the step-by-step computation.

  Returns:
    Conductances of shape ``(N, *layer)``, and the delta ``(N,)`` if asked.
    :func:`per_feature_map` reduces them to one value per channel.

  Example:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # 3 units -> 2 classes
    >>> x = jnp.array([[1.0, 1.0, 2.0]])
    >>> c = layer_conductance(lambda x: x, lambda a: a @ w, x, target=0)
    >>> c.round(4).tolist()  # a linear head: a * w[:, 0], summing to the class-0 score
    [[1.0, 0.0, 6.0]]
  """
  x, t, layer, activations, baseline, baseline_activations = _setup(
      features_fn, head_fn, x, target, baselines, integer_inputs=False)
  x = cast(jax.Array, x)  # the checked batch
  _validation.check_choice("method", method, _common.METHODS)
  _validation.check_positive("n_steps", n_steps, integer=True)
  n, batch = int(n_steps), x.shape[0]
  if method == "gausslegendre":
    nodes = _common.integration_points("gausslegendre", n + 1)[0]
  else:
    nodes = np.linspace(0.0, 1.0, n + 1)
  # Riemann paths run from x' to x, so their end activations are f(x') and
  # f(x), the forward pass that target="predicted" and the delta need anyway.
  exact_ends = nodes[0] == 0.0 and nodes[-1] == 1.0
  ends_needed = isinstance(target, str) or return_convergence_delta

  gap = lambda: _score_gap(head_fn, activations(), baseline_activations(), t)

  if shortcut_affine_head and head_gradient_is_constant(head_fn, layer, t):
    if exact_ends:
      a_first, a_last = baseline_activations(), activations()
    else:
      end_alphas = jnp.asarray(nodes[[0, -1]], x.dtype).reshape((2,) + (1,) * x.ndim)
      xs = _common.interpolate(baseline[None], x[None], end_alphas)
      a = features_fn(xs.reshape((2 * batch,) + x.shape[1:]))
      a_first, a_last = a[:batch], a[batch:]
    conductance = _layer_grad(head_fn, a_last, t) * (a_last - a_first)
    return _with_delta(conductance, gap, return_convergence_delta)
  w_left, w_right = _STEP_RULES[method]
  node_grads = w_left != 0.0 or w_right != 0.0
  chunk = _steps_per_chunk(internal_batch_size, batch, n)

  def evaluate(alphas, with_grads):
    """Activations (and target gradients) at ``len(alphas)`` path points."""
    c = alphas.shape[0]
    shape = (c,) + (1,) * x.ndim
    xs = _common.interpolate(baseline[None], x[None], alphas.reshape(shape))
    a = features_fn(xs.reshape((c * batch,) + x.shape[1:]))
    g = _layer_grad(head_fn, a, jnp.tile(t, c)) if with_grads else None
    unflat = lambda v: v.reshape((c, batch) + v.shape[1:])
    return unflat(a), (unflat(g) if with_grads else None)

  ends = _common.pad_to_chunks(nodes[1:], chunk)
  mids = _common.pad_to_chunks((nodes[1:] + nodes[:-1]) / 2, chunk, fill=nodes[-1])
  mask = _common.pad_to_chunks(np.ones(n), chunk, fill=0.0)

  if exact_ends and ends_needed:
    a0 = baseline_activations()
  else:
    a0 = evaluate(jnp.asarray(nodes[:1]), False)[0][0]
  g0 = _layer_grad(head_fn, a0, t) if w_left != 0.0 else jnp.zeros_like(a0)

  def step(carry, inputs):
    a_prev, g_prev, total = carry
    alphas, midpoints, m = inputs
    a, g = evaluate(alphas, node_grads)
    diff = a - jnp.concatenate([a_prev[None], a[:-1]])
    if method == "riemann_middle":
      _, slope = evaluate(midpoints, True)
      g_last = g_prev
    else:
      g_left = jnp.concatenate([g_prev[None], g[:-1]])
      slope = w_left * g_left + w_right * g
      g_last = g[-1]
    total = total + jnp.tensordot(m.astype(a.dtype), slope * diff, axes=1)
    return (a[-1], g_last, total), None

  carry = (a0, g0, jnp.zeros_like(a0))
  inputs = (jnp.asarray(ends), jnp.asarray(mids), jnp.asarray(mask))
  (_, _, conductance), _ = _common.scan_chunks(step, carry, inputs)
  return _with_delta(conductance, gap, return_convergence_delta)


@conventions.boundary(attributions="maps")
def per_feature_map(attributions: ArrayLike, *, reduce: str = "sum") -> jax.Array:
  """One value per channel: ``(N, H, W, C) -> (N, C)``.

  Sums (``reduce="sum"``) or averages (``"mean"``) over every axis between
  the batch and the channel axis. Wu, Michel and Briot's error detector uses
  the per-feature-map conductance of the last residual block; their code
  averages over positions (``np.mean(cond, axis=(2, 3))``), which is the sum
  divided by ``H * W``.
  """
  attributions = jnp.asarray(attributions)
  _validation.check_choice("reduce", reduce, ("sum", "mean"))
  attributions = jnp.asarray(attributions)
  if attributions.ndim < 3:
    raise ValueError(
        "attributions must have a batch, at least one position and a channel "
        f"axis, e.g. (N, H, W, C); got shape {tuple(attributions.shape)}.")
  shape = attributions.shape
  if attributions.ndim == 4 and shape[1] != shape[2] == shape[3]:
    warnings.warn(
        f"per_feature_map: attributions of shape {tuple(shape)} are read as (N, H, W, C) = "
        f"{shape[1]}x{shape[2]} positions of {shape[3]} channels; square {shape[2]}x{shape[3]} "
        f"maps of {shape[1]} channels are channel-first (N, C, H, W): pass "
        "jnp.moveaxis(attributions, 1, -1).", UserWarning, stacklevel=_validation.user_stacklevel())
  axes = tuple(range(1, attributions.ndim - 1))
  return attributions.sum(axes) if reduce == "sum" else attributions.mean(axes)


@conventions.boundary(x="batch", baselines="baseline")
@_accepts_tuples(input_shaped_output=True, tuple_layers=False)
def neuron_conductance(features_fn: BatchFn, head_fn: BatchFn, x: _common.InputsLike, *,
                       neuron_index: int | tuple[int, ...], target: _common.Target,
                       baselines: _common.Baselines = None, n_steps: int = 50,
                       method: str = "riemann_trapezoid",
                       internal_batch_size: int | None = None,
                       multiply_by_inputs: bool = True) -> jax.Array:
  """Conductance of one hidden neuron ``y`` to each input feature
  (Dhamdhere, Yan and Sundararajan, ICLR 2019; Captum's ``NeuronConductance``).

  .. math::

     \\mathrm{Cond}^y_i(x) = (x_i - x'_i) \\int_0^1
        \\frac{\\partial F}{\\partial y}(x_\\alpha)
        \\frac{\\partial y}{\\partial x_i}(x_\\alpha)\\,d\\alpha

  Summed over the inputs ``i`` it is the layer conductance of ``y``.

  Its parameters are Captum's, under Captum's names (``NeuronConductance.attribute``), so a
  Captum call translates name for name; every one after the inputs is keyword-only with Captum's
  default, and a config object would break that correspondence.

  Args:
    features_fn, head_fn, x, target, baselines: as in :func:`layer_conductance`.
    neuron_index: index of the neuron in one example's activation, e.g.
      ``(i, j, c)`` for a ``(H, W, C)`` layer, or an int for a flat layer.
    n_steps, method: quadrature (:func:`integration_points`); Captum's
      default ``riemann_trapezoid`` with 50 steps.
    internal_batch_size: at most this many rows (examples x steps) per pass.
    multiply_by_inputs: ``False`` returns the path integral without the
      ``(x - x')`` factor (Captum's option of the same name).

  Returns:
    Attributions of ``x``'s shape.
  """
  _check_local(multiply_by_inputs, False)
  x, t, layer, _ = _setup(features_fn, head_fn, x, target, integer_inputs=False)
  x = cast(jax.Array, x)  # the checked batch
  layer_shape = layer.shape
  index = (neuron_index,) if isinstance(neuron_index, (int, np.integer)) else tuple(neuron_index)
  if len(index) != len(layer_shape) - 1 or any(
      not 0 <= int(i) < s for i, s in zip(index, layer_shape[1:])):
    raise ValueError(
        f"neuron_index must index one example's activation of shape "
        f"{tuple(layer_shape[1:])}; got {neuron_index!r}.")
  index = (slice(None),) + tuple(int(i) for i in index)  # type: ignore[assignment]
  baseline = _common.resolve_baselines(baselines, x)
  alphas, weights = _common.integration_points(method, n_steps)
  batch = x.shape[0]
  chunk = _steps_per_chunk(internal_batch_size, batch, len(alphas))

  def chunk_sum(a, w):
    c = a.shape[0]
    xs = _common.interpolate(baseline[None], x[None], a.reshape((c,) + (1,) * x.ndim))
    acts, pullback = jax.vjp(features_fn, xs.reshape((c * batch,) + x.shape[1:]))
    g = _layer_grad(head_fn, acts, jnp.tile(t, c))
    cotangent = jnp.zeros_like(acts).at[index].set(g[index])
    (dx,) = pullback(cotangent)
    dx = dx.reshape((c, batch) + x.shape[1:])
    return jnp.tensordot(w.astype(dx.dtype), dx, axes=1)

  avg = _common.sum_over_chunks(chunk_sum, alphas, weights, chunk)
  return (x - baseline) * avg if multiply_by_inputs else avg


@conventions.boundary(x="batch")
@_accepts_tuples()
def layer_gradient_x_activation(features_fn: BatchFn, head_fn: BatchFn,
                                x: _common.InputsLike, *, target: _common.Target) -> jax.Array:
  """Gradient times activation at a layer: ``a_j * dF/da_j``, shape ``(N, *layer)``.

  The first-order Taylor term of the score in the layer's activation (Wang
  and Vasconcelos use it as the first-order attribution of deliberative
  explanations; Captum's ``LayerGradientXActivation``).
  """
  x, t, _, activations = _setup(features_fn, head_fn, x, target)
  a = activations()
  return a * _layer_grad(head_fn, a, t)


@conventions.boundary(x="batch", baselines="baseline")
@_accepts_tuples()
def layer_integrated_gradients(features_fn: BatchFn, head_fn: BatchFn,
                               x: _common.InputsLike, *, target: _common.Target,
                               baselines: _common.Baselines = None,
                               n_steps: int = 50, method: str = "gausslegendre",
                               internal_batch_size: int | None = None,
                               return_convergence_delta: bool = False,
                               multiply_by_inputs: bool = True) -> jax.Array | tuple[jax.Array,
                               jax.Array]:
  """Integrated gradients of the head along a straight path in layer space
  (Captum's ``LayerIntegratedGradients``).

  .. math::

     \\mathrm{LIG}_j(x) = (a_j - a'_j) \\int_0^1
        \\frac{\\partial F_{\\mathrm{head}}(a' + \\alpha (a - a'))}{\\partial a_j}\\,d\\alpha,
     \\quad a = f(x),\\ a' = f(x')

  Completeness: the attributions sum to ``F(x) - F(x')``.

  Args and returns as in :func:`layer_conductance`; ``method`` is a
  quadrature rule (:func:`integration_points`); ``multiply_by_inputs=False``
  returns the path-averaged gradient without the ``(a - a')`` factor
  (Captum's option of the same name; no convergence delta then).

  Its parameters are Captum's, under Captum's names (``LayerIntegratedGradients.attribute``), so
  a Captum call translates name for name; every one after the inputs is keyword-only with
  Captum's default, and a config object would break that correspondence.
  """
  _check_local(multiply_by_inputs, return_convergence_delta)
  x, t, layer, activations, _, baseline_activations = _setup(
      features_fn, head_fn, x, target, baselines)
  x = cast(jax.Array, x)  # the checked batch
  batch = x.shape[0]
  a, a_ref = activations(), baseline_activations()
  alphas, weights = _common.integration_points(method, n_steps)
  chunk = _steps_per_chunk(internal_batch_size, batch, len(alphas))

  def chunk_sum(al, w):
    c = al.shape[0]
    hs = _common.interpolate(a_ref[None], a[None], al.reshape((c,) + (1,) * a.ndim))
    g = _layer_grad(head_fn, hs.reshape((c * batch,) + a.shape[1:]), jnp.tile(t, c))
    return jnp.tensordot(w.astype(g.dtype), g.reshape(hs.shape), axes=1)

  if head_gradient_is_constant(head_fn, layer, t):
    # An affine head: the integrand is constant and every rule's weights sum to 1.
    avg = _layer_grad(head_fn, a, t)
  else:
    avg = _common.sum_over_chunks(chunk_sum, alphas, weights, chunk)
  if not multiply_by_inputs:
    return avg
  return _with_delta((a - a_ref) * avg, lambda: _score_gap(head_fn, a, a_ref, t),
                     return_convergence_delta)


@_common.accepts_tuple_inputs(x_index=2, fn_index=0, batched=True,
                              input_shaped_output=False)
@conventions.boundary(x="batch")
def grad_cam(features_fn: BatchFn, head_fn: BatchFn, x: _common.InputsLike, *,
             target: _common.Target,
             relu: bool = True, attr_dim_summation: bool = True) -> jax.Array:
  """Grad-CAM (Selvaraju et al., ICCV 2017) at a convolutional layer.

  .. math::

     L^c = \\mathrm{ReLU}\\Big(\\sum_k w^c_k A^k\\Big),\\quad
     w^c_k = \\frac{1}{HW}\\sum_{i,j} \\frac{\\partial y^c}{\\partial A^k_{ij}}

  Same as Captum's ``LayerGradCam`` (which also averages the gradients over
  positions). Use :func:`upsample` to overlay the map on the input.

  Args:
    features_fn, head_fn, x, target: as in :func:`layer_conductance`; the
      layer must be ``(N, H, W, C)``.
    relu: keep only the positive evidence (the paper's map).
    attr_dim_summation: sum the channels' maps ``w^c_k A^k`` (Captum's
      option of the same name); ``False`` returns them per channel,
      ``(N, H, W, C)``, ReLU (if ``relu``) applied to each as Captum does.

  Returns:
    Maps of shape ``(N, H, W)`` (``(N, H, W, C)`` without the summation).
  """
  x, t, layer, activations = _setup(features_fn, head_fn, x, target)
  for s in (layer if _common.is_multi(layer) else (layer,)):
    if len(s.shape) < 2:
      raise ValueError(
          "grad_cam needs a layer with a batch and a channel axis, (N, [H, W,] C); "
          f"features_fn returns shape {tuple(s.shape)}.")
    if not _common.is_multi(x) and np.ndim(cast(Any, x)) == 4 and len(s.shape) != 4:
      # Grad-CAM of images needs spatial maps; a dense layer gives one number per
      # example (Captum's non-convolutional case, feature vectors, stays allowed).
      raise ValueError(
          f"{_common.layer_label(features_fn)} must have spatial maps (N, H, W, C) for "
          "Grad-CAM of images; its "
          f"activation has shape {tuple(s.shape)} for a batch of shape "
          f"{tuple(np.shape(cast(Any, x)))}: "
          "pick a convolutional layer (clf.layers lists them).")
  a = activations()
  grads = _layer_grad(head_fn, a, t)

  def cam(a, g):
    spatial = tuple(range(1, a.ndim - 1))
    weights = g.mean(axis=spatial, keepdims=True) if spatial else g
    maps = a * weights
    maps = maps.sum(-1) if attr_dim_summation else maps
    return jax.nn.relu(maps) if relu else maps
  return jax.tree.map(cam, a, grads)


@conventions.boundary(maps="maps")
def upsample(maps: ArrayLike, size: tuple[int, int], *,
             method: str = "bilinear") -> jax.Array:
  """Resizes ``(N, h, w)`` maps to ``(N, *size)`` with ``jax.image.resize``,
  for overlaying a layer attribution on its input image."""
  maps = jnp.asarray(maps)
  _validation.check_choice("method", method, ("nearest", "linear", "bilinear", "cubic",
                                              "bicubic", "lanczos3", "lanczos5"))
  maps = jnp.asarray(maps)
  _validation.check_rank("maps", maps.shape, (3,))
  size = _validation.check_size("size", size)
  return jax.image.resize(maps, (maps.shape[0], *size), method)
