"""Every mutant's prediction on every input, and the label change rate.

Wang et al., "Adversarial Sample Detection for Deep Neural Network through
Model Mutation Testing" (ICSE 2019): inputs the model is unsure of change
label under far more mutants; the label change rate (LCR) measures it.

The code path (``lax.map`` or ``vmap`` over a chunk of mutants, and whether
mutants share the original's prefix) is chosen per platform in one place,
:func:`default_mutant_path`.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from explicable_jax import conventions
from explicable_jax import _batching, _validation
from explicable_jax.mutation import _prefix
from explicable_jax.mutation._common import (as_logits, check_mutants, chunks,
                                             classifier_or_none, labels)

__all__ = ["mutant_predictions", "label_change_rate", "default_mutant_path", "MutantPath",
           "STRATEGIES", "MESHES", "SHARE_PREFIX_MIN_PAIRS"]

STRATEGIES = ("auto", "map", "vmap")
MESHES = ("local", "global")
SHARE_PREFIX_MIN_PAIRS = 50_000
"""(mutant, input) pairs from which ``share_prefix=None`` shares on CPU."""


@dataclasses.dataclass(frozen=True)
class MutantPath:
  """How :func:`mutant_predictions` computes by default on one platform.

  Attributes:
    strategy: ``"map"`` (``lax.map`` over a chunk of mutants) or ``"vmap"``.
    share_prefix_min_pairs: ``share_prefix=None`` shares prefixes from this
      many (mutant, input) pairs on; ``None``: never by default (the plain
      batched path).
  """
  strategy: str
  share_prefix_min_pairs: int | None


# What jax.default_backend() names (cuda/rocm: the GPU plugins' own names).
PLATFORMS = ("cpu", "gpu", "tpu", "cuda", "rocm", "METAL")


def default_mutant_path(platform: str | None = None) -> MutantPath:
  """The default code path of :func:`mutant_predictions` on ``platform``.

  The one place where the mutant path depends on the platform. On CPU,
  today's measured choice: ``lax.map`` over the chunk (XLA:CPU runs the
  grouped convolutions of a ``vmap`` over kernels 5.8x slower, ResNet-20,
  ``python -m benchmarks.mutation --mutants 4 --images 200 --mutant-chunk 2
  --batch-size 100``) and prefix sharing from :data:`SHARE_PREFIX_MIN_PAIRS`
  pairs (1.29x the full passes, ``python -m benchmarks.mutation --images
  5000``; ``benchmarks/README.md``). On GPU and TPU, where both were never
  measured, the plain batched path: ``vmap`` over the chunk, no prefix
  sharing unless asked for (``share_prefix=True``); the accelerator
  benchmark ``python -m benchmarks.device`` measures every path there, and
  this function changes only on its numbers.

  Args:
    platform: ``"cpu"``, ``"gpu"``, ``"tpu"``...; default
      ``jax.default_backend()``.

  Returns:
    A :class:`MutantPath`.

  >>> default_mutant_path("cpu")
  MutantPath(strategy='map', share_prefix_min_pairs=50000)
  >>> default_mutant_path("gpu")
  MutantPath(strategy='vmap', share_prefix_min_pairs=None)
  """
  platform = jax.default_backend() if platform is None else platform
  _validation.check_choice("platform", platform, PLATFORMS)
  if platform == "cpu":
    return MutantPath("map", SHARE_PREFIX_MIN_PAIRS)
  return MutantPath("vmap", None)


def _predict_group(logits_fn, extra, mutants, rows, x, out, strategy, devices, mutant_chunk,
                   batch_size) -> None:
  """``out[rows] =`` the predictions of ``mutants`` (chunked, batched)."""
  n = len(rows)
  fn, place = _chunk_predictor(logits_fn, strategy, devices)
  for m0, m1 in chunks(n, mutant_chunk):
    chunk = jax.tree.map(lambda a: a[m0:m1], mutants)
    # One compiled shape: a last short chunk is padded (its extra rows dropped below).
    chunk = jax.tree.map(lambda a: _batching.pad_to(a, mutant_chunk), chunk)
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
    return labels(logits_fn(p, extra, xb))

  # A head from a split point: its prefix is shared by the chunk's mutants.
  prefix = logits_fn.prefix if isinstance(logits_fn, _prefix.HeadFrom) else None
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


@conventions.boundary(x="batch")
def mutant_predictions(model, mutants, x, *, mutant_chunk: int = 10,
                       batch_size: int = 500, strategy: str = "auto",
                       mesh: str = "local",
                       share_prefix: bool | str | None = None) -> np.ndarray:
  """Predicted classes of every mutant on every input, ``(n_mutants, N)``.

  .. math:: P_{m i} = \\arg\\max_c\\, f_{\\theta_m}(x_i)_c

  (``-1`` where the mutant's scores are not finite; Wang et al., ICSE 2019,
  evaluate every mutant of an ensemble on every input.) Each jitted call
  handles ``mutant_chunk`` mutants on ``batch_size`` inputs (the batches
  come from the library's one batching helper), so memory holds at most that
  many forward passes.

  With several devices the mutant axis of each chunk is split over them
  (``jax.shard_map``; ``mutant_chunk`` is rounded up to a multiple of the
  device count), and every process gets the whole result. ``mesh`` says
  which devices: ``"local"`` (default) this process's own, so in a
  multi-process run each process computes every mutant itself; ``"global"``
  every process's, so the mutants are split across processes (every process
  must call with the same arguments).

  ``share_prefix``: a mutant that leaves the model's parameters up to a
  split point unchanged (NAI and NS at low rates often do for the first
  blocks) starts there, from the original's activation, computed once per
  input batch for all mutants; on one device with an NNX model a mutant also
  starts *inside* the next stage, at its first changed convolution (an NAI
  mutant takes the original's output of it with the negated channels' signs
  flipped, ``conv(x, -w) = -conv(x, w)`` exactly; other operators run the
  changed convolution on the original's input to it). The computation is
  each mutant's own forward pass, so the predictions are the same (tested).
  ResNet-20, NAI rate 0.01, 100 mutants: see ``benchmarks/README.md``.

  Args:
    model: the :class:`~explicable_jax.models.Classifier` the mutants were
      drawn from (each mutant is ``clf.with_params(m)``), or a function
      ``logits_fn(params, x_batch) -> logits``.
    mutants: the stacked mutant parameters (leading axis ``n_mutants``).
    x: ``(N, ...)`` inputs.
    mutant_chunk: mutants per jitted call.
    batch_size: inputs per jitted call.
    strategy: ``"map"`` (``lax.map`` over the chunk, one mutant after the
      other), ``"vmap"`` (the chunk batched; a convolution with one kernel
      per mutant becomes a grouped convolution) or ``"auto"``, the
      platform's choice (:func:`default_mutant_path`).
    mesh: ``"local"`` or ``"global"`` (above).
    share_prefix: ``True`` (needs a Classifier with split points),
      ``"layers"`` (split points only), ``False``, or ``None`` (default):
      the platform's choice (:func:`default_mutant_path`; on CPU, shared
      for such a classifier on one device from
      :data:`SHARE_PREFIX_MIN_PAIRS` pairs, since the program, one per set
      of group sizes, takes seconds to compile).

  Returns:
    ``(n_mutants, N)`` int32 labels, ``-1`` for non-finite scores.

  >>> import jax, jax.numpy as jnp, numpy as np
  >>> from explicable_jax import mutation
  >>> params = {"dense": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)}}
  >>> logits_fn = lambda p, x: x @ p["dense"]["kernel"] + p["dense"]["bias"]
  >>> mutants = mutation.mutate_many(jax.random.key(0), params, 4, "NAI", 0.5, layers="kernels")
  >>> preds = mutant_predictions(logits_fn, mutants, np.eye(2, dtype=np.float32))
  >>> preds.shape, bool(((preds != [0, 1]).sum(1) == 1).all())  # one neuron negated each
  ((4, 2), True)
  """
  _validation.check_positive("mutant_chunk", mutant_chunk, integer=True)
  _validation.check_positive("batch_size", batch_size, integer=True)
  _validation.check_choice("strategy", strategy, STRATEGIES)
  _validation.check_choice("mesh", mesh, MESHES)
  if not (share_prefix is None or isinstance(share_prefix, bool) or share_prefix == "layers"):
    raise ValueError(f"share_prefix must be None, True, False or 'layers'; got {share_prefix!r}.")
  path = default_mutant_path()
  if strategy == "auto":
    strategy = path.strategy
  logits_fn, extra, original = as_logits(model)
  if original is not None:  # a Classifier: the mutants must match its params
    n = check_mutants(mutants, original)
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
  clf = classifier_or_none(model)
  if share_prefix is None:
    share_prefix = (clf is not None and bool(clf.layers) and ndev == 1
                    and path.share_prefix_min_pairs is not None
                    and n * len(x) >= path.share_prefix_min_pairs)
  if share_prefix and (clf is None or not clf.layers):
    raise ValueError(f"share_prefix={share_prefix!r} needs a models.Classifier with split "
                     f"points (layers); got {type(model).__name__}.")
  out = np.empty((n, len(x)), np.int32)
  if not share_prefix:
    _predict_group(logits_fn, extra, mutants, np.arange(n), x, out, strategy, devices,
                   mutant_chunk, batch_size)
    return out
  if ndev == 1:
    return _prefix.predict_shared_prefix(clf, mutants, n, x, strategy, mutant_chunk,
                                         batch_size, modules=share_prefix is True)
  # Mutants sorted by how deep they can start, cut into full chunks; a chunk
  # starts where its shallowest mutant can (no chunk is padded but the last).
  start = _prefix.prefix_starts(clf, mutants, x.shape)
  depth = {None: -1, **{layer: i for i, layer in enumerate(clf.layers)}}
  order = np.argsort([depth[s_] for s_ in start], kind="stable")
  for m0, m1 in chunks(n, mutant_chunk):
    idx = order[m0:m1]
    layer = start[idx[0]]
    group = jax.tree.map(lambda a: a[idx], mutants)
    if layer is None:
      _predict_group(logits_fn, extra, group, idx, x, out, strategy, devices, mutant_chunk,
                     batch_size)
    else:
      _predict_group(_prefix.HeadFrom(clf.spec, layer), (clf.params, clf.state), group, idx,
                     x, out, strategy, devices, mutant_chunk, batch_size)
  return out


_CHECKED_ROWS = 64
"""label_change_rate checks a given original_predictions on this many inputs."""


@conventions.boundary(x="batch", original_predictions="labels")
def label_change_rate(model, mutants, x, *, params=None,
                      original_predictions=None, mutant_chunk: int = 10,
                      batch_size: int = 500, check_finite: bool = True) -> np.ndarray:
  """LCR of every input: the fraction of mutants whose label differs from
  the original model's (Wang et al., ICSE 2019, eq. 1).

  .. math:: \\mathrm{LCR}(x) = \\frac{1}{|M|} \\sum_{m \\in M} [m(x) \\ne f(x)]

  Args:
    model: the original :class:`~explicable_jax.models.Classifier` (its
      params are the original), or ``logits_fn(params, x)`` with ``params=``.
    mutants: the stacked mutant parameters
      (:func:`~explicable_jax.mutation.make_mutants`).
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

  >>> import jax, jax.numpy as jnp, numpy as np
  >>> from explicable_jax import mutation
  >>> params = {"dense": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)}}
  >>> logits_fn = lambda p, x: x @ p["dense"]["kernel"] + p["dense"]["bias"]
  >>> mutants = mutation.mutate_many(jax.random.key(0), params, 4, "NAI", 0.5, layers="kernels")
  >>> lcr = label_change_rate(logits_fn, mutants, np.eye(2, dtype=np.float32), params=params)
  >>> float(lcr.sum())  # input i changes label exactly when neuron i is negated
  1.0
  """
  x = np.asarray(x)
  if x.ndim == 0 or len(x) == 0:
    raise ValueError(f"x must hold at least one example; got shape {x.shape}.")
  if check_finite and np.issubdtype(x.dtype, np.floating):
    bad = np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))
    if bad.size:
      raise ValueError(
          f"x holds NaN or inf in {bad.size} input(s), at indices "
          f"{', '.join(map(str, bad[:10]))}{', ...' if bad.size > 10 else ''}; clean them "
          "or pass check_finite=False (their label change rate is then NaN).")
  _, _, clf_params = as_logits(model)
  if clf_params is not None:
    if params is not None:
      raise ValueError("params must not be given with a Classifier model (its "
                       "params are the original's).")
    params = clf_params
  elif params is None:
    raise ValueError("params (the original parameters) is required when model is "
                     "a logits_fn(params, x) function.")
  # mutant_predictions checks a Classifier's mutants again, warning included.
  n = check_mutants(mutants, params, related=clf_params is None)
  if original_predictions is None:
    single = jax.tree.map(lambda a: a[None], params)
    original_predictions = mutant_predictions(model, single, x, mutant_chunk=1,
                                              batch_size=batch_size)[0]
  elif np.shape(original_predictions) != (len(x),):
    raise ValueError(f"original_predictions must hold one label per input, shape ({len(x)},); "
                     f"got shape {np.shape(original_predictions)}.")
  else:  # the model's own labels, checked on a few inputs (true labels are a common slip)
    rows = min(len(x), _CHECKED_ROWS)
    single = jax.tree.map(lambda a: a[None], params)
    own = np.asarray(mutant_predictions(model, single, x[:rows], mutant_chunk=1,
                                        batch_size=batch_size)[0])
    given = np.asarray(original_predictions)[:rows]
    differ = np.flatnonzero((own != given) & (own >= 0))
    if differ.size:
      raise ValueError(
          f"original_predictions must be the model's own labels f(x) (the LCR counts the "
          f"mutants that change them); they differ from its argmax on {differ.size} of the "
          f"first {rows} inputs (e.g. input {differ[0]}: {given[differ[0]]} given, "
          f"{own[differ[0]]} predicted): true labels? Drop original_predictions to have "
          "them computed.")
  preds = mutant_predictions(model, mutants, x, mutant_chunk=mutant_chunk,
                             batch_size=batch_size)
  broken = np.flatnonzero((np.asarray(preds) < 0).any(axis=1))
  if broken.size:  # a label change of a mutant with NaN scores is not a change of label
    import warnings
    warnings.warn(
        f"label_change_rate: {broken.size} of {n} mutants (first: {broken[:5].tolist()}) give "
        "non-finite scores on some inputs (NaN or inf weights?), counted as label changes: "
        "drop them (mutation.accuracy_gate refuses such mutants).",
        UserWarning, stacklevel=_validation.user_stacklevel())
  original = np.asarray(original_predictions)
  rate = (preds != original[None, :]).sum(0) / n
  return np.where(original < 0, np.nan, rate)
