"""Pytrees as plain numpy arrays for orbax, and back: the one place that
knows how model state that is not an array (``nnx.State``, typed PRNG keys of
dropout layers' streams) is written and read."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "abstract", "from_plain", "mismatches", "to_plain",
]


def _is_key(x) -> bool:
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_plain(tree):
  """A checkpointable tree: ``nnx.State`` to dicts, PRNG keys to their data."""
  from flax import nnx
  if isinstance(tree, nnx.State):
    tree = nnx.to_pure_dict(tree)

  def leaf(x):
    if _is_key(x):
      return np.asarray(jax.random.key_data(x))
    return np.asarray(x)
  return jax.tree.map(leaf, jax.device_get(tree))


def from_plain(template, restored):
  """``restored`` (plain arrays) in ``template``'s structure and key types."""
  from flax import nnx

  def leaf(t, r):
    if _is_key(t):
      return jax.random.wrap_key_data(jnp.asarray(r), impl=jax.random.key_impl(t))
    return jnp.asarray(r)
  if isinstance(template, nnx.State):
    pure = jax.tree.map(leaf, nnx.to_pure_dict(template), restored)
    out = jax.tree.map(lambda x: x, template)
    nnx.replace_by_pure_dict(out, pure)
    return out
  return jax.tree.map(leaf, template, restored)


def abstract(tree):
  """Zeros of ``to_plain(tree)``'s shapes and dtypes: orbax's restore target."""
  return jax.tree.map(lambda x: np.zeros(np.shape(x), x.dtype), to_plain(tree))


def mismatches(template, restored, *, limit: int = 5) -> list[str]:
  """The leaves whose shape or dtype differ between two plain trees (paths
  named), at most ``limit`` of them."""
  def flat(tree):  # Paths with every key as a string: orbax stores list indices as "0".
    return {tuple(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                  for k in path): x
            for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}
  out = []
  flat_t, flat_r = flat(template), flat(restored)
  for path in flat_t:
    t, r = flat_t[path], flat_r.get(path)
    name = "".join(f"[{p!r}]" for p in path)
    if r is None:
      out.append(f"{name}: missing from the checkpoint")
    elif np.shape(t) != np.shape(r) or np.asarray(t).dtype != np.asarray(r).dtype:
      out.append(f"{name}: {np.shape(r)} {np.asarray(r).dtype} in the checkpoint, "
                 f"{np.shape(t)} {np.asarray(t).dtype} in this model")
    if len(out) >= limit:
      break
  return out
