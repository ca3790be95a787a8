"""The one host-side batching helper: a padded, jitted map over a batch axis.

:func:`map_batches` cuts host arrays into batches of one size (the last one
padded by :func:`pad_to`, the padding cut off the outputs), so a
jitted function compiles once per shape, however many examples and calls;
with several local devices each batch is split over them along a ``"data"``
mesh axis. Every loop over examples in the library (evaluation, prediction,
mutant predictions, robustness, input gradients) goes through it.

Pass a module-level (or otherwise long-lived) jitted function and give it
what changes (the classifier, its params) as arguments: a closure made per
call would compile per call and keep its arrays alive in the cache.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from explicable_jax import _validation

__all__ = [
    "local_copy", "map_batches", "pad_to", "pad_to_chunks",
]


def _mesh(n: int):
  from jax.sharding import Mesh
  return Mesh(np.asarray(jax.local_devices()[:n]), ("data",))


def local_copy(tree):
  """``tree`` with every array that is replicated over other processes'
  devices too replaced by this process's own replica of it, so that a
  computation on local devices can use it (the state of a multi-process
  ``fit`` is replicated on every device of every process). An array split
  across processes is left as it is: it has no local replica, and the
  function it is given to must run on a mesh that spans the processes
  (``mutant_predictions(mesh="global")``)."""
  def local(a):
    if (isinstance(a, jax.Array) and not a.is_fully_addressable
        and a.sharding.is_fully_replicated):
      return a.addressable_data(0)
    return a
  return jax.tree.map(local, tree)


def pad_to(x: Any, size: int, fill: Any = None) -> Any:
  """``x`` with rows appended up to ``size`` rows: the one padding rule of the
  library's batched and chunked loops, whose callers drop the padded rows'
  results or give them zero weight.

  Args:
    x: an ``(n, ...)`` numpy or jax array, ``n >= 1`` when ``fill`` is ``None``.
    size: the number of rows wanted; ``x`` is returned as it is when it has
      that many or more.
    fill: the padding rows' value; ``None`` repeats the last row (a real
      input, so the padded rows compute what the real ones do).

  Returns:
    ``(max(n, size), ...)``, numpy for numpy ``x``, jax for jax ``x``.

  Example:
    >>> pad_to(np.array([1, 2, 3]), 5).tolist()
    [1, 2, 3, 3, 3]
  """
  if len(x) >= size:
    return x
  xp = jax.numpy if isinstance(x, jax.Array) else np
  pad = size - len(x)
  extra = (xp.repeat(x[-1:], pad, axis=0) if fill is None
           else xp.full((pad,) + tuple(x.shape[1:]), fill, x.dtype))
  return xp.concatenate([x, extra])


def pad_to_chunks(x: Any, chunk: int, fill: Any = None) -> Any:
  """``x`` ``(n, ...)`` padded (:func:`pad_to`) to a whole number of chunks and
  reshaped to ``(ceil(n / chunk), chunk, ...)``.

  Example:
    >>> pad_to_chunks(np.arange(5), 2, fill=-1).tolist()
    [[0, 1], [2, 3], [4, -1]]
  """
  n_chunks = -(-len(x) // chunk)
  x = pad_to(x, n_chunks * chunk, fill)
  return x.reshape((n_chunks, chunk) + tuple(x.shape[1:]))


def map_batches(fn: Callable, inputs: Sequence[Any], *, batch_size: int,
                args: Sequence[Any] = (), devices: int | None = None,
                to_host: bool = True, across_processes: bool = False):
  """``fn(*args, *batch)`` over the rows of ``inputs``, concatenated.

  Args:
    fn: a jitted function whose outputs are arrays (or a pytree of them) with
      the batch as their first axis.
    inputs: host arrays (numpy) with the same number of rows.
    batch_size: rows per call; fewer rows than this run as one unpadded call,
      more are padded to a whole number of batches so only one shape compiles.
    args: leading arguments passed to every call unchanged (a classifier).
    devices: local devices to split each batch over (default: all local
      devices when ``batch_size`` is a multiple of their count, else one).
    to_host: return numpy arrays (default) rather than device arrays.
    across_processes: in a multi-process run, split the rows across the
      processes (each computes a contiguous ``1/P`` share on its own devices)
      and gather every share on every process
      (``multihost_utils.process_allgather``); every process must call it
      with the same inputs. Ignored with one process. Implies ``to_host``.

  Returns:
    ``fn``'s outputs for every row, in order (numpy when ``to_host``).
  """
  _validation.check_positive("batch_size", batch_size, integer=True)
  if any(isinstance(a, jax.core.Tracer) for a in inputs):
    raise TypeError(
        "the inputs are traced (this was called inside jax.jit, vmap or grad), but "
        "batching over a data set runs on the host and cannot be traced: call it outside "
        "jit, and inside jit call the model itself (clf.logits(x)).")
  args = local_copy(tuple(args))
  inputs = [np.asarray(a) for a in inputs]
  if not inputs:
    raise ValueError("inputs must hold at least one array.")
  n = len(inputs[0])
  for i, a in enumerate(inputs):
    if a.ndim == 0 or len(a) != n:
      raise ValueError(
          f"inputs must have the same number of rows; input {i} has shape "
          f"{a.shape}, input 0 has {n} rows.")
  if n == 0:
    raise ValueError("inputs are empty (0 rows); nothing to compute.")
  if across_processes and jax.process_count() > 1:
    return _split_across_processes(fn, inputs, batch_size=batch_size, args=args,
                                   devices=devices)
  size = min(batch_size, n)
  if devices is None:  # all local devices when they divide the batch, else one
    ndev = jax.local_device_count()
    ndev = ndev if size % ndev == 0 else 1
  else:
    ndev = int(devices)
    if size % ndev:
      raise ValueError(f"batch_size must be a multiple of the {ndev} devices; got {size}.")
  place = lambda a: a
  if ndev > 1:
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = _mesh(ndev)
    sharded, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    args = jax.device_put(tuple(args), replicated)
    place = lambda a: jax.device_put(a, sharded)
  outs = []
  for start in range(0, n, size):
    batch = [pad_to(a[start:start + size], size) for a in inputs]
    out = fn(*args, *(place(b) for b in batch))
    keep = min(size, n - start)
    out = jax.tree.map(lambda o: o[:keep], out)
    outs.append(jax.device_get(out) if to_host else out)
  concat = np.concatenate if to_host else jax.numpy.concatenate
  return jax.tree.map(lambda *parts: concat(parts), *outs)


def _split_across_processes(fn, inputs, *, batch_size, args, devices):
  """``map_batches`` with the rows split across processes, then gathered."""
  from jax.experimental import multihost_utils
  n, count, index = len(inputs[0]), jax.process_count(), jax.process_index()
  share = -(-n // count)
  lo, hi = min(index * share, n), min((index + 1) * share, n)
  # A process whose share is empty (fewer rows than processes) computes row 0
  # and discards it, so every process takes part in the gather.
  rows = [a[lo:hi] if hi > lo else a[:1] for a in inputs]
  out = map_batches(fn, rows, batch_size=batch_size, args=args, devices=devices)
  out = jax.tree.map(lambda o: pad_to(o, share) if hi > lo else np.repeat(o, share, 0), out)
  gathered = multihost_utils.process_allgather(out, tiled=True)  # (count * share, ...)
  return jax.tree.map(lambda g: np.asarray(g)[:n], gathered)
