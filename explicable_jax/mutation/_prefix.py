"""Private: the prefix-sharing engine behind ``mutant_predictions(share_prefix=...)``.

A mutant that leaves the model's parameters up to a split point unchanged has
the original's activation there, so it can start from it (computed once per
input batch for every mutant). On a backend with sub-module starts
(:class:`~explicable_jax.models._protocols.SubModuleStarts`, the NNX backend)
a mutant also starts at its first changed ``Conv``/``Linear``: after it when
the change negates whole output channels (NAI: ``conv(x, -w) = -conv(x, w)``
exactly, the original's output with signs flipped), at it otherwise (the
changed module run on the original's input to it). The predictions are those
of each mutant's full forward pass (tested against them).

Everything here is private: the public entry point is
:func:`explicable_jax.mutation.mutant_predictions`.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _batching
from explicable_jax.mutation._common import (ClassifierLogits, abstract, check_mutants,
                                             classifier_or_none, labels)
from explicable_jax.mutation.operators import _leaves

__all__: list[str] = []  # private module


class LRU:
  """A mapping that forgets its least recently used entry beyond ``maxsize``
  (the analyses below hold a model's structure; a long session that adapts
  many models must not keep every one alive)."""

  def __init__(self, maxsize: int):
    self.maxsize = maxsize
    self._data: collections.OrderedDict = collections.OrderedDict()

  def get(self, key: Hashable, make: Callable[[], Any]):
    """``self[key]``, computed by ``make()`` when missing."""
    try:
      hash(key)
    except TypeError:  # an unhashable static part: no caching for it
      return make()
    if key in self._data:
      self._data.move_to_end(key)
      return self._data[key]
    value = make()
    self._data[key] = value
    if len(self._data) > self.maxsize:
      self._data.popitem(last=False)
    return value

  def __len__(self) -> int:
    return len(self._data)

  def clear(self) -> None:
    self._data.clear()


PREFIX_USES = LRU(16)   # model structure -> {split point: leaves its prefix reads}
MODULE_INFO = LRU(16)   # model structure -> {sub-module path: leaves its input reads}


def _structure_key(clf, x_spec) -> tuple:
  """What an analysis of ``clf`` on inputs like ``x_spec`` depends on: the
  static spec and the parameters' structure and shapes (not their values)."""
  leaves, treedef = jax.tree.flatten(clf.params)
  shapes = tuple((np.shape(a), str(jnp.asarray(a).dtype)) for a in leaves)
  return (clf.spec, treedef, shapes, tuple(x_spec.shape[1:]), str(x_spec.dtype))


def input_spec(spec, h):
  """The model input's shape for a batch of activations ``h`` (backends that
  run the unused prefix on a dummy need it), or ``None``."""
  shape = spec.input_shape
  if shape is None:
    return None
  return jax.ShapeDtypeStruct((jax.tree.leaves(h)[0].shape[0], *shape), jnp.float32)


@dataclasses.dataclass(frozen=True)
class HeadFrom:
  """A classifier's logits from ``layer`` on: ``prefix(extra, x)`` runs the
  unmutated prefix once with the original parameters, ``__call__(p, extra,
  h)`` the rest with a mutant's (``extra = (original params, state)``)."""
  spec: Any
  layer: str

  def prefix(self, extra, xb):
    original, state = extra
    return self.spec.backend.features(original, state, xb, self.layer)

  def __call__(self, p, extra, h):
    return self.spec.backend.head(p, extra[1], h, self.layer, input_spec(self.spec, h))


def changed_leaves(params, mutants, n: int) -> np.ndarray:
  """``(n, leaves)``: which parameter leaves each mutant changes."""
  return np.stack([np.asarray(m != p[None]).reshape(n, -1).any(1)
                   for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(mutants))], 1)


def prefix_uses(clf, x_spec) -> dict[str, np.ndarray]:
  """For every split point that cuts ``clf`` cleanly, which parameter leaves
  its prefix (``features`` up to the layer) reads, from the jaxpr; cached per
  model structure and input shape (:data:`PREFIX_USES`, bounded)."""
  from explicable_jax import _jaxpr

  def analyse():
    params = abstract(clf.params)
    n_leaves = len(jax.tree.leaves(params))
    uses = {}
    for layer in clf.layers:
      try:
        clf.spec.backend.check_split(clf.params, clf.state, layer, x_spec)
      except ValueError:  # a skip connection over the cut: not a starting point
        continue
      closed = jax.make_jaxpr(lambda p, xb, layer=layer: clf.spec.backend.features(
          p, clf.state, xb, layer))(params, x_spec)
      uses[layer] = np.asarray(_jaxpr.used_inputs(closed.jaxpr)[:n_leaves])
    return uses
  return PREFIX_USES.get(_structure_key(clf, x_spec), analyse)


def _x_spec(x_shape) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct((1, *x_shape[1:]), jnp.float32)


def split_starts(clf, changed: np.ndarray, x_shape) -> list[str | None]:
  """Each mutant's deepest clean split point (``None``: the input), from the
  ``(n, leaves)`` changed-leaf matrix: a mutant that changes none of the
  parameters the model reads up to a split point ``layer`` has the
  original's activation there."""
  uses = prefix_uses(clf, _x_spec(x_shape))
  start = [None] * len(changed)
  for layer, u in uses.items():  # in the model's order: the last clean one wins
    for i in np.flatnonzero(~(changed & u[None]).any(1)):
      start[i] = layer
  return start


def prefix_starts(model, mutants, x_shape) -> list[str | None]:
  """Where each mutant's forward pass can start: its deepest clean split
  point (``None``: the input)."""
  clf = classifier_or_none(model)
  n = check_mutants(mutants, clf.params)
  return split_starts(clf, changed_leaves(clf.params, mutants, n), x_shape)


def prefix_groups(model, mutants, x_shape) -> list[tuple[str | None, np.ndarray]]:
  """The mutants grouped by :func:`prefix_starts`: ``[(layer or None, mutant
  indices), ...]`` in the model's order."""
  start = prefix_starts(model, mutants, x_shape)
  order = [None] + list(prefix_uses(classifier_or_none(model), _x_spec(x_shape)))
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


def module_info(clf, x_spec, path: str):
  """``None`` when a mutant cannot start at the sub-module ``path`` (a
  backend without sub-module starts, not a Conv/Linear, called other than
  once, keyword inputs); else which parameter leaves its input reads."""
  from explicable_jax import _jaxpr
  from explicable_jax.models._protocols import SubModuleStarts
  backend = clf.spec.backend
  if not isinstance(backend, SubModuleStarts):
    return None
  per_model = MODULE_INFO.get(_structure_key(clf, x_spec), dict)
  if path not in per_model:
    info = None
    if (backend.linear_module(clf.params, clf.state, path)
        and backend.module_calls(clf.params, clf.state, path, x_spec) == 1):
      params = abstract(clf.params)
      try:
        closed = jax.make_jaxpr(lambda p, xb: backend.module_io(
            p, clf.state, xb, path)[0])(params, x_spec)
      except ValueError:
        closed = None
      if closed is not None:
        info = np.asarray(_jaxpr.used_inputs(closed.jaxpr)[:len(jax.tree.leaves(params))])
    per_model[path] = info
  return per_model[path]


def negation_signs(original: Sequence, mutant: Sequence) -> np.ndarray | None:
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
  clf = classifier_or_none(model)
  n = check_mutants(mutants, clf.params)
  x_spec = _x_spec(x_shape)
  paths, p_leaves, _ = _leaves(clf.params)
  m_leaves = jax.tree.leaves(mutants)
  changed = changed_leaves(clf.params, mutants, n)
  layer_of = split_starts(clf, changed, x_shape)
  uses = prefix_uses(clf, x_spec)
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
      info = module_info(clf, x_spec, mod)
      if info is None or (changed[i] & info).any():
        continue
      if info.sum() > best_uses:
        best, best_uses = mod, int(info.sum())
    start, s = Start(layer_of[i]), None
    if best is not None:
      idx = members[best]
      s = negation_signs([p_leaves[j] for j in idx], [m_leaves[j][i] for j in idx])
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


def start_inputs(spec, start: Start, extra, xb):
  """The original's activations a mutant starting at ``start`` needs:
  ``(h, io)``, ``h`` at ``start.layer`` (the input when ``None``) and ``io``
  the ``(inputs, output)`` of ``start.module`` (``None`` without one)."""
  h = xb if start.layer is None else HeadFrom(spec, start.layer).prefix(extra, xb)
  if start.module is None:
    return h, None
  return h, spec.backend.module_io(extra[0], extra[1], xb, start.module)


def start_logits(spec, start: Start, extra, p, signs, h, io):
  """Logits of the mutant ``p`` from the :func:`start_inputs` ``(h, io)``;
  ``signs`` (+1/-1 per channel) for ``kind="negated"``."""
  state = extra[1]
  if start.module is None:
    if start.layer is None:
      return ClassifierLogits(spec)(p, state, h)
    return HeadFrom(spec, start.layer)(p, extra, h)
  args, out = io
  if start.kind == "negated":
    def replace(child, *a, **k):
      return out * signs.astype(out.dtype)
  else:
    def replace(child, *a, **k):
      return child(*args)
  return spec.backend.head_replacing(p, state, h, start.layer, input_spec(spec, h),
                                     start.module, replace)


def start_head(spec, start: Start, extra, xb):
  """``head(p, signs)``: a mutant's logits from ``start``, with the
  original's activations it needs computed here (once per program: XLA
  merges the common prefixes)."""
  h, io = start_inputs(spec, start, extra, xb)
  return lambda p, s: start_logits(spec, start, extra, p, s, h, io)


@functools.lru_cache(maxsize=32)
def shared_predictor(spec, starts: tuple, strategy: str):
  """Jitted ``(groups, (original, state), x_batch) -> ((batch, rows of each
  group), ...)``: the labels of :func:`predict_shared_prefix` (``-1`` where
  the scores are not finite); each group is ``(mutants, signs or None)``."""
  def run(groups, extra, xb):
    outs = []
    for start, g in zip(starts, groups):
      head = start_head(spec, start, extra, xb)
      if strategy == "vmap":
        preds = jax.lax.map(
            lambda c, head=head: jax.vmap(lambda p, s: labels(head(p, s)))(*c), g)
        preds = preds.reshape(-1, preds.shape[-1])
      else:
        preds = jax.lax.map(lambda c, head=head: labels(head(*c)), g)
      outs.append(preds.T)
    return tuple(outs)
  return jax.jit(run)


def predict_shared_prefix(clf, mutants, n, x, strategy, mutant_chunk,
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
    if strategy == "vmap":  # (chunks, mutant_chunk): the last chunk padded
      take = _batching.pad_to_chunks(take, mutant_chunk)
    g = (jax.tree.map(lambda a: a[idx[take]], mutants),
         None if signs is None else jnp.asarray(signs[take]))
    stacked.append(g)
  fn = shared_predictor(clf.spec, tuple(start for start, _, _ in groups), strategy)
  preds = _batching.map_batches(fn, [x], batch_size=batch_size,
                                args=(tuple(stacked), (clf.params, clf.state)), devices=1)
  out = np.empty((n, len(x)), np.int32)
  for (_, idx, _), p in zip(groups, preds):  # (N, rows of the group, padding included)
    out[idx] = p[:, :len(idx)].T
  return out
