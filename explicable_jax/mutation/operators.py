"""Mutation operators on parameter pytrees, and the registry of their names.

Every operator is a pure function ``op(key, params, rate, **options)`` of a
parameter pytree (Flax NNX ``nnx.State``, a nested dict, any pytree) that
returns a pytree of the same structure, so an ensemble is one ``jax.vmap``
over split keys (:func:`~explicable_jax.mutation.mutate_many`). The four
model-level operators of Ma et al.'s DeepMutation (ISSRE 2018), as Wang et al.
(ICSE 2019) use them for mutation testing of inputs: ``GF``
:func:`gaussian_fuzzing`, ``NAI`` :func:`neuron_activation_inverse`, ``WS``
:func:`weight_shuffling`, ``NS`` :func:`neuron_switch`.

``layers``: ``"conv"`` (4-D conv kernels only, Wu et al.), ``"kernels"``
(conv and dense kernels), ``"all"`` (every parameter, Wang et al.'s GF) or a
predicate ``f(path: str, leaf) -> bool``. A neuron is an index of a kernel's
last (output) axis, Flax's layout ``(..., in, out)``.

``k = floor(rate * units)`` units are chosen uniformly without replacement
over all eligible units of the model (NS: ``max(2, floor(rate * n_l))`` in
each eligible layer with at least ``min_neurons`` neurons); everything else
stays bit-identical.

A new operator is one function and one :func:`register_operator` call (the
CLI, the audit and :func:`~explicable_jax.mutation.make_mutants` read :data:`OPERATORS`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _validation, conventions

__all__ = [
    "OPERATORS", "register_operator", "operator_names", "gaussian_fuzzing",
    "neuron_activation_inverse", "weight_shuffling", "neuron_switch", "eligible_paths",
    "LAYERS", "GRANULARITIES", "GF_MODES", "BIAS_NAMES",
]

LAYERS = ("conv", "kernels", "all")
GRANULARITIES = ("weight", "neuron")
GF_MODES = ("replace", "additive")


# ---------------------------------------------------------------------------
# Leaves, paths and selection.


def _path_str(path) -> str:
  parts = []
  for p in path:
    if isinstance(p, jax.tree_util.DictKey):
      parts.append(str(p.key))
    elif isinstance(p, jax.tree_util.GetAttrKey):
      if p.name != "value":
        parts.append(p.name)
    elif isinstance(p, jax.tree_util.SequenceKey):
      parts.append(str(p.idx))
    else:
      parts.append(str(p))
  return "/".join(parts)


def _leaves(params, name: str = "params"):
  """``(paths, leaves, treedef)``; a path is ``"conv1/kernel"``. Every leaf
  must be an array (a function or a string in ``name`` is refused)."""
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [_path_str(p) for p, _ in flat]
  leaves = [leaf for _, leaf in flat]
  if not leaves:
    raise TypeError(f"{name} must hold parameter arrays (a pytree of them, or a "
                    f"models.Classifier where a model is taken); got {type(params).__name__} "
                    "with none.")
  _validation.check_array_leaves(name, paths, leaves)
  return paths, leaves, treedef


def _is_kernel(path: str, leaf) -> bool:
  return np.ndim(leaf) >= 2 and path.rsplit("/", 1)[-1] in ("kernel", "weight", "w")


def _eligible(layers, path: str, leaf) -> bool:
  if callable(layers):
    return bool(layers(path, leaf))
  if layers == "conv":
    return _is_kernel(path, leaf) and np.ndim(leaf) == 4
  if layers == "kernels":
    return _is_kernel(path, leaf)
  return True  # "all"


def _check_layers(layers) -> None:
  if not callable(layers):
    _validation.check_choice("layers", layers, LAYERS)


def eligible_paths(params, *, layers="conv", granularity: str = "weight") -> list[str]:
  """The parameter paths an operator may change (e.g. to check ``layers``).

  Args:
    params: a parameter pytree.
    layers: ``"conv"``, ``"kernels"``, ``"all"`` or ``f(path, leaf) -> bool``.
    granularity: ``"weight"`` or ``"neuron"`` (neurons need a kernel, rank >= 2).

  Returns:
    The paths (``"blocks/0/conv1/kernel"``), in the pytree's order.

  >>> import jax.numpy as jnp
  >>> eligible_paths({"conv": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones(2)}})
  ['conv/kernel']
  """
  _check_layers(layers)
  _validation.check_choice("granularity", granularity, GRANULARITIES)
  paths, leaves, _ = _leaves(params)
  out = []
  for p, leaf in zip(paths, leaves):
    if not _eligible(layers, p, leaf):
      continue
    if granularity == "neuron" and np.ndim(leaf) < 2:
      continue
    out.append(p)
  return out


def _units(leaf, granularity: str) -> int:
  return int(np.shape(leaf)[-1]) if granularity == "neuron" else int(np.size(leaf))


def _plan(params, layers, granularity, rate, op_name):
  """Eligible leaf indices, units per leaf, and k (the number to change)."""
  _validation.check_fraction("rate", rate, positive=True)
  _check_layers(layers)
  _validation.check_choice("granularity", granularity, GRANULARITIES)
  paths, leaves, treedef = _leaves(params)
  idx = [i for i, (p, leaf) in enumerate(zip(paths, leaves)) if _eligible(layers, p, leaf)
         and (granularity == "weight" or np.ndim(leaf) >= 2)]
  if not idx and paths == [""] and not callable(layers):
    raise ValueError(
        f"params must be a pytree of named layer parameters (e.g. clf.params) for "
        f"layers={layers!r}, which picks parameters by path ('conv1/kernel'); got a single "
        f"array of shape {tuple(np.shape(leaves[0]))} (pass the model's parameter tree, or "
        "layers='all').")
  if not idx:
    what = "no parameter" if callable(layers) else f"layers={layers!r} selects no parameter"
    raise ValueError(
        f"{op_name} with granularity={granularity!r}: {what} of this model "
        f"(paths: {', '.join(paths[:6])}{', ...' if len(paths) > 6 else ''}).")
  units = [_units(leaves[i], granularity) for i in idx]
  total = sum(units)
  k = math.floor(rate * total)
  if k < 1:
    raise ValueError(
        f"rate={rate} selects no unit: floor(rate * {total} {granularity}s) = 0; "
        f"use rate >= {1 / total:.3g}.")
  return paths, leaves, treedef, idx, units, k


def _global_masks(key, units: Sequence[int], k: int) -> list[jax.Array]:
  """Boolean masks (one per eligible leaf, over its units) with exactly
  ``k`` True in total, uniformly without replacement."""
  total = sum(units)
  scores = jax.random.uniform(key, (total,))
  _, chosen = jax.lax.top_k(scores, k)
  mask = jnp.zeros(total, bool).at[chosen].set(True)
  out, start = [], 0
  for u in units:
    out.append(mask[start:start + u])
    start += u
  return out


BIAS_NAMES = ("bias", "b")
"""Leaf names read as the bias of the kernel beside them (flax: ``bias``;
haiku and plain-JAX code: ``b``)."""


def _bias_index(paths, leaves, kernel_i: int) -> int | None:
  """The index of the bias beside kernel ``kernel_i`` (same module, same
  width, named as in :data:`BIAS_NAMES`). A vector of the same width under
  another name is ambiguous and raises, rather than leaving a bias unmutated
  without a word."""
  module = paths[kernel_i].rsplit("/", 1)[0] if "/" in paths[kernel_i] else ""
  want = np.shape(leaves[kernel_i])[-1]
  prefix = f"{module}/" if module else ""
  others = []
  for j, p in enumerate(paths):
    if j == kernel_i or not p.startswith(prefix) or "/" in p[len(prefix):]:
      continue
    if np.shape(leaves[j]) != (want,):
      continue
    if p[len(prefix):] in BIAS_NAMES:
      return j
    others.append(p)
  if others:
    raise ValueError(
        f"params: the kernel {paths[kernel_i]!r} has a vector of its width beside it, "
        f"{others[0]!r}, whose name is not one of {BIAS_NAMES}; rename the bias leaf "
        "to 'bias' (or 'b') so that the operator mutates it with its filter.")
  return None


def _cyclic_derangement(key, n: int) -> jax.Array:
  """A random permutation of ``range(n)`` with no fixed point (``n >= 2``):
  a random order, each element sent to the next in it."""
  order = jax.random.permutation(key, n)
  target = jnp.roll(order, -1)
  return jnp.zeros(n, jnp.int32).at[order].set(target.astype(jnp.int32))


# ---------------------------------------------------------------------------
# Operators.


@conventions.key_first
def gaussian_fuzzing(key: jax.Array, params, rate: float, *, layers="conv",
                     granularity: str = "weight", mode: str = "replace",
                     sigma: float | None = None):
  """GF: redraw a fraction ``rate`` of the weights (or neurons) from a Gaussian.

  ``replace``, weights: ``w ~ N(mean(W), std(W))`` over the tensor ``W``
  (Wang et al.'s code). ``replace``, neurons: each chosen filter
  ``W[..., j] ~ N(mean_j' W[..., j'], std_j' W[..., j'])`` elementwise, the
  statistics taken across the layer's filters (Wu et al.'s code).
  ``additive``: ``w ~ N(w, sigma^2)``, ``sigma`` defaulting to ``std(W)``
  (Wang et al.'s paper). Ma et al., DeepMutation (ISSRE 2018), GF.

  .. math:: w' = m \\odot \\tilde w + (1 - m) \\odot w,\\quad
            \\sum m = \\lfloor \\mathrm{rate} \\cdot \\mathrm{units} \\rfloor

  Args:
    key: PRNG key.
    params: the parameter pytree.
    rate: fraction of the eligible units to redraw, in ``(0, 1]``.
    layers: which leaves (see the module docstring).
    granularity: ``"weight"`` or ``"neuron"``.
    mode: ``"replace"`` or ``"additive"``.
    sigma: the additive noise's standard deviation (default ``std(W)``).

  Returns:
    A pytree of ``params``' structure.

  >>> import jax, jax.numpy as jnp
  >>> p = {"dense": {"kernel": jnp.arange(12.0).reshape(3, 4), "bias": jnp.zeros(4)}}
  >>> m = gaussian_fuzzing(jax.random.key(0), p, 0.5, layers="kernels", mode="additive",
  ...                      sigma=0.1)
  >>> int((m["dense"]["kernel"] != p["dense"]["kernel"]).sum())  # floor(0.5 * 12) weights
  6
  """
  key = _validation.check_key("key", key, call="gaussian_fuzzing(key, ...)")
  _validation.check_choice("mode", mode, GF_MODES)
  if sigma is not None:
    _validation.check_positive("sigma", sigma)
    if mode != "additive":
      raise ValueError(f"sigma is read only with mode='additive' (replace draws from N(0, "
                       f"std(W)^2)); got sigma={sigma!r} with mode={mode!r}: pass "
                       "mode='additive', or drop sigma.")
  paths, leaves, treedef, idx, units, k = _plan(params, layers, granularity, rate,
                                                "gaussian_fuzzing")
  masks = _global_masks(jax.random.fold_in(key, 0), units, k)
  leaves = list(leaves)
  # One draw for every eligible weight, cut into the leaves' shapes: a single
  # random-bits program instead of one per leaf, which XLA:CPU compiles far
  # faster for a many-layer model.
  sizes = [int(np.size(leaves[i])) for i in idx]
  dtype = jnp.result_type(*(leaves[i] for i in idx))
  if not jnp.issubdtype(dtype, jnp.floating):
    dtype = jnp.float32
  all_noise = jax.random.normal(jax.random.fold_in(key, 1), (sum(sizes),), dtype)
  offsets = np.cumsum([0, *sizes])
  for n, (i, m) in enumerate(zip(idx, masks)):
    w = leaves[i]
    noise = all_noise[offsets[n]:offsets[n + 1]].reshape(w.shape).astype(w.dtype)
    if mode == "additive":
      scale = w.std() if sigma is None else sigma
      new = w + scale * noise
    elif granularity == "neuron":
      new = (w.mean(axis=-1, keepdims=True) + w.std(axis=-1, keepdims=True) * noise)
    else:
      new = w.mean() + w.std() * noise
    m = m.reshape(w.shape) if granularity == "weight" else m
    leaves[i] = jnp.where(m, new, w)
  return jax.tree_util.tree_unflatten(treedef, leaves)


@conventions.key_first
def neuron_activation_inverse(key: jax.Array, params, rate: float, *, layers="conv",
                              granularity: str = "neuron"):
  """NAI: negate a fraction ``rate`` of the neurons (conv filters).

  Negating a filter ``W[..., j]`` and its bias ``b_j`` inverts the neuron's
  pre-activation, ``conv(x, -W) = -conv(x, W)``; with
  ``granularity="weight"`` single weights are negated instead (Ma et al.,
  DeepMutation, ISSRE 2018, NAI; Wang et al., ICSE 2019).

  .. math:: W'_{\\cdot j} = -W_{\\cdot j},\\ b'_j = -b_j \\text{ for chosen } j

  Args:
    key: PRNG key.
    params: the parameter pytree.
    rate: fraction of the eligible neurons (or weights), in ``(0, 1]``.
    layers: which leaves (see the module docstring).
    granularity: ``"neuron"`` (default) or ``"weight"``.

  Returns:
    A pytree of ``params``' structure.

  >>> import jax, jax.numpy as jnp
  >>> p = {"dense": {"kernel": jnp.arange(12.0).reshape(3, 4), "bias": jnp.ones(4)}}
  >>> m = neuron_activation_inverse(jax.random.key(0), p, 0.5, layers="kernels")
  >>> negated = (m["dense"]["kernel"] == -p["dense"]["kernel"]).all(0)
  >>> int(negated.sum()), bool((m["dense"]["bias"] == jnp.where(negated, -1, 1)).all())
  (2, True)
  """
  key = _validation.check_key("key", key, call="neuron_activation_inverse(key, ...)")
  paths, leaves, treedef, idx, units, k = _plan(params, layers, granularity, rate,
                                                "neuron_activation_inverse")
  masks = _global_masks(key, units, k)
  leaves = list(leaves)
  for i, m in zip(idx, masks):
    w = leaves[i]
    if granularity == "weight":
      leaves[i] = jnp.where(m.reshape(w.shape), -w, w)
      continue
    leaves[i] = jnp.where(m, -w, w)
    b = _bias_index(paths, leaves, i)
    if b is not None:
      leaves[b] = jnp.where(m, -leaves[b], leaves[b])
  return jax.tree_util.tree_unflatten(treedef, leaves)


@conventions.key_first
def weight_shuffling(key: jax.Array, params, rate: float, *, layers="conv"):
  """WS: permute the incoming weights of a fraction ``rate`` of the neurons.

  For a conv filter all its ``kh * kw * in`` weights are permuted, with a
  random cyclic permutation ``pi`` per neuron so that every weight moves
  (Ma et al., DeepMutation, ISSRE 2018, WS).

  .. math:: W'_{i j} = W_{\\pi_j(i) j},\\ \\pi_j(i) \\ne i \\text{ for chosen } j

  Args:
    key: PRNG key.
    params: the parameter pytree.
    rate: fraction of the eligible neurons, in ``(0, 1]``.
    layers: which leaves (see the module docstring).

  Returns:
    A pytree of ``params``' structure.

  >>> import jax, jax.numpy as jnp
  >>> w = jnp.arange(12.0).reshape(3, 4)
  >>> m = weight_shuffling(jax.random.key(0), {"dense": {"kernel": w}}, 0.5,
  ...                      layers="kernels")["dense"]["kernel"]
  >>> int((m != w).any(0).sum()), int((m != w).sum()), bool((jnp.sort(m, 0) == w).all())
  (2, 6, True)
  """
  key = _validation.check_key("key", key, call="weight_shuffling(key, ...)")
  paths, leaves, treedef, idx, units, k = _plan(params, layers, "neuron", rate,
                                                "weight_shuffling")
  masks = _global_masks(jax.random.fold_in(key, 0), units, k)
  leaves = list(leaves)
  for n, (i, m) in enumerate(zip(idx, masks)):
    w = leaves[i]
    fan_in = int(np.prod(w.shape[:-1]))
    if fan_in < 2:
      raise ValueError(f"weight_shuffling: {paths[i]} has one weight per neuron; "
                       "there is nothing to shuffle.")
    flat = w.reshape(fan_in, w.shape[-1])
    keys = jax.random.split(jax.random.fold_in(key, n + 1), w.shape[-1])
    perms = jax.vmap(lambda kk: _cyclic_derangement(kk, fan_in))(keys)  # (out, fan_in)
    shuffled = jnp.take_along_axis(flat, perms.T, axis=0)
    leaves[i] = jnp.where(m, shuffled, flat).reshape(w.shape)
  return jax.tree_util.tree_unflatten(treedef, leaves)


@conventions.key_first
def neuron_switch(key: jax.Array, params, rate: float, *, layers="conv",
                  min_neurons: int = 10):
  """NS: in each eligible layer, chosen neurons trade their weights (and bias).

  In every eligible layer with at least ``min_neurons`` neurons (``n``),
  ``max(2, floor(rate * n))`` chosen neurons each take the next one's
  weights in a random order (Wu et al.'s cyclic switch; Wang et al., ICSE
  2019, skip layers of fewer than 10 neurons; Ma et al., DeepMutation, NS).

  .. math:: W'_{\\cdot c_t} = W_{\\cdot c_{t+1 \\bmod k}}

  Args:
    key: PRNG key.
    params: the parameter pytree.
    rate: fraction of each layer's neurons, in ``(0, 1]``.
    layers: which leaves (see the module docstring).
    min_neurons: layers narrower than this are left alone.

  Returns:
    A pytree of ``params``' structure.

  >>> import jax, jax.numpy as jnp
  >>> w = jnp.arange(12.0).reshape(3, 4)
  >>> m = neuron_switch(jax.random.key(0), {"dense": {"kernel": w}}, 0.5, layers="kernels",
  ...                   min_neurons=2)["dense"]["kernel"]
  >>> int((m != w).any(0).sum())  # max(2, floor(0.5 * 4)) neurons switched
  2
  """
  key = _validation.check_key("key", key, call="neuron_switch(key, ...)")
  _validation.check_fraction("rate", rate, positive=True)
  _check_layers(layers)
  _validation.check_positive("min_neurons", min_neurons, integer=True)
  paths, leaves, treedef = _leaves(params)
  idx = [i for i, (p, leaf) in enumerate(zip(paths, leaves))
         if _eligible(layers, p, leaf) and np.ndim(leaf) >= 2
         and np.shape(leaf)[-1] >= max(2, min_neurons)]
  if not idx:
    raise ValueError(
        f"neuron_switch: no layer selected by layers={layers!r} has at least "
        f"{max(2, min_neurons)} neurons.")
  leaves = list(leaves)
  for n, i in enumerate(idx):
    w = leaves[i]
    width = w.shape[-1]
    kk = min(width, max(2, math.floor(rate * width)))
    key_i = jax.random.fold_in(key, n)
    chosen = jax.random.permutation(jax.random.fold_in(key_i, 0), width)[:kk]
    source = jnp.arange(width).at[chosen].set(jnp.roll(chosen, -1))
    leaves[i] = jnp.take(w, source, axis=-1)
    b = _bias_index(paths, leaves, i)
    if b is not None:
      leaves[b] = jnp.take(leaves[b], source)
  return jax.tree_util.tree_unflatten(treedef, leaves)


# ---------------------------------------------------------------------------
# The registry.

OPERATORS: dict[str, Callable[..., Any]] = {
    "NAI": neuron_activation_inverse,
    "GF": gaussian_fuzzing,
    "WS": weight_shuffling,
    "NS": neuron_switch,
}
"""Operators by name: Ma et al.'s DeepMutation short names, as Wang et al.
use them. The one list of operator names: the CLI's ``--operator`` choices
and the audit read it (:func:`operator_names`); extend it with
:func:`register_operator`."""


@conventions.boundary()
def register_operator(name: str, fn: Callable[..., Any], *, overwrite: bool = False) -> None:
  """Makes ``fn`` available as the mutation operator ``name`` everywhere.

  ``fn(key, params, rate, **options) -> params`` must be pure and keep the
  pytree's structure, shapes and dtypes (it is ``jax.vmap``-ed over keys by
  :func:`~explicable_jax.mutation.mutate_many`). After this call ``name`` is
  accepted by :func:`~explicable_jax.mutation.make_mutants`,
  :func:`~explicable_jax.mutation.mutate_many`, the audit and the CLI's
  ``--operator`` (parsers built after the call).

  Args:
    name: the operator's name (``"GF"``, ``"NAI"``...).
    fn: the operator.
    overwrite: replace an operator of that name.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True``) or not a string.
    TypeError: ``fn`` is not callable.

  >>> import jax
  >>> register_operator("ZERO", lambda key, params, rate: jax.tree.map(lambda w: 0 * w, params))
  >>> "ZERO" in operator_names()
  True
  >>> _ = OPERATORS.pop("ZERO")
  """
  _check_operator_form("fn", fn)
  _validation.register("mutation operator", OPERATORS, name, fn, arg="fn",
                       overwrite=overwrite)


def _check_operator_form(name: str, fn) -> None:
  """An operator is called ``fn(key, params, rate, **options)``."""
  if callable(fn):
    _validation.check_signature(name, fn, 3, "fn(key, params, rate, **options) -> params "
                                "(a mutation operator)")


def operator_names() -> tuple[str, ...]:
  """The registered operator names, in registration order (``NAI`` first,
  the default everywhere); read this when building a CLI's choices."""
  return tuple(OPERATORS)


def _operator(operator) -> Callable:
  """An operator function from its name (or the function itself)."""
  if callable(operator):
    _check_operator_form("operator", operator)
    return operator
  return _validation.lookup("operator", operator, OPERATORS)
