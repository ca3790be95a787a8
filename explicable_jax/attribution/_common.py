"""Helpers shared by the attribution methods: quadrature rules, baselines,
targets and chunked evaluation along a path."""
from __future__ import annotations

import contextlib
import contextvars

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jax.typing import ArrayLike

from explicable_jax import _batching, _validation
from explicable_jax import _class_index

__all__ = [
    "Baselines", "InputsLike", "MAX_UNROLLED_CHUNKS", "METHODS", "PRECISIONS", "Target",
    "accepts_tuple_inputs", "at_precision",
    "check_choice_precision", "check_chunk", "check_input", "get_precision",
    "integration_points", "interpolate", "is_multi", "pad_to_chunks", "precision",
    "ravel_inputs", "ravel_like", "resolve_baselines", "resolve_target", "scan_chunks",
    "set_precision", "sum_over_chunks", "target_score", "unraveller", "weighted_sum_along_path",
]

# The argument types of the attribution methods (Captum's conventions).
InputsLike = ArrayLike | tuple[ArrayLike, ...]
"""A batch ``(N, ...)``, or a tuple of batches with the same ``N`` (Captum's tuple inputs)."""
Target = int | ArrayLike | str | None
"""The class scored per example: an int (every example), ``(N,)`` class indices,
``"predicted"`` (the model's argmax), or ``None`` for a model with one output."""
Baselines = ArrayLike | tuple[ArrayLike, ...] | None
"""``None`` (zeros), a scalar, one example's shape or one per example
(:func:`resolve_baselines`); a tuple for tuple inputs."""

METHODS = ("riemann_left", "riemann_right", "riemann_middle",
           "riemann_trapezoid", "gausslegendre")


MAX_STEPS = {False: 1_000_000, True: 2_000}
"""The most quadrature nodes: ``MAX_STEPS[method == "gausslegendre"]``."""


def integration_points(method: str, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """Nodes ``alpha_k`` in ``[0, 1]`` and weights ``w_k`` of a quadrature rule.

  .. math:: \\int_0^1 f(\\alpha)\\,d\\alpha \\approx \\sum_k w_k f(\\alpha_k)

  The same rules, with the same names, as Captum's
  ``approximation_methods``: ``riemann_left`` (``k/n``, k = 0..n-1),
  ``riemann_right`` (k = 1..n), ``riemann_middle`` (``(k + 1/2)/n``),
  ``riemann_trapezoid`` (``k/(n-1)``, k = 0..n-1, end weights halved) and
  ``gausslegendre`` (numpy's Gauss-Legendre nodes mapped to ``[0, 1]``).
  One deliberate difference: Captum's ``riemann_trapezoid`` weights are
  ``1/n`` (halved at the ends) on nodes spaced ``1/(n-1)``, so they sum to
  ``(n-1)/n`` and its attributions come out scaled by that factor; ours are
  the textbook trapezoid weights ``1/(n-1)``, which sum to 1.

  Returns:
    ``(alphas, weights)``, two float64 arrays of length ``n_steps``.
  """
  _validation.check_choice("method", method, METHODS)
  _validation.check_positive("n_steps", n_steps, integer=True)
  n = int(n_steps)
  limit = MAX_STEPS[method == "gausslegendre"]
  if n > limit:
    raise ValueError(
        f"n_steps must be at most {limit} for method {method!r} (its nodes "
        f"{'come from an n x n eigenproblem' if limit < MAX_STEPS[False] else 'are held in memory'}"
        f"; Captum's default is 50); got {n}.")
  if method == "gausslegendre":
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return 0.5 * (nodes + 1.0), 0.5 * weights
  if method == "riemann_trapezoid":
    if n < 2:
      raise ValueError(
          f"n_steps must be at least 2 for method 'riemann_trapezoid'; got {n}.")
    weights = np.full(n, 1.0 / (n - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0.0, 1.0, n), weights
  offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
  return (np.arange(n) + offset) / n, np.full(n, 1.0 / n)


def resolve_baselines(baselines: Any, x: Any, *, batched: bool = False) -> jax.Array:
  """``baselines`` as an array of ``x``'s shape and dtype: the one broadcasting
  rule of every baseline the library takes.

  ``None`` means zeros (Captum's default); a scalar fills; an array must
  broadcast to ``x.shape`` (one baseline per example, or one shared by all).

  Args:
    baselines: ``None``, a scalar or an array broadcastable to ``x.shape``.
    x: the input (an array, or anything with ``shape`` and ``dtype``, e.g. a
      ``jax.ShapeDtypeStruct``).
    batched: ``x``'s first axis is examples; only the error message uses it
      (it then names the shared and per-example shapes).

  Returns:
    ``(*x.shape)`` in ``x``'s dtype.
  """
  if baselines is None:
    return jnp.zeros(x.shape, x.dtype)
  b = jnp.asarray(baselines, dtype=x.dtype)
  try:
    return jnp.broadcast_to(b, x.shape)
  except ValueError:
    shapes = (f"a scalar, one example of shape {tuple(x.shape[1:])} or one per example "
              f"{tuple(x.shape)}" if batched else
              f"a scalar or broadcast to the input's shape {tuple(x.shape)}")
    raise ValueError(f"baselines must be {shapes}; got shape {tuple(b.shape)}.") from None


def check_input(name: str, x: Any, *, min_rank: int, integer_ok: bool = False) -> jax.Array:
  """``x`` as a floating array (or an integer one, with ``integer_ok``) of
  rank at least ``min_rank``."""
  try:
    arr = jnp.asarray(x)
  except TypeError:
    raise TypeError(
        f"{name} must be an array; got {type(x).__name__}.") from None
  if arr.ndim < min_rank:
    what = "a batch (leading axis = examples)" if min_rank else "an array"
    raise ValueError(
        f"{name} must be {what} of rank >= {min_rank}; got shape {tuple(arr.shape)}.")
  if integer_ok and jnp.issubdtype(arr.dtype, jnp.integer):
    return arr
  if not jnp.issubdtype(arr.dtype, jnp.floating):
    raise ValueError(
        f"{name} must hold floating-point values (attributions differentiate "
        f"with respect to it); got dtype {arr.dtype}.")
  return arr


def resolve_target(target: Any, logits_shape: tuple[int, ...],
                   logits_fn: Callable[[], jax.Array]) -> jax.Array:
  """Per-example class indices ``(N,)`` from ``target``.

  ``target`` is an int (the same class for every example), an integer array
  of shape ``(N,)``, or ``"predicted"`` (the argmax of the model's output at
  the input, computed with ``logits_fn``).
  """
  n, num_classes = logits_shape[0], logits_shape[-1]
  if isinstance(target, str):
    _validation.check_choice("target", target, ("predicted",))
    return jnp.argmax(jax.lax.stop_gradient(logits_fn()), axis=-1)
  if target is None:
    raise ValueError(
        "target must be a class index, an array of N class indices or "
        "'predicted'; got None.")
  if not isinstance(target, jax.core.Tracer) and not isinstance(target, (list, tuple)) \
      and np.asarray(target).dtype.kind in "USO":
    raise ValueError(
        "target must be one class index, an array of N class indices or 'predicted'; got "
        f"an array of dtype {np.asarray(target).dtype} (class names? map them to indices).")
  if isinstance(target, (list, tuple)) and any(isinstance(v, str) for v in target):
    raise ValueError(
        "target must be one class index, an array of N class indices or 'predicted' for "
        f"all; got a {type(target).__name__} mixing indices and names ({target!r}): pass "
        "integer indices (the predictions: batched.targets(clf, x, 'predicted')).")
  t = jnp.asarray(target)
  if not jnp.issubdtype(t.dtype, jnp.integer):
    raise ValueError(
        f"target must hold integer class indices; got dtype {t.dtype}.")
  if t.ndim == 0:
    t = jnp.full((n,), t)
  if t.shape != (n,):
    raise ValueError(
        f"target must be a scalar or have shape ({n},), one class per example; "
        f"got shape {tuple(t.shape)}.")
  _validation.check_labels("target", target, num_classes)
  return t


def target_score(logits: jax.Array, target: jax.Array) -> jax.Array:
  """``sum_n logits[n, target[n]]``: the gradient of this sum is each
  example's own target-score gradient, since examples do not interact."""
  return _class_index.entries(logits, target).sum()


def check_chunk(internal_batch_size: int | None, total: int) -> int:
  """Chunk length for ``total`` evaluations, ``total`` when unset."""
  if internal_batch_size is None:
    return total
  _validation.check_positive("internal_batch_size", internal_batch_size, integer=True)
  return int(min(internal_batch_size, total))


# Chunk loops up to this length are unrolled rather than run as a while loop:
# XLA:CPU runs the input gradient of a convolution 6-10x slower inside a
# while-loop body (it keeps the transposed kernel in "oi" layout there instead
# of copying it to "io"; benchmarks/README.md has the measurement).
MAX_UNROLLED_CHUNKS = 16


def scan_chunks(body: Callable, carry: Any, xs: Any) -> tuple[Any, Any]:
  """``lax.scan(body, carry, xs)``, unrolled when there are few chunks.

  Unrolled or not, each chunk's work feeds only the carry, so XLA's
  sequential schedule keeps one chunk's temporaries alive at a time.
  """
  n = jax.tree.leaves(xs)[0].shape[0]
  if n > MAX_UNROLLED_CHUNKS:
    return jax.lax.scan(body, carry, xs)
  ys = []
  for i in range(n):
    carry, y = body(carry, jax.tree.map(lambda v: v[i], xs))
    ys.append(y)
  if ys[0] is None:
    return carry, None
  return carry, jax.tree.map(lambda *v: jnp.stack(v), *ys)


def pad_to_chunks(values, chunk: int, fill=None) -> np.ndarray:
  """``values`` ``(n, ...)`` as numpy, padded to a whole number of chunks and
  reshaped to ``(n_chunks, chunk, ...)`` (:func:`explicable_jax._batching.
  pad_to_chunks`, the library's one padding rule). The padding repeats the
  last value (``fill=None``) or is ``fill``; callers give padded entries zero
  weight or drop their rows."""
  return _batching.pad_to_chunks(np.asarray(values), chunk, fill)


def sum_over_chunks(chunk_sum: Callable[[jax.Array, jax.Array], Any],
                    alphas: np.ndarray, weights: np.ndarray, chunk: int) -> Any:
  """``sum_k weights[k] * f(alphas[k])``, ``chunk`` nodes at a time.

  ``chunk_sum(alphas_c, weights_c)`` returns the weighted sum over one chunk
  (a pytree); the chunks are added up in :func:`scan_chunks`, so memory grows
  with ``chunk``, not with the number of nodes. Padding nodes (when ``chunk``
  does not divide it) repeat the last node with weight 0.
  """
  alphas = pad_to_chunks(alphas, chunk)
  weights = pad_to_chunks(np.asarray(weights, np.float64), chunk, fill=0.0)
  n_chunks = len(alphas)
  first = chunk_sum(jnp.asarray(alphas[0]), jnp.asarray(weights[0]))
  if n_chunks == 1:
    return first

  def body(acc, aw):
    return jax.tree.map(jnp.add, acc, chunk_sum(*aw)), None

  acc, _ = scan_chunks(body, first, (jnp.asarray(alphas[1:]), jnp.asarray(weights[1:])))
  return acc


def weighted_sum_along_path(fn: Callable[[jax.Array], Any], alphas: np.ndarray,
                            weights: np.ndarray, chunk: int) -> Any:
  """``sum_k weights[k] * fn(alphas[k])``, ``fn`` vmapped over each chunk.

  When the weights sum to 1 (every rule of :func:`integration_points`), the
  sum is taken as ``f_0 + sum_k w_k (f_k - f_0)`` with ``f_0`` the first
  node's value: the same number in exact arithmetic, but exact to the rule in
  float32 when ``f`` is constant along the path (a linear model), where the
  plain weighted sum is off by the float32 rounding of the weights (they add
  to 0.99999988 for 50 Gauss-Legendre nodes).
  """
  if abs(float(np.sum(weights)) - 1.0) > 1e-12:
    def chunk_sum(a, w):
      values = jax.vmap(fn)(a)
      return jax.tree.map(lambda v: jnp.tensordot(w.astype(v.dtype), v, axes=1), values)
    return sum_over_chunks(chunk_sum, alphas, weights, chunk)
  reference: list[jax.Array] = []

  def centred_chunk_sum(a, w):
    values = jax.vmap(fn)(a)
    if not reference:  # the first chunk, traced first: its first node
      reference.append(jax.tree.map(lambda v: v[0], values))
    return jax.tree.map(lambda v, r: jnp.tensordot(w.astype(v.dtype), v - r, axes=1),
                        values, reference[0])
  total = sum_over_chunks(centred_chunk_sum, alphas, weights, chunk)
  return jax.tree.map(jnp.add, reference[0], total)


def interpolate(baseline: jax.Array, x: jax.Array, alpha: jax.Array) -> jax.Array:
  """``baseline + alpha * (x - baseline)`` in ``x``'s dtype."""
  return baseline + alpha.astype(x.dtype) * (x - baseline)


# ---------------------------------------------------------------------------
# Tuple inputs (Captum's ``inputs=(x1, x2, ...)``): every method runs on one
# flat vector per example, so the cores are written once for arrays.

def layer_label(features_fn: Callable) -> str:
  """How a message names the layer ``features_fn`` cuts at: ``layer 'name'``
  for a split of a classifier (:meth:`~explicable_jax.models.Classifier.split`
  names its functions), ``the layer`` for a user's own function."""
  name = getattr(features_fn, "layer", None)
  return f"layer {name!r}" if isinstance(name, str) else "the layer"


def is_multi(x: Any) -> bool:
  """True for Captum-style multiple inputs: a tuple or list of arrays."""
  return isinstance(x, (tuple, list))


def _leaves(name: str, x, *, batched: bool) -> tuple:
  if not x:
    raise ValueError(f"{name} must hold at least one array; got an empty {type(x).__name__}.")
  leaves = []
  for i, a in enumerate(x):
    try:
      leaves.append(jnp.asarray(a))
    except TypeError:
      raise TypeError(
          f"{name}[{i}] must be an array; got {type(a).__name__}.") from None
  if batched:
    sizes = {a.shape[0] if a.ndim else None for a in leaves}
    if None in sizes or len(sizes) != 1:
      raise ValueError(
          f"every array of {name} must have the same leading (batch) axis; got shapes "
          f"{[tuple(a.shape) for a in leaves]}.")
  return tuple(leaves)


def ravel_inputs(name: str, x, *, batched: bool):
  """``(flat, unravel)`` for a tuple of inputs.

  One example (``batched=False``): ``flat`` is the 1-D concatenation of the
  raveled arrays. A batch: ``flat`` is ``(N, D)``, row ``n`` the
  concatenation of example ``n``'s arrays; ``unravel`` maps ``(M, D)`` rows
  back to a tuple of ``(M, ...)`` arrays (``M`` may differ from ``N``: a
  method's path points). Mixed dtypes are promoted for ``flat`` and cast
  back by ``unravel``.
  """
  leaves = _leaves(name, x, batched=batched)
  dtype = jnp.result_type(*leaves)
  if batched:
    n = leaves[0].shape[0]
    flat = jnp.concatenate([a.reshape(n, -1).astype(dtype) for a in leaves], axis=1)
  else:
    flat = jnp.concatenate([a.reshape(-1).astype(dtype) for a in leaves])
  return flat, unraveller(leaves, batched=batched)


def unraveller(structs, *, batched: bool) -> Callable:
  """The inverse of :func:`ravel_inputs` for arrays (or shape-dtype structs)
  like ``structs``: ``(M, D)`` rows (or one ``(D,)`` vector) back to a tuple."""
  lead = 1 if batched else 0
  shapes = [tuple(a.shape[lead:]) for a in structs]
  dtypes = [a.dtype for a in structs]
  bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

  def unravel(v):
    front = v.shape[:-1]
    return tuple(v[..., lo:hi].reshape(front + s).astype(d)
                 for lo, hi, s, d in zip(bounds[:-1], bounds[1:], shapes, dtypes))
  return unravel


def ravel_like(name: str, values, x: tuple, *, batched: bool):
  """``values`` (a scalar, ``None`` or one entry per input) raveled like
  :func:`ravel_inputs` does ``x``; each entry broadcasts to its input (or,
  batched, to one example of it)."""
  if values is None or not is_multi(values):
    if values is not None and jnp.ndim(values) != 0:
      raise ValueError(
          f"{name} for a tuple of {len(x)} inputs must be a scalar or a tuple of "
          f"{len(x)} entries; got an array of shape {tuple(jnp.shape(values))}.")
    return values
  if len(values) != len(x):
    raise ValueError(
        f"{name} must have one entry per input ({len(x)}); got {len(values)}.")
  full = []
  for i, (v, a) in enumerate(zip(values, x)):
    a = jnp.asarray(a)
    v = jnp.asarray(0.0 if v is None else v, jnp.result_type(a.dtype, jnp.float32))
    try:
      full.append(jnp.broadcast_to(v, a.shape) if not batched or v.ndim == a.ndim
                  else jnp.broadcast_to(v, a.shape[1:])[None].repeat(a.shape[0], 0))
    except ValueError:
      raise ValueError(
          f"{name}[{i}] must broadcast to input {i}'s shape {tuple(a.shape)}; got shape "
          f"{tuple(v.shape)}.") from None
  return ravel_inputs(name, tuple(full), batched=batched)[0]


PRECISIONS = ("highest", "high", "default", None)
"""Matmul and convolution precisions an attribution can run at (``None``: the
caller's setting, e.g. ``jax.default_matmul_precision`` or the backend's)."""

_PRECISION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "explicable_jax_attribution_precision", default="highest")


@contextlib.contextmanager
def precision(value: str | None):
  """Runs the attribution methods traced inside the block at ``value``.

  Default (outside any block) ``"highest"``: float32 products everywhere.
  On TPU the backend's default passes matmul inputs as bfloat16, and recent
  NVIDIA GPUs use TF32; both cost integrated gradients and conductance their
  completeness (the convergence delta grows from about 1e-6 to about 1e-2 of
  the score gap) and blur Hessian-vector products. Training keeps the
  backend's default (it is not an attribution). ``None`` leaves the
  caller's setting (``jax.default_matmul_precision``, the backend) alone.
  The value is read when a method is traced, so a jitted function keeps the
  precision it was traced with. Scoped (a ``contextvars`` variable): no
  global state, safe across threads.

  Example:
    >>> from explicable_jax import attribution
    >>> with attribution.precision("default"):
    ...   attribution.get_precision()
    'default'
    >>> attribution.get_precision()
    'highest'
  """
  check_choice_precision(value)
  token = _PRECISION.set(value)
  try:
    yield value
  finally:
    _PRECISION.reset(token)


def set_precision(precision: str | None) -> None:
  """Deprecated: use ``with attribution.precision(value):``. Sets the
  precision of the current context (what :func:`precision` scopes)."""
  import warnings
  warnings.warn("attribution.set_precision is deprecated: use `with "
                "attribution.precision(value): ...` (see CHANGELOG.md).", DeprecationWarning,
                stacklevel=_validation.user_stacklevel())
  check_choice_precision(precision)
  _PRECISION.set(precision)


def get_precision() -> str | None:
  """The attribution precision of the current context (``"highest"`` by
  default; see :func:`precision`)."""
  return _PRECISION.get()


def check_choice_precision(precision) -> None:
  from explicable_jax import _validation
  _validation.check_choice("precision", precision, PRECISIONS)


def at_precision(call):
  """``call()`` at the attribution precision of the current context: every
  attribution method (and any code that computes one, e.g. the deliberative
  maps) runs through this one place."""
  if not callable(call):
    raise TypeError(f"call must be a function of no arguments (at_precision(lambda: ...)); "
                    f"got {type(call).__name__}: to set the precision, use "
                    "`with attribution.precision('highest'):`.")
  value = _PRECISION.get()
  if value is None:
    return call()
  with jax.default_matmul_precision(value):
    return call()



def accepts_tuple_inputs(*, x_index: int, batched: bool, input_shaped_output: bool,
                         fn_index: int | None = None,
                         ravel_kwargs: tuple[str, ...] = ("baselines",)):
  """Lets a core written for one array take Captum's tuple of inputs.

  The argument at ``x_index`` (a tuple or list of arrays) becomes one flat
  vector per example (:func:`ravel_inputs`), the function at ``fn_index``
  (default: just before it; ``score_fn``, or ``features_fn`` at 0) gets the
  tuple back, the keyword options
  in ``ravel_kwargs`` (baselines, stdevs) are raveled the same way, and,
  when ``input_shaped_output``, the attributions come back as a tuple, one
  per input (a delta, when returned, is unchanged).
  """
  import functools

  def decorate(core):
    @functools.wraps(core)
    def wrapped(*args, **kwargs):
      # Every attribution core passes here: run it at the set precision.
      return at_precision(lambda: _tuples(*args, **kwargs))

    def _tuples(*args, **kwargs):
      if len(args) <= x_index or not is_multi(args[x_index]):
        return core(*args, **kwargs)
      args = list(args)
      x = args[x_index]
      flat, unravel = ravel_inputs("x", x, batched=batched)
      at = x_index - 1 if fn_index is None else fn_index
      fn = args[at]
      if not callable(fn):
        raise TypeError(f"expected a function of x; got {type(fn).__name__}.")
      args[at] = lambda v, fn=fn: fn(unravel(v))
      args[x_index] = flat
      for k in ravel_kwargs:
        if k in kwargs:
          kwargs[k] = ravel_like(k, kwargs[k], x, batched=batched)
      out = core(*args, **kwargs)
      if not input_shaped_output:
        return out
      if isinstance(out, tuple):  # (attributions, delta)
        return (unravel(out[0]),) + tuple(out[1:])
      return unravel(out)
    return wrapped
  return decorate
