"""Model mutation testing: mutation operators, mutant ensembles, label change rate.

Wang et al., "Adversarial Sample Detection for Deep Neural Network through
Model Mutation Testing" (ICSE 2019; code ``dgl-prc/m_testing_adversatial_sample``)
perturb a trained model's weights many times; inputs the model is unsure of
(adversarial or misclassified ones) change label under far more mutants. Wu,
Michel and Briot ("Leveraging Model Interpretability and Stability to
increase Model Robustness", 2019) use that label change rate (LCR) to detect
wrong predictions.

Every operator is a pure function ``op(key, params, rate, **options)`` of a
parameter pytree (Flax NNX ``nnx.State``, a nested dict, any pytree) that
returns a pytree of the same structure, so an ensemble is one
``jax.vmap`` over split keys (:func:`make_mutants`).

Operators (``granularity`` says what a "unit" is):

* ``gaussian_fuzzing`` (GF): chosen units are redrawn. ``mode="replace"``
  draws from ``N(mean, std)`` of their tensor (Wang et al.'s code; per
  neuron, Wu et al.'s code uses the mean and std across the layer's neurons
  at each kernel position); ``mode="additive"`` draws from ``N(w, sigma^2)``
  (Wang et al.'s paper).
* ``neuron_activation_inverse`` (NAI): chosen neurons / conv filters are
  negated, with their bias if the layer has one.
* ``weight_shuffling`` (WS): the incoming weights of chosen neurons are
  permuted (a random cyclic permutation, so every weight moves).
* ``neuron_switch`` (NS): in each layer, the chosen neurons trade places
  (a cyclic shift of a random order, so each takes another's weights).

``layers``: ``"conv"`` (4-D conv kernels only, Wu et al.), ``"kernels"``
(conv and dense kernels), ``"all"`` (every parameter, Wang et al.'s GF) or a
predicate ``f(path: str, leaf) -> bool``. A neuron is an index of a kernel's
last (output) axis, Flax's layout ``(..., in, out)``.

``k = floor(rate * units)`` units are chosen uniformly without replacement
over all eligible units of the model (NS: ``max(2, floor(rate * n_l))`` in
each eligible layer with at least ``min_neurons`` neurons); everything else
stays bit-identical.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _batching, _validation

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


def _leaves(params):
  flat, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [_path_str(p) for p, _ in flat]
  leaves = [leaf for _, leaf in flat]
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


def _check_rate(rate) -> None:
  ok = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool)
  if not ok or not np.isfinite(rate) or not 0 < rate <= 1:
    raise ValueError(f"rate must be a fraction in (0, 1]; got {rate!r}.")


def eligible_paths(params, *, layers="conv", granularity: str = "weight") -> list[str]:
  """The parameter paths an operator may change (e.g. to check ``layers``)."""
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
  _check_rate(rate)
  _check_layers(layers)
  _validation.check_choice("granularity", granularity, GRANULARITIES)
  paths, leaves, treedef = _leaves(params)
  idx = [i for i, (p, leaf) in enumerate(zip(paths, leaves)) if _eligible(layers, p, leaf)
         and (granularity == "weight" or np.ndim(leaf) >= 2)]
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


def gaussian_fuzzing(key: jax.Array, params, rate: float, *, layers="conv",
                     granularity: str = "weight", mode: str = "replace",
                     sigma: float | None = None):
  """GF: redraw a fraction ``rate`` of the weights (or neurons) from a Gaussian.

  ``replace``, weights: ``w ~ N(mean(W), std(W))`` over the tensor ``W``
  (Wang et al.'s code). ``replace``, neurons: each chosen filter
  ``W[..., j] ~ N(mean_j' W[..., j'], std_j' W[..., j'])`` elementwise, the
  statistics taken across the layer's filters (Wu et al.'s code).
  ``additive``: ``w ~ N(w, sigma^2)``, ``sigma`` defaulting to ``std(W)``
  (Wang et al.'s paper).
  """
  key = _validation.check_key("key", key, call="gaussian_fuzzing(key, ...)")
  _validation.check_choice("mode", mode, GF_MODES)
  if sigma is not None:
    _validation.check_positive("sigma", sigma)
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


def neuron_activation_inverse(key: jax.Array, params, rate: float, *, layers="conv",
                              granularity: str = "neuron"):
  """NAI: negate a fraction ``rate`` of the neurons (conv filters), which
  inverts their pre-activation; the matching bias is negated too. With
  ``granularity="weight"`` single weights are negated instead."""
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


def weight_shuffling(key: jax.Array, params, rate: float, *, layers="conv"):
  """WS: permute the incoming weights of a fraction ``rate`` of the neurons
  (for a conv filter: all its ``kh * kw * in`` weights), with a random cyclic
  permutation per neuron so that every weight moves."""
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


def neuron_switch(key: jax.Array, params, rate: float, *, layers="conv",
                  min_neurons: int = 10):
  """NS: in every eligible layer with at least ``min_neurons`` neurons,
  ``max(2, floor(rate * n))`` chosen neurons trade their weights (and bias):
  each takes the next one's in a random order (Wu et al.'s cyclic switch;
  Wang et al. skip layers of fewer than 10 neurons)."""
  key = _validation.check_key("key", key, call="neuron_switch(key, ...)")
  _check_rate(rate)
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


OPERATORS: dict[str, Callable] = {
    "GF": gaussian_fuzzing,
    "NAI": neuron_activation_inverse,
    "WS": weight_shuffling,
    "NS": neuron_switch,
}
"""Operators by the short names of Wang et al. (and Ma et al.'s DeepMutation)."""


def _operator(operator) -> Callable:
  if callable(operator):
    return operator
  return _validation.lookup("operator", operator, OPERATORS)


# ---------------------------------------------------------------------------
# Ensembles and label change rate.


@functools.lru_cache(maxsize=32)
def _vmapped_operator(op: Callable, rate: float, options: tuple) -> Callable:
  """The operator vmapped over keys and jitted, params an argument (not a
  constant folded into the program), so that every draw of the same kind
  reuses one compilation."""
  kwargs = dict(options)
  return jax.jit(jax.vmap(lambda k, p: op(k, p, rate, **kwargs), in_axes=(0, None)))


def mutate_many(key: jax.Array, params, n: int, operator, rate: float, **options):
  """``n`` mutants as one stacked pytree (leading axis ``n``): the operator
  ``vmap``-ed over ``jax.random.split(key, n)``. ``params``: a parameter
  pytree or a Classifier (its params)."""
  key = _validation.check_key("key", key, call="mutate_many(key, ...)")
  _validation.check_positive("n", n, integer=True)
  params = _params_of("params", params)
  op = _operator(operator)
  keys = jax.random.split(key, int(n))
  try:
    fn = _vmapped_operator(op, rate, tuple(sorted(options.items())))
  except TypeError:  # an unhashable option (a list, an array): compile for this call only
    fn = jax.jit(jax.vmap(lambda k, p: op(k, p, rate, **options), in_axes=(0, None)))
  return fn(keys, params)


def check_mutants(mutants, params) -> int:
  """The number of mutants in a stacked pytree, or a ``ValueError`` saying
  which leaf does not match ``params`` with a leading mutant axis."""
  p_paths, p_leaves, p_def = _leaves(params)
  m_paths, m_leaves, m_def = _leaves(mutants)
  if p_def != m_def:
    raise ValueError(
        "mutants must have the structure of params with a leading mutant axis; "
        f"got {len(m_leaves)} leaves for the model's {len(p_leaves)}.")
  n = None
  for path, p, m in zip(p_paths, p_leaves, m_leaves):
    if np.ndim(m) != np.ndim(p) + 1 or np.shape(m)[1:] != np.shape(p):
      raise ValueError(
          f"mutants[{path}] must have shape (n, *{tuple(np.shape(p))}); "
          f"got {tuple(np.shape(m))}.")
    if n is None:
      n = np.shape(m)[0]
    elif np.shape(m)[0] != n:
      raise ValueError(f"mutants hold different counts: {path} has {np.shape(m)[0]}, "
                       f"earlier leaves {n}.")
  return int(n)


def _chunks(n: int, size: int):
  for s in range(0, n, size):
    yield s, min(n, s + size)


STRATEGIES = ("auto", "map", "vmap")


@dataclasses.dataclass(frozen=True)
class _ParamsLogits:
  """``logits_fn(params, x)`` given by the user: ``(params, extra, x) -> logits``."""
  fn: Callable

  def __call__(self, p, extra, xb):
    return self.fn(p, xb)


@dataclasses.dataclass(frozen=True)
class _ClassifierLogits:
  """A classifier's evaluation-mode logits as a function of its params,
  with its state passed in (never a constant folded into the program)."""
  spec: Any

  def __call__(self, p, state, xb):
    return self.spec.backend.apply(p, state, xb, train=False, key=None)[0]


def _as_logits(model):
  """``(fn(params, extra, x), extra, original_params or None)`` for a
  Classifier (or TrainState) or a ``logits_fn(params, x)``."""
  clf = _classifier_or_none(model)
  if clf is not None:
    return _ClassifierLogits(clf.spec), clf.state, clf.params
  if not callable(model):
    raise TypeError(
        f"model must be a models.Classifier or a function logits_fn(params, x); got "
        f"{type(model).__name__}.")
  return _ParamsLogits(model), None, None


@dataclasses.dataclass(frozen=True)
class _HeadFrom:
  """A classifier's logits from ``layer`` on: ``prefix(extra, x)`` runs the
  unmutated prefix once with the original parameters, ``__call__(p, extra,
  h)`` the rest with a mutant's (``extra = (original params, state)``)."""
  spec: Any
  layer: str

  def prefix(self, extra, xb):
    original, state = extra
    return self.spec.backend.features(original, state, xb, self.layer)

  def __call__(self, p, extra, h):
    return self.spec.backend.head(p, extra[1], h, self.layer, _input_spec(self.spec, h))


def _input_spec(spec, h):
  """The model input's shape for a batch of activations ``h`` (backends that
  run the unused prefix on a dummy need it), or ``None``."""
  shape = spec.input_shape
  if shape is None:
    return None
  return jax.ShapeDtypeStruct((jax.tree.leaves(h)[0].shape[0], *shape), jnp.float32)


_PREFIX_USES: dict = {}


def _abstract(params):
  """The shapes and dtypes of ``params`` (for tracing, no values)."""
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), params)


def _changed(params, mutants, n: int) -> np.ndarray:
  """``(n, leaves)``: which parameter leaves each mutant changes."""
  return np.stack([np.asarray(m != p[None]).reshape(n, -1).any(1)
                   for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mutants))], 1)


def _prefix_uses(clf, x_spec) -> dict[str, np.ndarray]:
  """For every split point that cuts ``clf`` cleanly, which parameter leaves
  its prefix (``features`` up to the layer) reads, from the jaxpr; cached
  per model structure and input shape."""
  from explicable_jax import _jaxpr
  key = (clf.spec, x_spec.shape[1:], str(x_spec.dtype))
  if key not in _PREFIX_USES:
    abstract = _abstract(clf.params)
    n_leaves = len(jax.tree.leaves(abstract))
    uses = {}
    for layer in clf.layers:
      try:
        clf.spec.backend.check_split(clf.params, clf.state, layer, x_spec)
      except ValueError:  # a skip connection over the cut: not a starting point
        continue
      closed = jax.make_jaxpr(lambda p, xb, layer=layer: clf.spec.backend.features(
          p, clf.state, xb, layer))(abstract, x_spec)
      uses[layer] = np.asarray(_jaxpr.used_inputs(closed.jaxpr)[:n_leaves])
    _PREFIX_USES[key] = uses
  return _PREFIX_USES[key]


def prefix_starts(model, mutants, x_shape) -> list[str | None]:
  """Where each mutant's forward pass can start.

  A mutant that changes none of the parameters the model reads up to a split
  point ``layer`` has the original's activation there; it can start from it.
  Each mutant's entry is its deepest such split point (``None``: the input).
  """
  clf = _classifier_or_none(model)
  n = check_mutants(mutants, clf.params)
  return _split_starts(clf, _changed(clf.params, mutants, n), x_shape)


def _split_starts(clf, changed: np.ndarray, x_shape) -> list[str | None]:
  """:func:`prefix_starts` from the ``(n, leaves)`` changed-leaf matrix."""
  uses = _prefix_uses(clf, jax.ShapeDtypeStruct((1, *x_shape[1:]), jnp.float32))
  start = [None] * len(changed)
  for layer, u in uses.items():  # in the model's order: the last clean one wins
    for i in np.flatnonzero(~(changed & u[None]).any(1)):
      start[i] = layer
  return start


def prefix_groups(model, mutants, x_shape) -> list[tuple[str | None, np.ndarray]]:
  """The mutants grouped by :func:`prefix_starts`: ``[(layer or None, mutant
  indices), ...]`` in the model's order."""
  start = prefix_starts(model, mutants, x_shape)
  order = [None] + list(_prefix_uses(_classifier_or_none(model), jax.ShapeDtypeStruct(
      (1, *x_shape[1:]), jnp.float32)))
  return [(layer, np.array([i for i, s in enumerate(start) if s == layer], int))
          for layer in order if layer in start]


@dataclasses.dataclass(frozen=True)
class Start:
  """Where a mutant's forward pass starts (see :func:`start_groups`).

  ``layer``: the split point whose original activation it starts from
  (``None``: the input). ``module``: a sub-module after it (dotted path) that
  the mutant computes differently from the original, or ``None``.
  ``kind``: ``"negated"``, the mutant's ``module`` output is the original's
  with some channels negated (NAI: ``conv(x, -w) = -conv(x, w)`` exactly), so
  the module is not run; ``"input"``, the mutant's ``module`` runs on the
  original's input to it, so nothing that only feeds that input is run.
  """
  layer: str | None
  module: str | None = None
  kind: str | None = None


_MODULE_INFO: dict = {}


def _module_info(clf, x_spec, path: str):
  """``None`` when a mutant cannot start at the sub-module ``path``
  (backend without sub-module starts, not a Conv/Linear, called other than
  once, keyword inputs); else which parameter leaves its input reads."""
  from explicable_jax import _jaxpr
  backend = clf.spec.backend
  key = (clf.spec, x_spec.shape[1:], str(x_spec.dtype), path)
  if key not in _MODULE_INFO:
    info = None
    if (hasattr(backend, "module_io") and backend.linear_module(clf.params, clf.state, path)
        and backend.module_calls(clf.params, clf.state, path, x_spec) == 1):
      abstract = _abstract(clf.params)
      try:
        closed = jax.make_jaxpr(lambda p, xb: backend.module_io(
            p, clf.state, xb, path)[0])(abstract, x_spec)
      except ValueError:
        closed = None
      if closed is not None:
        info = np.asarray(_jaxpr.used_inputs(closed.jaxpr)[:len(jax.tree.leaves(abstract))])
    _MODULE_INFO[key] = info
  return _MODULE_INFO[key]


def _negation_signs(original: Sequence, mutant: Sequence) -> np.ndarray | None:
  """``s`` (+1/-1 per output channel, the last axis) with ``mutant = s *
  original`` exactly for every leaf, or ``None``."""
  same = neg = None
  for o, m in zip(original, mutant):
    o, m = np.asarray(o), np.asarray(m)
    if o.ndim == 0 or (same is not None and o.shape[-1] != same.shape[0]):
      return None
    axes = tuple(range(o.ndim - 1))
    s_, n_ = (m == o).all(axes), (m == -o).all(axes)
    same, neg = (s_, n_) if same is None else (same & s_, neg & n_)
  if same is None or not (same | neg).all():
    return None
  return np.where(same, 1.0, -1.0).astype(np.float32)


def start_groups(model, mutants, x_shape, *,
                 modules: bool = True) -> list[tuple[Start, np.ndarray, np.ndarray | None]]:
  """Where each mutant's forward pass can start, finer than
  :func:`prefix_groups`: ``[(Start, mutant indices, signs or None), ...]``.

  Each mutant starts at its :func:`prefix_starts` split point; on a backend
  with sub-module starts (NNX), also at its first changed ``Conv``/``Linear``
  (the one whose input reads no changed parameter, called once per forward
  pass): ``kind="negated"`` when the mutant's parameters of that module are
  the original's with whole output channels negated (``signs``: +1/-1 per
  channel, one row per mutant), else ``kind="input"`` when that module's
  input lies deeper than the split point. The rest start at the split point.
  ``modules=False``: split points only (the groups of :func:`prefix_groups`).
  """
  clf = _classifier_or_none(model)
  n = check_mutants(mutants, clf.params)
  x_spec = jax.ShapeDtypeStruct((1, *x_shape[1:]), jnp.float32)
  paths, p_leaves, _ = _leaves(clf.params)
  m_leaves = jax.tree.leaves(mutants)
  changed = _changed(clf.params, mutants, n)
  layer_of = _split_starts(clf, changed, x_shape)
  uses = _prefix_uses(clf, x_spec)
  owner = [path.rsplit("/", 1)[0].replace("/", ".") if "/" in path else None for path in paths]
  members: dict[str, list[int]] = {}
  for i, mod in enumerate(owner):
    if mod is not None:
      members.setdefault(mod, []).append(i)
  starts, signs = [], []
  for i in range(n):
    best, best_uses = None, -1
    for mod, idx in (members.items() if modules else ()):
      if not changed[i, idx].any():
        continue
      info = _module_info(clf, x_spec, mod)
      if info is None or (changed[i] & info).any():
        continue
      if info.sum() > best_uses:
        best, best_uses = mod, int(info.sum())
    start, s = Start(layer_of[i]), None
    if best is not None:
      idx = members[best]
      s = _negation_signs([p_leaves[j] for j in idx], [m_leaves[j][i] for j in idx])
      prefix = uses[layer_of[i]].sum() if layer_of[i] is not None else 0
      if s is not None:
        start = Start(layer_of[i], best, "negated")
      elif best_uses > prefix:
        start = Start(layer_of[i], best, "input")
    starts.append(start)
    signs.append(s)
  out = []
  for start in dict.fromkeys(starts):  # first-seen order
    idx = np.array([i for i, s_ in enumerate(starts) if s_ == start], int)
    out.append((start, idx, np.stack([signs[i] for i in idx])
                if start.kind == "negated" else None))
  return out


def _classifier_or_none(model):
  from explicable_jax import models  # the contract; models never imports mutation
  if isinstance(model, models.Classifier) or isinstance(
      getattr(model, "classifier", None), models.Classifier):
    return models.as_classifier("model", model)
  return None


def _params_of(name: str, model_or_params):
  """A Classifier's (or TrainState's) params, or the pytree itself."""
  clf = _classifier_or_none(model_or_params)
  return clf.params if clf is not None else model_or_params


MESHES = ("local", "global")
SHARE_PREFIX_MIN_PAIRS = 50_000  # (mutant, input) pairs from which share_prefix=None shares


def mutant_predictions(model, mutants, x, *, mutant_chunk: int = 10,
                       batch_size: int = 500, strategy: str = "auto",
                       mesh: str = "local",
                       share_prefix: bool | str | None = None) -> np.ndarray:
  """Predicted classes of every mutant on every input, ``(n_mutants, N)``;
  ``-1`` where the mutant's scores are not finite.

  ``model`` is the :class:`~explicable_jax.models.Classifier` the mutants
  were drawn from (each mutant is ``clf.with_params(m)``), or a function
  ``logits_fn(params, x_batch) -> logits``. Each jitted call handles
  ``mutant_chunk`` mutants on ``batch_size`` inputs (the batches come from
  the library's one batching helper), so memory holds at most that many
  forward passes:

  * ``vmap``: the mutants are batched with ``jax.vmap`` (a convolution with
    one kernel per mutant becomes a grouped convolution), the right choice
    on GPU/TPU;
  * ``map``: ``jax.lax.map`` runs the chunk's mutants one after the other
    inside the call. On XLA:CPU grouped convolutions run far slower than
    plain ones (5.8x for ResNet-20 in a small ad-hoc run of
    ``python -m benchmarks.mutation --mutants 4 --images 200
    --mutant-chunk 2 --batch-size 100``), so ``auto`` picks ``map`` on CPU.

  With several devices the mutant axis of each chunk is split over them
  (``jax.shard_map``; ``mutant_chunk`` is rounded up to a multiple of the
  device count), and every process gets the whole ``(n_mutants, N)`` result.
  ``mesh`` says which devices: ``"local"`` (default) this process's own, so
  in a multi-process run each process computes every mutant itself;
  ``"global"`` every process's, so the mutants are split across processes
  (every process must call with the same arguments).

  ``share_prefix``: a mutant that leaves the model's parameters up to a
  split point unchanged (NAI and NS at low rates often do for the first
  blocks) starts there, from the original's activation, computed once per
  input batch for all mutants. The mutant's forward pass is the same
  computation, so the predictions are the same (tested). On one device
  with an NNX model, a mutant also starts *inside* the next stage, at its
  first changed convolution (:func:`start_groups`): an NAI mutant takes the
  original's output of that convolution with the negated channels' signs
  flipped (``conv(x, -w) = -conv(x, w)`` exactly), other operators run the
  changed convolution on the original's input to it. ResNet-20, NAI rate
  0.01, 100 mutants: see ``benchmarks/README.md`` (``python -m
  benchmarks.mutation``). ``True`` needs a
  :class:`~explicable_jax.models.Classifier` with split points;
  ``"layers"`` starts at split points only; ``None`` (default) is ``True``
  for such a classifier on one device when there are at least
  ``SHARE_PREFIX_MIN_PAIRS`` (mutant, input) pairs, since the program (one
  per set of group sizes) takes seconds to compile.
  """
  _validation.check_positive("mutant_chunk", mutant_chunk, integer=True)
  _validation.check_positive("batch_size", batch_size, integer=True)
  _validation.check_choice("strategy", strategy, STRATEGIES)
  _validation.check_choice("mesh", mesh, MESHES)
  if not (share_prefix is None or isinstance(share_prefix, bool) or share_prefix == "layers"):
    raise ValueError(f"share_prefix must be None, True, False or 'layers'; got {share_prefix!r}.")
  if strategy == "auto":
    strategy = "map" if jax.default_backend() == "cpu" else "vmap"
  logits_fn, extra, _ = _as_logits(model)
  if getattr(model, "params", None) is not None:
    n = check_mutants(mutants, model.params)
  else:
    leaves = jax.tree.leaves(mutants)
    if not leaves or any(np.ndim(a) < 1 for a in leaves):
      raise ValueError("mutants must be a pytree of arrays with a leading mutant axis "
                       f"(from make_mutants or mutate_many); got {type(mutants).__name__} "
                       "without one.")
    n = int(np.shape(leaves[0])[0])
  x = np.asarray(x)
  _check_logits_fn(logits_fn, extra, mutants, x)
  devices = tuple(jax.local_devices() if mesh == "local" else jax.devices())
  ndev = len(devices)
  mutant_chunk = -(-mutant_chunk // ndev) * ndev
  clf = _classifier_or_none(model)
  if share_prefix is None:
    share_prefix = (clf is not None and bool(clf.layers) and ndev == 1
                    and n * len(x) >= SHARE_PREFIX_MIN_PAIRS)
  if share_prefix and (clf is None or not clf.layers):
    raise ValueError(f"share_prefix={share_prefix!r} needs a models.Classifier with split "
                     f"points (layers); got {type(model).__name__}.")
  out = np.empty((n, len(x)), np.int32)
  if not share_prefix:
    _predict_group(logits_fn, extra, mutants, np.arange(n), x, out, strategy, devices,
                   mutant_chunk, batch_size)
    return out
  if ndev == 1:
    return _predict_shared_prefix(clf, mutants, n, x, strategy, mutant_chunk, batch_size,
                                  modules=share_prefix is True)
  # Mutants sorted by how deep they can start, cut into full chunks; a chunk
  # starts where its shallowest mutant can (no chunk is padded but the last).
  start = prefix_starts(clf, mutants, x.shape)
  depth = {None: -1, **{layer: i for i, layer in enumerate(clf.layers)}}
  order = np.argsort([depth[s_] for s_ in start], kind="stable")
  for m0, m1 in _chunks(n, mutant_chunk):
    idx = order[m0:m1]
    layer = start[idx[0]]
    group = jax.tree.map(lambda a: a[idx], mutants)
    if layer is None:
      _predict_group(logits_fn, extra, group, idx, x, out, strategy, devices, mutant_chunk,
                     batch_size)
    else:
      _predict_group(_HeadFrom(clf.spec, layer), (clf.params, clf.state), group, idx, x, out,
                     strategy, devices, mutant_chunk, batch_size)
  return out


def _predict_shared_prefix(clf, mutants, n, x, strategy, mutant_chunk,
                           batch_size, modules: bool = True) -> np.ndarray:
  """``share_prefix`` on one device: for each input batch one jitted call
  computes the original's activation at every starting point in use once
  (XLA shares the common prefix of the ``features`` calls) and runs each
  group of mutants (:func:`start_groups`) from its own starting point, so
  no mutant starts earlier than it has to (``map``: ``lax.map`` over the
  group, no padding; ``vmap``: ``lax.map`` over chunks of ``mutant_chunk``
  vmapped mutants, the last chunk padded by repetition). The program depends
  on the group sizes: other mutants with other sizes compile again."""
  groups = start_groups(clf, mutants, x.shape, modules=modules)
  stacked = []
  for _, idx, signs in groups:
    take = np.arange(len(idx))
    if strategy == "vmap":
      k = -(-len(idx) // mutant_chunk)
      take = np.concatenate([take, np.zeros(k * mutant_chunk - len(idx), int)])
    g = (jax.tree.map(lambda a: a[idx[take]], mutants),
         None if signs is None else jnp.asarray(signs[take]))
    if strategy == "vmap":  # (chunks, mutant_chunk, ...)
      g = jax.tree.map(lambda a: a.reshape(-1, mutant_chunk, *a.shape[1:]), g)
    stacked.append(g)
  fn = _shared_predictor(clf.spec, tuple(start for start, _, _ in groups), strategy)
  preds = _batching.map_batches(fn, [x], batch_size=batch_size,
                                args=(tuple(stacked), (clf.params, clf.state)), devices=1)
  out = np.empty((n, len(x)), np.int32)
  for (_, idx, _), p in zip(groups, preds):  # (N, rows of the group, padding included)
    out[idx] = p[:, :len(idx)].T
  return out


def _labels(logits):
  """argmax labels; -1 marks a prediction from non-finite scores (argmax
  would say 0)."""
  out = jnp.argmax(logits, -1).astype(jnp.int32)
  return jnp.where(jnp.all(jnp.isfinite(logits), -1), out, -1)


def _start_inputs(spec, start: Start, extra, xb):
  """The original's activations a mutant starting at ``start`` needs:
  ``(h, io)``, ``h`` at ``start.layer`` (the input when ``None``) and ``io``
  the ``(inputs, output)`` of ``start.module`` (``None`` without one)."""
  h = xb if start.layer is None else _HeadFrom(spec, start.layer).prefix(extra, xb)
  if start.module is None:
    return h, None
  return h, spec.backend.module_io(extra[0], extra[1], xb, start.module)


def _start_logits(spec, start: Start, extra, p, signs, h, io):
  """Logits of the mutant ``p`` from the :func:`_start_inputs` ``(h, io)``;
  ``signs`` (+1/-1 per channel) for ``kind="negated"``."""
  state = extra[1]
  if start.module is None:
    if start.layer is None:
      return _ClassifierLogits(spec)(p, state, h)
    return _HeadFrom(spec, start.layer)(p, extra, h)
  args, out = io
  if start.kind == "negated":
    def replace(child, *a, **k):
      return out * signs.astype(out.dtype)
  else:
    def replace(child, *a, **k):
      return child(*args)
  return spec.backend.head_replacing(p, state, h, start.layer, _input_spec(spec, h),
                                     start.module, replace)


def _start_head(spec, start: Start, extra, xb):
  """``head(p, signs)``: a mutant's logits from ``start``, with the
  original's activations it needs computed here (once per program: XLA
  merges the common prefixes)."""
  h, io = _start_inputs(spec, start, extra, xb)
  return lambda p, s: _start_logits(spec, start, extra, p, s, h, io)


@functools.lru_cache(maxsize=32)
def _shared_predictor(spec, starts: tuple, strategy: str):
  """Jitted ``(groups, (original, state), x_batch) -> ((batch, rows of each
  group), ...)``: the labels of :func:`_predict_shared_prefix` (``-1`` where
  the scores are not finite); each group is ``(mutants, signs or None)``."""
  def run(groups, extra, xb):
    outs = []
    for start, g in zip(starts, groups):
      head = _start_head(spec, start, extra, xb)
      if strategy == "vmap":
        preds = jax.lax.map(
            lambda c, head=head: jax.vmap(lambda p, s: _labels(head(p, s)))(*c), g)
        preds = preds.reshape(-1, preds.shape[-1])
      else:
        preds = jax.lax.map(lambda c, head=head: _labels(head(*c)), g)
      outs.append(preds.T)
    return tuple(outs)
  return jax.jit(run)


def _predict_group(logits_fn, extra, mutants, rows, x, out, strategy, devices, mutant_chunk,
                   batch_size) -> None:
  """``out[rows] =`` the predictions of ``mutants`` (chunked, batched)."""
  n = len(rows)
  fn, place = _chunk_predictor(logits_fn, strategy, devices)
  for m0, m1 in _chunks(n, mutant_chunk):
    chunk = jax.tree.map(lambda a: a[m0:m1], mutants)
    pad = mutant_chunk - (m1 - m0)
    if pad:  # one compiled shape: repeat the first mutant
      chunk = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad, 0)]), chunk)
    chunk = place(chunk)  # on the devices once per chunk, not once per input batch
    # (n_chunk, batch) per call; the helper maps over the input axis.
    preds = _batching.map_batches(
        lambda c, e, xb: fn(c, e, xb).T, [x], batch_size=batch_size,
        args=(chunk, extra), devices=1)
    out[rows[m0:m1]] = preds.T[: m1 - m0]


def _check_logits_fn(logits_fn, extra, mutants, x) -> None:
  """``x`` must be a batch and the model must give ``(batch, classes)``."""
  if x.ndim < 2 or len(x) == 0:
    raise ValueError(f"x must be a non-empty batch of inputs (rank >= 2); got shape {x.shape}.")
  one = jax.tree.map(lambda a: a[0], mutants)
  k = min(len(x), 2)
  try:
    out = jax.eval_shape(logits_fn, one, extra,
                         jax.ShapeDtypeStruct((k, *x.shape[1:]), x.dtype))
  except Exception as e:  # noqa: BLE001 - re-raised with the shapes that matter
    raise ValueError(f"the model fails on inputs of shape {(k, *x.shape[1:])} "
                     f"(x has shape {x.shape}) with these mutants: "
                     f"{type(e).__name__}: {e}"[:500]) from e
  if len(out.shape) != 2 or out.shape[0] != k:
    raise ValueError(f"the model must return (batch, classes) logits; for x of "
                     f"shape {(k, *x.shape[1:])} it returns shape {out.shape}.")


@functools.lru_cache(maxsize=32)
def _chunk_predictor(logits_fn, strategy: str, devices: tuple):
  """``(jitted predictor, placement of a chunk)`` over ``devices``: the
  mutant axis split over them, the result gathered on every one (so every
  process can read all of it)."""
  def predict(p, extra, xb):
    return _labels(logits_fn(p, extra, xb))

  prefix = getattr(logits_fn, "prefix", None)  # shared by the chunk's mutants
  if strategy == "vmap":
    def local(chunk, extra, xb):
      h = xb if prefix is None else prefix(extra, xb)
      return jax.vmap(predict, in_axes=(0, None, None))(chunk, extra, h)
  else:
    def local(chunk, extra, xb):
      h = xb if prefix is None else prefix(extra, xb)
      return jax.lax.map(lambda p: predict(p, extra, h), chunk)
  if len(devices) == 1:
    return jax.jit(local), lambda chunk: chunk
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  mesh = Mesh(np.array(devices), ("mutants",))

  def gathered(chunk, extra, xb):
    return jax.lax.all_gather(local(chunk, extra, xb), "mutants", tiled=True)
  split = NamedSharding(mesh, P("mutants"))
  spans_processes = any(d.process_index != jax.process_index() for d in devices)

  def place(chunk):
    # Across processes each one gives its host copy of the (identical) chunk.
    if spans_processes:
      chunk = jax.tree.map(np.asarray, chunk)
    return jax.device_put(chunk, split)
  return (jax.jit(jax.shard_map(gathered, mesh=mesh, in_specs=(P("mutants"), P(), P()),
                                out_specs=P(), check_vma=False)), place)


def label_change_rate(model, mutants, x, *, params=None,
                      original_predictions=None, mutant_chunk: int = 10,
                      batch_size: int = 500, check_finite: bool = True) -> np.ndarray:
  """LCR of every input: the fraction of mutants whose label differs from
  the original model's (Wang et al., eq. 1).

  .. math:: \\mathrm{LCR}(x) = \\frac{1}{|M|} \\sum_{m \\in M} [m(x) \\ne f(x)]

  Args:
    model: the original :class:`~explicable_jax.models.Classifier` (its
      params are the original), or ``logits_fn(params, x)`` with ``params=``.
    mutants: the stacked mutant parameters (:func:`make_mutants`).
    x: ``(N, ...)`` inputs.
    params: the original parameters, for a ``logits_fn`` model only.
    original_predictions: ``f(x)`` if already known.
    mutant_chunk, batch_size: see :func:`mutant_predictions`.
    check_finite: raise ``ValueError`` naming the inputs that hold NaN or
      inf (default); with ``False`` their rate is NaN.

  Returns:
    ``(N,)`` rates in ``[0, 1]``; NaN where the original model's scores are
    not finite (never 0, the most trustworthy rate). A mutant whose scores are
    not finite counts as a change.
  """
  x = np.asarray(x)
  if check_finite and np.issubdtype(x.dtype, np.floating):
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if bad.size:
      raise ValueError(
          f"x holds NaN or inf in {bad.size} input(s), at indices "
          f"{', '.join(map(str, bad[:10]))}{', ...' if bad.size > 10 else ''}; clean them "
          "or pass check_finite=False (their label change rate is then NaN).")
  _, _, clf_params = _as_logits(model)
  if clf_params is not None:
    if params is not None:
      raise ValueError("params must not be given with a Classifier model (its "
                       "params are the original's).")
    params = clf_params
  elif params is None:
    raise ValueError("params (the original parameters) is required when model is "
                     "a logits_fn(params, x) function.")
  n = check_mutants(mutants, params)
  if original_predictions is None:
    single = jax.tree.map(lambda a: a[None], params)
    original_predictions = mutant_predictions(model, single, x, mutant_chunk=1,
                                              batch_size=batch_size)[0]
  elif np.shape(original_predictions) != (len(x),):
    raise ValueError(f"original_predictions must hold one label per input, shape ({len(x)},); "
                     f"got shape {np.shape(original_predictions)}.")
  preds = mutant_predictions(model, mutants, x, mutant_chunk=mutant_chunk,
                             batch_size=batch_size)
  original = np.asarray(original_predictions)
  rate = (preds != original[None, :]).sum(0) / n
  return np.where(original < 0, np.nan, rate)


class GateRejectedError(ValueError):
  """:func:`make_mutants` gave up: fewer than ``n`` of the ``drawn`` mutants
  passed the accuracy gate (``accepted`` did); the rate is too high."""

  def __init__(self, message: str, *, drawn: int, accepted: int):
    super().__init__(message)
    self.drawn, self.accepted = drawn, accepted


def make_mutants(key: jax.Array, model, n: int, operator, rate: float, *,
                 accuracy_fn: Callable[[Any], np.ndarray] | None = None,
                 min_relative_accuracy: float = 0.9, max_draws: int | None = None,
                 batch: int | None = None, **options):
  """``n`` mutants that pass the accuracy gate, as one stacked pytree.

  Mutants are drawn ``batch`` at a time (one vmapped call each); with
  ``accuracy_fn`` (stacked mutants -> ``(batch,)`` validation accuracies, e.g.
  built from :func:`mutant_predictions`), only mutants whose accuracy is at
  least ``min_relative_accuracy`` times the original's (``accuracy_fn`` of
  ``params`` itself) are kept, as Wang et al. and Wu et al. do, and more are
  drawn until ``n`` pass.

  Args:
    key: PRNG key; draw ``d`` uses ``fold_in(key, d)``.
    model: the trained :class:`~explicable_jax.models.Classifier` (its
      params are mutated) or the parameter pytree itself.
    n: mutants wanted.
    operator: ``"GF"``, ``"NAI"``, ``"WS"``, ``"NS"`` or an operator function.
    rate: the operator's mutation rate.
    accuracy_fn: the gate, or ``None`` to keep every mutant.
    min_relative_accuracy: the gate's threshold (0.9 in both papers).
    max_draws: give up after this many mutants drawn (default ``20 n``),
      raising :class:`GateRejectedError` (a ``ValueError``) that says the
      rate is too high and carries ``drawn`` and ``accepted``.
    batch: mutants per vmapped draw (default ``n``).
    **options: the operator's keyword options (``layers``, ``granularity``...).

  Returns:
    ``(mutants, info)``: the stacked pytree (leading axis ``n``) and a dict
    with ``drawn``, ``accepted``, ``original_accuracy`` and the kept
    mutants' ``accuracies``.
  """
  key = _validation.check_key("key", key, call="make_mutants(key, ...)")
  _validation.check_positive("n", n, integer=True)
  _validation.check_fraction("min_relative_accuracy", min_relative_accuracy)
  max_draws = 20 * n if max_draws is None else max_draws
  _validation.check_positive("max_draws", max_draws, integer=True)
  batch = n if batch is None else batch
  _validation.check_positive("batch", batch, integer=True)
  params = _params_of("model", model)
  kept, accs, drawn, draw = [], [], 0, 0
  original = None
  if accuracy_fn is not None:
    original = float(np.asarray(accuracy_fn(jax.tree.map(lambda a: a[None], params)))[0])
  while sum(len(a) for a in accs) < n and drawn < max_draws:
    m = mutate_many(jax.random.fold_in(key, draw), params, batch, operator, rate, **options)
    draw += 1
    drawn += batch
    if accuracy_fn is None:
      acc = np.full(batch, np.nan)
      ok = np.ones(batch, bool)
    else:
      acc = np.asarray(accuracy_fn(m), np.float64)
      ok = acc >= min_relative_accuracy * original
    sel = np.flatnonzero(ok)
    if sel.size:
      kept.append(jax.tree.map(lambda a: a[sel], m))
      accs.append(acc[sel])
  got = sum(len(a) for a in accs)
  if got < n:
    op_name = operator if isinstance(operator, str) else operator.__name__
    message = (
        f"rate={rate} is too high for operator {op_name}: only {got} of {drawn} mutants "
        f"kept {min_relative_accuracy:.0%} of the original accuracy {original:.4f} "
        f"(wanted n={n}); lower the rate or raise max_draws." if original is not None else
        f"only {got} mutants of operator {op_name} were drawn within max_draws={max_draws} "
        f"(wanted n={n}); raise max_draws.")
    raise GateRejectedError(message, drawn=drawn, accepted=got)
  stacked = jax.tree.map(lambda *a: jnp.concatenate(a)[:n], *kept)
  return stacked, {"drawn": drawn, "accepted": got, "original_accuracy": original,
                   "accuracies": np.concatenate(accs)[:n]}


def accuracy_gate(model, x, y, *, mutant_chunk: int = 10,
                  batch_size: int = 500) -> Callable:
  """An ``accuracy_fn`` for :func:`make_mutants`: the accuracy of every
  stacked mutant on ``(x, y)`` (a validation set). ``model``: a Classifier
  or ``logits_fn(params, x)``."""
  y = np.asarray(y)
  if y.ndim != 1 or len(y) != len(x):
    raise ValueError(f"y must hold one label per input of x ({len(x)}); got shape {y.shape}.")
  if len(y) and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0):
    raise ValueError(f"y must hold class indices (integers >= 0); got dtype {y.dtype}"
                     + (f" and minimum {y.min()}." if y.size else "."))

  def accuracy_fn(stacked):
    preds = mutant_predictions(model, stacked, x, mutant_chunk=mutant_chunk,
                               batch_size=batch_size)
    return (preds == y[None, :]).mean(axis=1)
  return accuracy_fn


# ---------------------------------------------------------------------------
# Wang et al.'s sequential probability ratio test.


def sprt_detect(label_changes, threshold: float, *, indifference: float | None = None,
                alpha: float = 0.05, beta: float = 0.05,
                decide_on_change_only: bool = True) -> dict[str, np.ndarray]:
  """Wang et al.'s SPRT detector over mutants, for every input at once.

  Examines mutants one by one and tests a high label change rate
  ``p_hi = threshold + indifference`` (suspicious: adversarial or wrong)
  against a low one ``p_lo = threshold - indifference``. After ``k``
  mutants with ``z`` label changes,

  .. math:: \\log \\Lambda_k = z \\log\\frac{p_{hi}}{p_{lo}}
            + (k - z) \\log\\frac{1 - p_{hi}}{1 - p_{lo}}

  The input is suspicious once ``log Λ >= log((1 - β) / α)`` and normal once
  ``log Λ <= log(β / (1 - α))``. As in Wang et al.'s ``Detector.detect``,
  the test is checked only after a mutant that changed the label
  (``decide_on_change_only``), and an input still undecided after all
  mutants counts as normal.

  Args:
    label_changes: ``(n_mutants, N)`` booleans, mutant ``m`` changed the
      label of input ``i`` (``mutant_predictions(...) != original``), in the
      order the mutants are examined.
    threshold: ``kappa_nor``, e.g. a multiple of the mean LCR of normal inputs.
    indifference: ``sigma``, half-width of the indifference region
      (default ``0.1 * threshold``).
    alpha, beta: error bounds of the test.
    decide_on_change_only: check the test after every mutant when False.

  Returns:
    ``{"suspicious": (N,) bool, "mutants_used": (N,) int, "decided": (N,) bool}``.
  """
  c = np.asarray(label_changes).astype(bool)
  if c.ndim != 2 or c.shape[0] < 1:
    raise ValueError(f"label_changes must be (n_mutants, N); got shape {c.shape}.")
  _validation.check_fraction("threshold", threshold, closed=False)
  indifference = 0.1 * threshold if indifference is None else indifference
  _validation.check_positive("indifference", indifference)
  p_hi, p_lo = threshold + indifference, threshold - indifference
  if not (0 < p_lo < p_hi < 1):
    raise ValueError(
        f"threshold +- indifference must lie in (0, 1); got {p_lo:g} and {p_hi:g}.")
  _validation.check_fraction("alpha", alpha, closed=False)
  _validation.check_fraction("beta", beta, closed=False)
  k = np.arange(1, c.shape[0] + 1)[:, None]
  z = np.cumsum(c, axis=0)
  llr = z * np.log(p_hi / p_lo) + (k - z) * np.log((1 - p_hi) / (1 - p_lo))
  suspicious_now = llr >= np.log((1 - beta) / alpha)
  normal_now = llr <= np.log(beta / (1 - alpha))
  stop = suspicious_now | normal_now
  if decide_on_change_only:
    stop &= c
  decided = stop.any(axis=0)
  first = np.where(decided, stop.argmax(axis=0), c.shape[0] - 1)
  cols = np.arange(c.shape[1])
  suspicious = decided & suspicious_now[first, cols]
  return {"suspicious": suspicious, "mutants_used": first + 1, "decided": decided}
