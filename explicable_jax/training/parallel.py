"""Data parallelism: a ``"data"`` mesh, the jitted data-parallel step, batch
placement.

Multi-host: call ``jax.distributed.initialize()`` first on every host;
``jax.devices()`` then spans all hosts and the same code runs: every host
draws the same global batches (same seed) and transfers only its own rows
(:func:`shard_batch`). Tested with 2 and 4 processes on one machine
(``tests/test_multiprocess.py``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from explicable_jax import conventions

__all__ = [
    "data_mesh", "data_parallel", "process_rows", "replicate", "shard_batch",
]

Batch = Mapping[str, Any]


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``"data"`` over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else devices
  if isinstance(devices, (str, bytes)) or len(devices) == 0:
    raise ValueError(f"devices must be a non-empty list of devices (jax.devices()); got "
                     f"{devices!r}: a mesh over no device runs nothing.")
  return Mesh(np.asarray(devices), ("data",))


@conventions.boundary()
def data_parallel(step: Callable, mesh: Mesh | None = None, *,
                  donate: bool = True) -> Callable:
  """``jit`` of ``step(state, batch)`` with the state replicated and the batch
  split along its first axis over the mesh's ``"data"`` axis. Gradients are
  averaged across devices by the compiler (the loss is a mean over the
  global batch), so the result equals the single-device step."""
  mesh = data_mesh() if mesh is None else mesh
  if not isinstance(mesh, Mesh):
    raise TypeError(f"mesh must be a jax.sharding.Mesh with a 'data' axis "
                    f"(training.data_mesh()); got {type(mesh).__name__} {mesh!r}.")
  replicated = NamedSharding(mesh, P())
  sharded = NamedSharding(mesh, P("data"))
  return jax.jit(step, in_shardings=(replicated, sharded),
                 out_shardings=replicated,
                 donate_argnums=(0,) if donate else ())


def process_rows(mesh: Mesh, size: int) -> slice:
  """The rows of a global batch of ``size`` that this process's devices hold
  when the batch is split along the mesh's ``"data"`` axis (one contiguous
  block per process)."""
  sharding = NamedSharding(mesh, P("data"))
  rows = [idx[0] for idx in sharding.addressable_devices_indices_map((size,)).values()]
  start = min(r.start or 0 for r in rows)
  stop = max(size if r.stop is None else r.stop for r in rows)
  if sum((size if r.stop is None else r.stop) - (r.start or 0) for r in rows) != stop - start:
    raise ValueError("this process's devices do not hold one contiguous block of the batch; "
                     "order the mesh's devices by process (data_mesh() does).")
  return slice(start, stop)


def shard_batch(batch: Batch, mesh: Mesh, *, global_size: int | None = None) -> dict:
  """Places a host batch on the mesh, split along the first axis.

  ``batch`` is the global batch, the same on every process. In a
  multi-process run each process transfers only its own rows
  (:func:`process_rows`, ``jax.make_array_from_process_local_data``); with
  one process the whole batch is placed at once. With ``global_size``,
  ``batch`` holds this process's rows only (``data.batches(rows=...)``), of a
  global batch of that size."""
  if not isinstance(batch, Mapping):
    raise TypeError(f"batch must be the batch dict of data.batches ({{'x': ..., 'y': ..., "
                    f"'mask': ...}}); got {type(batch).__name__}.")
  n = mesh.devices.size
  local = global_size is not None
  size = global_size if local else len(next(iter(batch.values())))
  if size % n:
    raise ValueError(
        f"batch_size must be a multiple of the {n} devices for data parallelism; "
        f"got {size}.")
  sharding = NamedSharding(mesh, P("data"))
  if jax.process_count() == 1:
    return {k: jax.device_put(np.asarray(v), sharding) for k, v in batch.items()}
  rows = slice(None) if local else process_rows(mesh, size)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)[rows],
                                                     (size, *np.shape(v)[1:]))
          for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
  """Places a pytree on every device of the mesh, in new buffers (the
  train step donates its input, so the caller's arrays must not be reused)."""
  return jax.device_put(tree, NamedSharding(mesh, P()), may_alias=False)

