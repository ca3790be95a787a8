"""Comparing a given params or state tree with a model's: the same leaf
paths, shapes and float kinds (:func:`check_same_tree`), the check behind
:meth:`~explicable_jax.models.Classifier.with_params` and
:meth:`~explicable_jax.models.Classifier.replace`."""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from explicable_jax import _validation


def _shape(x) -> tuple[int, ...]:
  shape = getattr(x, "shape", None)
  return tuple(shape) if shape is not None else tuple(np.shape(x))


def _leaf_paths(tree) -> dict[tuple, tuple[int, ...]]:
  """``{path: shape}`` with paths as tuples of keys, the ``.value`` of NNX
  variables dropped, so that ``nnx.State`` and its pure dict (which
  ``nnx.merge`` takes alike) have the same paths."""
  return {path: _shape(leaf) for path, leaf in _leaves_by_path(tree).items()}


def _leaves_by_path(tree) -> dict[tuple, Any]:
  """``{path: leaf}``, the paths of :func:`_leaf_paths`."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    keys = []
    for k in path:
      if isinstance(k, jax.tree_util.GetAttrKey):
        if k.name != "value":
          keys.append(k.name)
      elif isinstance(k, jax.tree_util.SequenceKey):
        keys.append(k.idx)
      else:
        keys.append(getattr(k, "key", str(k)))
    out[tuple(keys)] = leaf
  return out


def _show(name: str, path: tuple) -> str:
  return name + "".join(f"[{k!r}]" for k in path)


@_validation.named_check
def check_same_tree(name: str, given, expected) -> None:
  """Raises ``ValueError`` unless ``given`` has the leaf paths and shapes of
  ``expected`` (a model's params or state), naming the first path that
  differs with the expected and the given shape. Containers may differ where
  the paths agree (an ``nnx.State`` and its pure dict). Float leaves must
  stay float (integer weights would be truncated). Shapes and dtypes only: free
  under ``jit`` and ``vmap`` (a mutant inside ``vmap`` has the model's
  shapes)."""
  want, got = _leaf_paths(expected), _leaf_paths(given)
  missing = [p for p in want if p not in got]
  extra = [p for p in got if p not in want]
  if missing or extra:
    what = (f"the model's {_show(name, missing[0])} (shape {want[missing[0]]}) is missing from "
            "it" if missing else f"it has {_show(name, extra[0])}, which the model does not")
    raise ValueError(
        f"{name} must have the model's structure ({len(want)} arrays); got {len(got)} arrays, "
        f"and {what}. Pass a tree of the same model (its {name} of this architecture and "
        "size).")
  for path, shape in want.items():
    if got[path] != shape:
      raise ValueError(
          f"{_show(name, path)} must have the model's shape {shape}; got {got[path]} (a tree "
          "of another model size?).")
  # Float weights given as integers would be truncated (every logit 0): the
  # kind of number is part of the structure (shapes and dtypes, free under jit).
  given_leaves = _leaves_by_path(given)
  for path, leaf in _leaves_by_path(expected).items():
    want_dtype, got_dtype = getattr(leaf, "dtype", None), getattr(given_leaves[path], "dtype", None)
    if (want_dtype is not None and got_dtype is not None
        and jax.numpy.issubdtype(want_dtype, jax.numpy.floating)
        and not jax.numpy.issubdtype(got_dtype, jax.numpy.floating)):
      raise ValueError(
          f"{_show(name, path)} must hold floats as the model's ({want_dtype}); got dtype "
          f"{got_dtype} (weights rounded to integers? pass the float arrays).")
