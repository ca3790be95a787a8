"""What every audit section reads: the model, the split, its predictions, the caches.

:func:`prepare` builds an :class:`AuditContext` from the model, the output
folder and an :class:`~explicable_jax.app.audit.AuditConfig`; the parts only
some sections need (the similarity matrix, the annotation masks, the
reference's predictions, the predictions themselves) are computed the first
time a section asks for them.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _paths, data, models
from explicable_jax.app import reporting
from explicable_jax.app.audit.config import SIMILARITIES, AuditConfig, check_similarity
from explicable_jax.detection import pipeline

__all__ = ["AuditContext", "prepare", "similarity_matrix", "load_annotations", "checksum"]


class Cache:
  """Each stage's output in ``folder``, named by the stage and a hash of its
  settings: a rerun reads it back, other settings never see it."""

  def __init__(self, folder: str, base: Mapping):
    self.folder = folder
    self.base = dict(base)
    os.makedirs(folder, exist_ok=True)

  def _path(self, name, settings, ext):
    h = hashlib.sha1(json.dumps({**self.base, **settings}, sort_keys=True,
                                default=str).encode()).hexdigest()[:12]
    return os.path.join(self.folder, f"{name}-{h}{ext}")

  def arrays(self, name: str, settings: Mapping, fn: Callable[[], dict]) -> dict:
    """``fn()``'s arrays, computed once per ``settings``."""
    return reporting.cached_arrays(self._path(name, settings, ".npz"), fn)

  def json(self, name: str, settings: Mapping, fn: Callable[[], dict]) -> dict:
    """``fn()``'s JSON dict, computed once per ``settings``."""
    return reporting.cached_json(self._path(name, settings, ".json"), fn)


def checksum(clf) -> str:
  """SHA-1 of a classifier's parameters and state."""
  h = hashlib.sha1()
  for v in jax.tree.leaves((clf.params, clf.state)):
    a = np.asarray(jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key)
                   else v)
    h.update(str(a.shape).encode() + a.tobytes())
  return h.hexdigest()


def _resolve_model(name: str, model):
  """A Classifier from a Classifier (or anything the contract adapts) or a
  folder (train workdir or ``models.save``); its folder or None."""
  if isinstance(model, (str, os.PathLike)):
    path = models.model_folder(model, name=name)
    return models.load(path), path
  return models.as_classifier(name, model), None


def _class_names(classes, clf, dataset_names, num_classes):
  if classes is None:
    classes = clf.class_names or dataset_names
  if classes is None:
    return None
  classes = [str(c) for c in classes]
  if len(classes) != num_classes:
    raise ValueError(f"classes must name the model's {num_classes} classes; got "
                     f"{len(classes)}: {classes}.")
  return classes


def similarity_matrix(kind, class_names, *, dataset: str | None, data_dir: str | None,
                      seed: int = 0, num_classes: int) -> tuple[np.ndarray, str]:
  """The ``(C, C)`` class-similarity matrix ``W`` the audit scores mistakes
  with, and where it came from.

  ``ekl``: WordNet path similarity of the class names (CIFAR-10's names map
  to the curated synsets of :data:`explicable_jax.similarity.CIFAR10_SYNSETS`);
  ``ihl``: CIFAR-10H's soft labels on the *validation* half
  (:func:`~explicable_jax.similarity.from_soft_labels`), so nothing of the
  test half enters; ``chl``: Olmo et al.'s 0-4 class ratings divided by 4;
  a path: an ``.npy`` of shape ``(C, C)``; an array: itself.

  Raises:
    explicable_jax.similarity.WordNetNotFoundError: ``ekl`` without the
      WordNet corpus; the message says how to get it, or what to give instead.
  """
  from explicable_jax import similarity as sim
  if not isinstance(kind, str):
    return sim.check_weight_matrix("similarity", kind, num_classes), "a matrix given in Python"
  check_similarity(kind, dataset)
  if kind not in SIMILARITIES:
    w = sim.check_weight_matrix("similarity", np.load(kind, allow_pickle=False), num_classes)
    return w, f"the matrix in {kind}"
  if kind == "ihl":
    test = data.load("cifar10", "test", data_dir=data_dir)
    val = data.paper_split_indices(len(test), seed=seed)["validation"]
    probs = data.load_human_labels("cifar10h", data_dir=data_dir)
    return (sim.from_soft_labels(probs[val], test.y[val], 10),
            "IHL: CIFAR-10H soft labels of the validation half (Peterson et al.)")
  if kind == "chl":
    return (sim.from_ratings(data.load_human_labels("cifar10_chl", data_dir=data_dir)),
            "CHL: Olmo et al.'s 0-4 class ratings / 4")
  if class_names is None:
    raise ValueError("similarity='ekl' needs class names: give classes=[...] (--classes), or "
                     "save the model with class_names.")
  _load_wordnet(data_dir)
  names = [sim.CIFAR10_SYNSETS.get(c, c) for c in class_names]
  return (sim.wordnet_similarity(names, metric="path", data_dir=data_dir),
          "EKL: WordNet 3.0 path similarity of the class names")


def _load_wordnet(data_dir: str | None) -> None:
  """Loads WordNet (installed, in the data folder, or downloaded when the
  network is reachable, quietly); else one ``WordNetNotFoundError`` line that
  says how to get it and what to give instead."""
  import contextlib
  import io
  from explicable_jax import similarity as sim
  try:
    sim.wordnet(data_dir, download=False)
    return
  except sim.WordNetNotFoundError as e:
    error = e
  if data.network_reachable("raw.githubusercontent.com"):
    # nltk reports a failed download on stderr; the error below says it once.
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
      try:
        sim.wordnet(data_dir, download=True)
        return
      except sim.WordNetNotFoundError as e:
        error = e
  first = str(error).splitlines()[0].rstrip(".")
  raise sim.WordNetNotFoundError(
      f"similarity='ekl' (the default) needs the WordNet corpus: {first}; or give "
      "another similarity (--similarity FILE.npy, a (C, C) matrix).")


def load_annotations(path, splits, index):
  """The annotation masks of the test half, ``(N, H, W, C)`` floats in [0, 1]."""
  if path is None:
    return None
  if not os.path.exists(path):
    raise FileNotFoundError(f"annotations file {path!r} does not exist.")
  _paths.check_npz("annotations", path, "an array 'mask' (the annotation masks)")
  with np.load(path, allow_pickle=False) as f:
    if "mask" not in f.files:
      raise ValueError(f"annotations file {path!r} must hold an array 'mask'; it holds "
                       f"{', '.join(f.files) or 'nothing'}.")
    mask = np.asarray(f["mask"], np.float32)
  x = splits["test"][0]
  shape = x.shape[1:]
  if mask.shape in (shape, shape[:-1]):
    mask = np.broadcast_to(mask.reshape(shape[:-1] + (-1,)), shape)[None]
    return np.broadcast_to(mask, x.shape)
  if mask.ndim == x.ndim - 1 and mask.shape[1:] == shape[:-1]:
    mask = mask[..., None]  # (N, H, W): one mask per image, every channel
  if mask.ndim == x.ndim and mask.shape[1:] in (shape, shape[:-1] + (1,)):
    if mask.shape[0] != index["num_test"]:
      raise ValueError(f"annotations 'mask' has {mask.shape[0]} masks; expected one per test "
                       f"image ({index['num_test']}) or one {shape} mask for all.")
    return np.broadcast_to(mask[index["test"]], x.shape)
  raise ValueError(f"annotations 'mask' must have shape {shape} or {shape[:-1]} (one mask "
                   f"for all images) or (num_test, *{shape}) (one per test image); got "
                   f"{mask.shape}.")


@dataclasses.dataclass(eq=False)
class AuditContext:
  """The shared inputs of the sections (built by :func:`prepare`).

  Attributes:
    config: the :class:`~explicable_jax.app.audit.AuditConfig`.
    clf, model_path: the model and its folder (``None`` in memory).
    reference, reference_path: the reference model (or ``None``) and its folder.
    splits: ``{"train" (first train_limit), "validation", "test": (x, y)}``.
    index: where the test half lies in the test set (annotations per image).
    data_note: where the data came from.
    class_names: the class names given or found (or ``None``).
    layer: the split point for conductance and insecurities (or ``None``).
    cache: the stage cache under ``out/cache``.
    say: prints progress (or nothing).
    key: ``jax.random.key(config.seed)``; each section folds in its own streams.
    names: the class names (``"0"``, ``"1"``... when none are known).
    artifacts: what a section's ``run`` leaves for its ``figure`` (arrays
      that do not belong in ``results.json``), by section name.
    results: the numbers of the sections run so far, by name (a later
      section may build on an earlier one's, e.g. the mutation rate that the
      detection section chose: ``results["detection"]["rate"]``).
  """
  config: AuditConfig
  clf: Any
  model_path: str | None
  reference: Any
  reference_path: str | None
  splits: dict
  index: dict
  data_note: str
  class_names: list[str] | None
  layer: str | None
  cache: Cache
  say: Callable
  key: jax.Array = dataclasses.field(init=False)
  names: list[str] = dataclasses.field(init=False)
  artifacts: dict = dataclasses.field(init=False, default_factory=dict)
  results: dict = dataclasses.field(init=False, default_factory=dict)
  t0: float = dataclasses.field(init=False, default_factory=time.time)

  def __post_init__(self):
    self.key = jax.random.key(self.config.seed)
    self.names = self.class_names or [str(i) for i in range(self.clf.num_classes)]

  def elapsed(self) -> float:
    """Seconds since the audit started."""
    return time.time() - self.t0

  @functools.cached_property
  def logits(self) -> dict[str, np.ndarray]:
    """The model's logits of every split (cached)."""
    return {k: self.cache.arrays(f"logits_{k}", {}, lambda x=x: {
        "logits": pipeline.predict_logits(self.clf, x)})["logits"]
        for k, (x, _) in self.splits.items()}

  @functools.cached_property
  def predictions(self) -> dict[str, np.ndarray]:
    return {k: v.argmax(-1) for k, v in self.logits.items()}

  @functools.cached_property
  def wrong(self) -> dict[str, np.ndarray]:
    """Whether each prediction is wrong, per split."""
    return {k: self.predictions[k] != self.splits[k][1] for k in self.splits}

  @functools.cached_property
  def similarity(self) -> tuple[np.ndarray, str]:
    """``(W, where it came from)``: :func:`similarity_matrix` of the config."""
    c = self.config
    return similarity_matrix(c.similarity, self.class_names, dataset=c.dataset,
                             data_dir=c.data_dir, seed=c.seed,
                             num_classes=self.clf.num_classes)

  @functools.cached_property
  def mask(self) -> np.ndarray | None:
    """The annotation masks of the test half, or ``None`` without annotations."""
    return load_annotations(self.config.annotations, self.splits, self.index)

  @functools.cached_property
  def reference_predictions(self) -> np.ndarray | None:
    """The reference model's predictions on the test half, or ``None``."""
    if self.reference is None:
      return None
    return self.cache.arrays("reference_logits", {"reference": checksum(self.reference)},
                             lambda: {"logits": pipeline.predict_logits(
                                 self.reference, self.splits["test"][0])})["logits"].argmax(-1)


def prepare(model, out: str, config: AuditConfig, say: Callable) -> AuditContext:
  """The context of an audit of ``model`` into ``out`` under ``config``
  (validated): the model and reference loaded, the split loaded and its labels
  checked, the class names, the layer, the cache keyed by the weights."""
  clf, model_path = _resolve_model("model", model)
  ref, ref_path = ((None, None) if config.reference is None
                   else _resolve_model("reference", config.reference))
  c = config
  if c.data_file is not None:
    _paths.check_npz("data_file", c.data_file, "x_train, y_train, x_test and y_test")
  splits, data_note, index = pipeline.load_splits(c.dataset, c.data_file, c.data_dir, c.seed,
                                                  c.limit, with_index=True)
  pipeline.check_split_labels(splits, clf.num_classes, dataset=c.dataset,
                              data_file=c.data_file)
  # The training set serves the conductance detector (and the reliance fill
  # value) only: its first train_limit images.
  splits["train"] = tuple(a[:c.train_limit] for a in splits["train"])
  ds_names = None
  if c.dataset is not None:
    ds_names = data.load(c.dataset, "test", data_dir=c.data_dir).class_names
  names = _class_names(c.classes, clf, ds_names, clf.num_classes)
  if ref is not None and ref.num_classes != clf.num_classes:
    raise ValueError(f"reference has {ref.num_classes} classes; the model has "
                     f"{clf.num_classes}.")
  model_sum = checksum(clf)  # the cache key below, and the reference's comparison
  if ref is not None and checksum(ref) == model_sum:
    raise ValueError(f"reference must be another model to compare the audited one with; "
                     f"{ref_path or 'it'} has the model's own weights, so every comparison "
                     "would be a tie: pass the baseline model (e.g. one trained with plain "
                     "cross-entropy), or drop reference.")
  layer = c.layer
  if layer is None:
    layer = pipeline.default_layer(clf, splits["test"][0])
  elif layer not in clf.layers:
    clf.check_layer(layer)
  # The caches are keyed by the weights themselves (a model retrained into the
  # same folder never meets the old model's cached numbers).
  data_id = c.dataset
  if c.data_file is not None:
    with open(c.data_file, "rb") as fh:
      data_id = hashlib.sha1(fh.read()).hexdigest()
  cache = Cache(os.path.join(out, "cache"), {"model": model_sum, "data": data_id,
                                             "seed": c.seed, "limit": c.limit,
                                             "train_limit": c.train_limit})
  return AuditContext(config=config, clf=clf, model_path=model_path, reference=ref,
                      reference_path=ref_path, splits=splits, index=index,
                      data_note=data_note, class_names=names, layer=layer, cache=cache,
                      say=say)
