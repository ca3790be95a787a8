"""Saving and loading any :class:`~explicable_jax.models.Classifier`.

A saved model is a folder: ``weights/`` (orbax: ``params`` and
``model_state`` as plain nested dicts) and ``model.json``, which says how to
rebuild the structure: a registered builder's name and options (the zoo, or
:func:`~explicable_jax.models.register_model`), its input shape and classes.
A model adapted from an object the library cannot rebuild (an arbitrary
module or functions) is loaded into a template: ``load(path, like=clf)``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from explicable_jax import _paths, _plain
from explicable_jax.models.classifier import Classifier, as_classifier

__all__ = [
    "load", "model_folder", "read_meta", "save",
]


_to_plain, _from_plain, _abstract = _plain.to_plain, _plain.from_plain, _plain.abstract


def save(path: str | os.PathLike, model, *, meta: Mapping[str, Any] | None = None) -> None:
  """Writes ``model``'s weights and state (orbax) and ``model.json``.

  ``model.json`` holds the rebuild recipe when the classifier has one
  (``model``, ``model_kwargs``, ``input_shape``, ``num_classes``), the class
  names, the adapter and its split points, and ``meta``'s entries.
  """
  import orbax.checkpoint as ocp  # Host-side only.
  from explicable_jax import _paths
  _paths.check_folder("path", path)
  clf = as_classifier("model", model)
  recipe = json.loads(clf.spec.recipe) if clf.spec.recipe else {}
  info = {**recipe,
          "input_shape": list(clf.input_shape) if clf.input_shape else None,
          "class_names": list(clf.class_names) if clf.class_names else None,
          **clf.backend.describe(), "rebuild": bool(recipe)}
  try:
    info["num_classes"] = clf.num_classes
  except ValueError:
    info["num_classes"] = recipe.get("num_classes")
  if meta is not None and not isinstance(meta, Mapping):
    raise TypeError(f"meta must be a mapping of extra JSON fields; got {type(meta).__name__}.")
  try:
    extra = json.loads(json.dumps(dict(meta or {})))  # as model.json will hold it
  except (TypeError, ValueError) as e:
    raise TypeError(f"meta must hold JSON values (numbers, strings, lists, dicts); {e}. Convert "
                    "arrays with .tolist().") from None
  own = json.loads(json.dumps(info))  # tuples as lists, as model.json holds them
  clash = sorted(k for k, v in extra.items() if k in own and v != own[k])
  if clash:
    raise ValueError(
        f"meta may not change the fields models.save writes itself "
        f"({', '.join(map(repr, clash))}): the folder would not load. Set them on the model, "
        "or use other names.")
  info.update(extra)
  path = _paths.resolve(path)  # local (made absolute) or gs://, s3://
  if path.exists() and not path.is_dir():
    raise FileExistsError(f"path {os.fspath(path)!r} is a file; models.save needs a folder "
                          "(new or existing).")
  path.mkdir(parents=True, exist_ok=True)
  tree = {"params": _to_plain(clf.params), "model_state": _to_plain(clf.state or {})}
  with ocp.StandardCheckpointer() as ckptr:  # every process (orbax coordinates them)
    ckptr.save(path / "weights", tree, force=True)
  if jax.process_index() == 0:  # one writer of the plain file in a multi-process run
    _paths.write_text(path / "model.json", json.dumps(info, indent=2))


def model_folder(path: str | os.PathLike, *, name: str = "path") -> str:
  """The saved-model folder that ``path`` names, as an absolute path.

  ``path`` is either a folder written by :func:`save` (it holds
  ``model.json``) or a ``train`` workdir (its exported model is in
  ``model/``). Every command and script that takes a model folder resolves it
  here, so they accept the same things.

  Raises:
    FileNotFoundError: neither holds ``model.json``; the message names
      ``name`` (the argument) and the path given.
  """
  path = _paths.resolve(path)
  if (path / "model.json").exists():
    return os.fspath(path)
  if (path / "model" / "model.json").exists():
    return os.fspath(path / "model")
  raise FileNotFoundError(f"{name} {os.fspath(path)!r} is neither a train workdir nor a folder written by "
                          "explicable_jax.models.save (no model.json).")


def read_meta(path: str | os.PathLike) -> dict:
  """The ``model.json`` of a saved model folder."""
  if not isinstance(path, (str, os.PathLike)):
    raise TypeError(f"path must be a model folder (str or os.PathLike); got "
                    f"{type(path).__name__} (to copy a model in memory, use it as it is).")
  path = _paths.resolve(path)
  if not (path / "model.json").exists():
    raise FileNotFoundError(
        f"path must be a folder written by models.save, holding model.json and "
        f"weights/; {os.fspath(path)!r} has no model.json.")
  try:
    meta = json.loads((path / "model.json").read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"path {os.fspath(path)!r} holds a damaged model.json ({e}); save the "
                     "model again.") from None
  if not isinstance(meta, dict):
    raise ValueError(f"path {os.fspath(path)!r} holds a damaged model.json (a "
                     f"{type(meta).__name__}, not the saved record); save the model again.")
  return meta


def load(path: str | os.PathLike, *, like=None) -> Classifier:
  """The classifier saved in ``path``.

  Args:
    path: a folder written by :func:`save` (or ``training.save_model``).
    like: a classifier of the same architecture to load the weights into;
      needed when the folder has no rebuild recipe (a model adapted from your
      own module or functions without a registered builder).

  Raises:
    ValueError: the folder cannot be rebuilt (no recipe and no ``like``, or a
      builder that is not registered in this process), naming what is missing.
  """
  import orbax.checkpoint as ocp  # Host-side only.
  from explicable_jax.models import registry
  meta = read_meta(path)
  if like is not None:
    template = as_classifier("like", like)
  elif meta.get("model"):
    name = meta["model"]
    missing = [k for k in ("input_shape", "num_classes") if k not in meta]
    if missing:
      raise ValueError(f"path {os.fspath(path)!r} holds a damaged model.json: its recipe "
                       f"for model {name!r} lacks {', '.join(missing)}; save the model again "
                       "(or pass like= a classifier of the architecture).")
    if name not in registry.MODELS:
      raise ValueError(
          f"path {os.fspath(path)!r} holds a model built by {name!r}, which is not "
          f"registered in this process: call models.register_model({name!r}, "
          "builder) before loading, or pass like=.")
    template = registry.classifier(
        jax.random.key(0), name, input_shape=meta["input_shape"],
        num_classes=meta["num_classes"], class_names=meta.get("class_names"),
        **meta.get("model_kwargs", {}))
  else:
    raise ValueError(
        f"path {os.fspath(path)!r} was saved from a {meta.get('adapter', 'user')} "
        "model without a rebuild recipe: pass like=<a classifier of the same "
        "architecture> to load its weights, or build it with a builder "
        "registered through models.register_model.")
  abstract = {"params": _abstract(template.params),
              "model_state": _abstract(template.state or {})}
  weights = _paths.resolve(path) / "weights"
  if not weights.exists():
    raise ValueError(f"path {os.fspath(path)!r} has a model.json but no weights/ folder; "
                     "save the model again.")
  with ocp.StandardCheckpointer() as ckptr:
    try:
      stored = ckptr.metadata(weights)
      stored = getattr(getattr(stored, "item_metadata", stored), "tree", stored)
      leaves = jax.tree.leaves(stored, is_leaf=lambda m: hasattr(m, "shape"))
      if not isinstance(stored, Mapping) or not all(hasattr(m, "shape") for m in leaves):
        # A damaged or missing _METADATA / manifest gives back the step's
        # own metadata (no arrays) instead of the tree of array shapes.
        raise ValueError("no array metadata (the tree of stored arrays is missing)")
    except Exception as e:  # noqa: BLE001 - any failure here means unreadable
      raise ValueError(
          f"the weights in {os.fspath(path)!r} cannot be read (missing or damaged "
          f"metadata: {type(e).__name__}: {str(e)[:200]}); save the model again."
      ) from None
    wrong = _plain.mismatches(
        abstract, jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), stored,
                               is_leaf=lambda m: hasattr(m, "shape")))
    if wrong:
      raise ValueError(
          f"the weights in {os.fspath(path)!r} do not fit the template classifier's "
          f"structure: {'; '.join(wrong)}.")
    try:
      tree = ckptr.restore(weights, abstract)
    except Exception as e:  # noqa: BLE001 - shapes matched, so the data is damaged
      raise ValueError(
          f"the weights in {os.fspath(path)!r} have the right structure but cannot be "
          f"read: the file is damaged or truncated ({type(e).__name__}: "
          f"{str(e).splitlines()[0][:200]}); save or copy the model again.") from None
  params = _from_plain(template.params, tree["params"])
  state = (_from_plain(template.state, tree["model_state"])
           if template.state is not None else None)
  clf = Classifier(params, state, template.spec)
  names = meta.get("class_names")
  if names and clf.class_names is None:
    clf = clf.replace(class_names=names)
  return clf
