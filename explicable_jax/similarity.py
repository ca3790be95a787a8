"""Class-similarity matrices: how explicable it is to mistake class i for j.

Olmo, Sengupta and Kambhampati, "Not all Failure Modes are Created Equal:
Training Deep Neural Networks for Explicable (Mis)Classification" (2020),
build a matrix ``W`` (row = true class, column = predicted class, larger =
more explicable) in three ways, all here:

* **IHL** (instance-level human labels): :func:`from_soft_labels`, the mean
  human soft label per true class (CIFAR-10H).
* **CHL** (class-level human labels): :func:`from_ratings`, a Likert rating
  of each (true, predicted) pair (the authors' published CIFAR-10 ratings).
* **EKL** (expert knowledge labels): :func:`wordnet_similarity`, WordNet
  path / Wu-Palmer / Leacock-Chodorow similarity between class synsets.

Host-side code (nltk, numpy): it runs once and hands numpy arrays to the
jitted losses in :mod:`explicable_jax.losses`.
"""
from __future__ import annotations

import difflib
import os
import warnings
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _validation

__all__ = [
    "AUTHORS_KINDS", "CIFAR100_SYNSETS", "CIFAR10_CLASSES", "CIFAR10_SYNSETS",
    "CIFAR10_WORDNET_PATH_LENGTHS", "METRICS", "WordNetNotFoundError", "as_stored_by_authors",
    "check_weight_matrix", "cifar10_wordnet_similarity", "explicability_matrix", "from_ratings",
    "from_soft_labels", "resolve_synset", "row_normalize", "check_covers",
    "check_self_similarity", "wordnet", "wordnet_similarity",
]

METRICS = ("path", "wup", "lch")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                   "horse", "ship", "truck")

# The authors build their EKL matrix from "<name>.n.01"; for CIFAR-10 every
# first sense is the intended one ("automobile" is a lemma of car.n.01).
CIFAR10_SYNSETS: dict[str, str] = {
    "airplane": "airplane.n.01", "automobile": "car.n.01", "bird": "bird.n.01",
    "cat": "cat.n.01", "deer": "deer.n.01", "dog": "dog.n.01", "frog": "frog.n.01",
    "horse": "horse.n.01", "ship": "ship.n.01", "truck": "truck.n.01",
}

# Shortest hypernym-path lengths between CIFAR10_SYNSETS in WordNet 3.0
# (nltk), so that EKL = 1 / (1 + d) is available offline;
# tests/test_similarity.py checks it against nltk where WordNet is installed.
CIFAR10_WORDNET_PATH_LENGTHS = (
    (0, 8, 14, 18, 19, 13, 15, 19, 5, 8), (8, 0, 13, 17, 18, 12, 14, 18, 7, 2),
    (14, 13, 0, 6, 7, 5, 3, 7, 13, 13), (18, 17, 6, 0, 7, 4, 7, 7, 17, 17),
    (19, 18, 7, 7, 0, 7, 8, 6, 18, 18), (13, 12, 5, 4, 7, 0, 6, 7, 12, 12),
    (15, 14, 3, 7, 8, 6, 0, 8, 14, 14), (19, 18, 7, 7, 6, 7, 8, 0, 18, 18),
    (5, 7, 13, 17, 18, 12, 14, 18, 0, 7), (8, 2, 13, 17, 18, 12, 14, 18, 7, 0))


def cifar10_wordnet_similarity() -> np.ndarray:
  """CIFAR-10's EKL matrix (``path`` metric, ``(10, 10)``) without WordNet:
  ``1 / (1 + d)`` from :data:`CIFAR10_WORDNET_PATH_LENGTHS`. Equal to
  ``wordnet_similarity(CIFAR10_SYNSETS.values())``."""
  return 1.0 / (1.0 + np.asarray(CIFAR10_WORDNET_PATH_LENGTHS, np.float64))


# CIFAR-100 fine classes (in label order) -> WordNet 3.0 synsets, chosen by
# hand. Two names are not WordNet lemmas: aquarium_fish -> goldfish.n.01 (the
# authors' choice) and maple_tree -> maple.n.02 (the tree; maple.n.01 is the
# wood); keyboard -> computer_keyboard.n.01. Where the first noun sense is not
# the pictured thing (the authors' "<name>.n.01" takes it anyway) we take the
# right one: beaver.n.07, dolphin.n.02, leopard.n.02, lobster.n.02,
# otter.n.02, raccoon.n.02, ray.n.07, seal.n.09, shrew.n.02, skunk.n.04,
# tiger.n.02, trout.n.02, turtle.n.02, whale.n.02 (sense 1 is a fur, a flesh,
# a person or another thing), flatfish.n.02, plate.n.04 (dish), table.n.02
# (furniture), castle.n.02, cloud.n.02, bowl.n.03 (dish), girl ->
# female_child.n.01 (girl.n.01 is a young woman), television ->
# television_receiver.n.01, sweet_pepper.n.02 (the fruit), possum ->
# opossum.n.02. tests/test_similarity.py checks every entry's lexicographer
# file (animal, plant, food, artifact, ...).
CIFAR100_SYNSETS: dict[str, str] = {
    "apple": "apple.n.01", "aquarium_fish": "goldfish.n.01", "baby": "baby.n.01",
    "bear": "bear.n.01", "beaver": "beaver.n.07", "bed": "bed.n.01", "bee": "bee.n.01",
    "beetle": "beetle.n.01", "bicycle": "bicycle.n.01", "bottle": "bottle.n.01",
    "bowl": "bowl.n.03", "boy": "male_child.n.01", "bridge": "bridge.n.01",
    "bus": "bus.n.01", "butterfly": "butterfly.n.01", "camel": "camel.n.01",
    "can": "can.n.01", "castle": "castle.n.02", "caterpillar": "caterpillar.n.01",
    "cattle": "cattle.n.01", "chair": "chair.n.01", "chimpanzee": "chimpanzee.n.01",
    "clock": "clock.n.01", "cloud": "cloud.n.02", "cockroach": "cockroach.n.01",
    "couch": "sofa.n.01", "crab": "crab.n.01", "crocodile": "crocodile.n.01",
    "cup": "cup.n.01", "dinosaur": "dinosaur.n.01", "dolphin": "dolphin.n.02",
    "elephant": "elephant.n.01", "flatfish": "flatfish.n.02", "forest": "forest.n.01",
    "fox": "fox.n.01", "girl": "female_child.n.01", "hamster": "hamster.n.01",
    "house": "house.n.01", "kangaroo": "kangaroo.n.01",
    "keyboard": "computer_keyboard.n.01", "lamp": "lamp.n.01",
    "lawn_mower": "lawn_mower.n.01", "leopard": "leopard.n.02", "lion": "lion.n.01",
    "lizard": "lizard.n.01", "lobster": "lobster.n.02", "man": "man.n.01",
    "maple_tree": "maple.n.02", "motorcycle": "motorcycle.n.01",
    "mountain": "mountain.n.01", "mouse": "mouse.n.01", "mushroom": "mushroom.n.01",
    "oak_tree": "oak.n.02", "orange": "orange.n.01", "orchid": "orchid.n.01",
    "otter": "otter.n.02", "palm_tree": "palm.n.03", "pear": "pear.n.01",
    "pickup_truck": "pickup.n.01", "pine_tree": "pine.n.01", "plain": "plain.n.01",
    "plate": "plate.n.04", "poppy": "poppy.n.01", "porcupine": "porcupine.n.01",
    "possum": "opossum.n.02", "rabbit": "rabbit.n.01", "raccoon": "raccoon.n.02",
    "ray": "ray.n.07", "road": "road.n.01", "rocket": "rocket.n.01", "rose": "rose.n.01",
    "sea": "sea.n.01", "seal": "seal.n.09", "shark": "shark.n.01", "shrew": "shrew.n.02",
    "skunk": "skunk.n.04", "skyscraper": "skyscraper.n.01", "snail": "snail.n.01",
    "snake": "snake.n.01", "spider": "spider.n.01", "squirrel": "squirrel.n.01",
    "streetcar": "streetcar.n.01", "sunflower": "sunflower.n.01",
    "sweet_pepper": "sweet_pepper.n.02", "table": "table.n.02", "tank": "tank.n.01",
    "telephone": "telephone.n.01", "television": "television_receiver.n.01",
    "tiger": "tiger.n.02", "tractor": "tractor.n.01", "train": "train.n.01",
    "trout": "trout.n.02", "tulip": "tulip.n.01", "turtle": "turtle.n.02",
    "wardrobe": "wardrobe.n.01", "whale": "whale.n.02", "willow_tree": "willow.n.01",
    "wolf": "wolf.n.01", "woman": "woman.n.01", "worm": "worm.n.01",
}

# File names under which a local folder may hold the WordNet corpus.
_WORDNET_FILES = ("nltk_wordnet-3.0_from_debian.zip", "wordnet.zip",
                  os.path.join("corpora", "wordnet.zip"))


class WordNetNotFoundError(LookupError):
  """The WordNet corpus is neither installed, in a local folder, nor downloadable."""


def _install_local_wordnet(data_dir: str | None) -> bool:
  """Copies a local WordNet zip where nltk looks; True when one was found.

  nltk refuses a symlinked zip that resolves outside its search path, so the
  file is copied (11 MB) into ``~/.cache/explicable_jax/nltk_data``.
  """
  import nltk  # pylint: disable=g-import-not-at-top
  folders = [d for d in (data_dir, os.environ.get("EXPLICABLE_JAX_DATA")) if d]
  for folder in folders:
    for name in _WORDNET_FILES:
      source = os.path.join(folder, name)
      if os.path.isfile(source):
        cache = os.path.join(os.path.expanduser("~"), ".cache", "explicable_jax", "nltk_data")
        target = os.path.join(cache, "corpora", "wordnet.zip")
        if not os.path.isfile(target) or os.path.getsize(target) != os.path.getsize(source):
          os.makedirs(os.path.dirname(target), exist_ok=True)
          shutil.copyfile(source, target + ".tmp")
          os.replace(target + ".tmp", target)
        if cache not in nltk.data.path:
          nltk.data.path.append(cache)
        return True
  return False


@conventions.boundary()
def wordnet(data_dir: str | None = None, *, download: bool = True) -> Any:
  """nltk's WordNet reader, loaded.

  Looks in order at nltk's own data folders (``NLTK_DATA``,
  ``~/nltk_data``, ...), then at a local folder (``data_dir`` or
  ``$EXPLICABLE_JAX_DATA``) holding ``wordnet.zip`` or
  ``nltk_wordnet-3.0_from_debian.zip``, then tries
  ``nltk.download("wordnet")``.

  Raises:
    WordNetNotFoundError: with the ways to get the corpus.
  """
  from nltk.corpus import wordnet as wn  # pylint: disable=g-import-not-at-top

  def loaded():
    try:
      wn.ensure_loaded()
      return True
    except LookupError:
      return False

  if loaded() or (_install_local_wordnet(data_dir) and loaded()):
    return wn
  if download:
    import nltk  # pylint: disable=g-import-not-at-top
    try:
      nltk.download("wordnet", quiet=True, raise_on_error=True)
    except Exception:  # No network: fall through to the error below.
      pass
    if loaded():
      return wn
  raise WordNetNotFoundError(
      "The WordNet corpus was not found. Get it with "
      "`python -c \"import nltk; nltk.download('wordnet')\"`, or offline put "
      "WordNet 3.0 for NLTK at $NLTK_DATA/corpora/wordnet.zip, or point "
      "data_dir / $EXPLICABLE_JAX_DATA at a folder holding wordnet.zip.")


def resolve_synset(name: str, wn: Any = None) -> Any:
  """The synset for a class name.

  Accepts a synset name (``"dog.n.01"``), an ImageNet wnid (``"n02084071"``)
  or a noun (``"dog"``, ``"lawn mower"``; its first noun sense).

  Raises:
    ValueError: naming the class and suggesting close WordNet lemmas.
  """
  wn = wn or wordnet()
  if not isinstance(name, str) or not name.strip():
    raise ValueError(f"class names must be non-empty strings; got {name!r}.")
  key = name.strip()
  try:
    if len(key) == 9 and key[0] == "n" and key[1:].isdigit():
      return wn.synset_from_pos_and_offset("n", int(key[1:]))
    if key.count(".") == 2:
      return wn.synset(key)
  except Exception:  # nltk raises WordNetError / ValueError for unknown ids.
    raise ValueError(f"WordNet has no synset {name!r}.") from None
  lemma = key.replace(" ", "_").lower()
  synsets = wn.synsets(lemma, pos="n")
  if synsets:
    return synsets[0]
  close = difflib.get_close_matches(lemma, list(wn.all_lemma_names(pos="n")), n=5)
  hint = f" Close WordNet nouns: {', '.join(close)}." if close else ""
  raise ValueError(
      f"WordNet knows no noun {name!r} (give a synset such as 'dog.n.01', an "
      f"ImageNet wnid or another noun).{hint}")


def wordnet_similarity(classes: Sequence[str], *, metric: str = "path",
                       data_dir: str | None = None) -> np.ndarray:
  """EKL: the WordNet similarity of every pair of classes, ``(C, C)``.

  .. math:: W_{ij} = \\mathrm{sim}(s_i, s_j)

  ``path``: ``1 / (1 + d)`` with ``d`` the shortest hypernym-path length
  (the authors' choice; diagonal 1); ``wup``: Wu-Palmer,
  ``2 depth(lcs) / (depth(s_i) + depth(s_j))`` (diagonal 1 except for a
  synset with hypernym paths of different lengths, where nltk takes the
  depths along different paths: ``dog.n.01`` gets 0.929); ``lch``:
  Leacock-Chodorow, ``-log(d / 2D)`` (diagonal about 3.64 for nouns, not 1).
  All three are symmetric.

  Args:
    classes: class names, synset names or wnids (see :func:`resolve_synset`);
      for CIFAR pass ``CIFAR10_SYNSETS.values()``.
    metric: ``path``, ``wup`` or ``lch``.
    data_dir: a local folder with the WordNet zip (see :func:`wordnet`).

  Returns:
    ``(C, C)`` float64 similarities, symmetric, in class order.

  Example (needs the WordNet corpus, so not run as a doctest;
  tests/test_similarity.py checks dog-cat's 0.2):
    >>> wordnet_similarity(["dog.n.01", "cat.n.01", "car.n.01"]).round(3).tolist()  # doctest: +SKIP
    [[1.0, 0.2, 0.077], [0.2, 1.0, 0.056], [0.077, 0.056, 1.0]]
  """
  _validation.check_choice("metric", metric, METRICS)
  if isinstance(classes, str):
    raise TypeError(f"classes must be a sequence of class names; got the string {classes!r} "
                    "(wrap one name in a list).")
  if isinstance(classes, Mapping):
    raise TypeError("classes must be a sequence of class names; got a mapping (its keys would "
                    "be used): pass mapping.values() for curated synsets such as "
                    "CIFAR10_SYNSETS.")
  classes = list(classes)
  _validation.check_class_names("classes", classes)
  if not classes:
    raise ValueError("classes must name at least one class; got an empty list.")
  wn = wordnet(data_dir)
  synsets = [resolve_synset(c, wn) for c in classes]
  fn = {"path": "path_similarity", "wup": "wup_similarity", "lch": "lch_similarity"}[metric]
  n = len(synsets)
  out = np.empty((n, n))
  for i in range(n):
    for j in range(i, n):
      out[i, j] = out[j, i] = getattr(synsets[i], fn)(synsets[j])
  return out


@_validation.named_check
def check_weight_matrix(name: str, weights: ArrayLike,
                        num_classes: int | None = None) -> np.ndarray:
  """``weights`` as a float array, or a ``ValueError`` saying what is wrong.

  A weight matrix is square, ``num_classes`` wide when given, finite,
  non-negative, and has no all-zero row (that row could not be normalised).
  """
  if isinstance(weights, (str, bytes, os.PathLike)):
    raise TypeError(
        f"{name} must be a (C, C) similarity matrix; got {type(weights).__name__} "
        f"{os.fspath(weights)!r} (a name or a path: build the matrix first, e.g. "
        "similarity.wordnet_similarity(classes), or np.load(path)).")
  w = _validation.as_numbers(name, weights, "a (C, C) similarity matrix")
  if w.ndim != 2 or w.shape[0] != w.shape[1]:
    raise ValueError(f"{name} must be a square (classes, classes) matrix; got shape {w.shape}.")
  if num_classes is not None and w.shape[0] != num_classes:
    raise ValueError(
        f"{name} must be {num_classes}x{num_classes} for {num_classes} classes; "
        f"got shape {w.shape}.")
  if not np.all(np.isfinite(w)):
    raise ValueError(f"{name} must be finite; it holds {int(np.sum(~np.isfinite(w)))} NaN/inf entries.")
  if np.any(w < 0):
    raise ValueError(f"{name} must be non-negative; its smallest entry is {w.min():g}.")
  zero = np.flatnonzero(w.sum(axis=1) == 0)
  if zero.size:
    raise ValueError(f"{name} has all-zero rows {zero.tolist()}; every row needs some weight.")
  return w


@_validation.named_check
def check_self_similarity(name: str, w: np.ndarray) -> None:
  """Olmo et al.'s l1 targets give the true class ``W_yy / sum_k W_yk``: a zero
  diagonal entry (a distance matrix, say) puts no mass on the true class, so it
  is refused; one below its row's largest (a target preferring another class)
  is warned."""
  _check_positive_diagonal(name, w)
  below = np.flatnonzero(np.diag(w) < w.max(axis=1))
  if below.size:
    warnings.warn(
        f"{name}: in rows {below.tolist()[:10]} another class has a larger weight than the true "
        "class itself, so their targets prefer a wrong class.", stacklevel=_validation.user_stacklevel())


def _check_positive_diagonal(name: str, w: np.ndarray) -> None:
  """Refuses a zero diagonal entry: a distance matrix where a similarity belongs."""
  zero = np.flatnonzero(np.diag(w) == 0)
  if zero.size:
    raise ValueError(
        f"{name} must be a similarity matrix whose diagonal (each class's similarity to "
        f"itself) is positive; rows {zero.tolist()[:10]} have W[y, y] = 0 (a weighted "
        "loss's targets would put no probability on the true class; a distance matrix? use "
        "a similarity, e.g. 1 - d / d.max()).")


@_validation.named_check
def check_covers(name: str, matrix: np.ndarray, **class_arrays) -> None:
  """Raises unless the ``(C, C)`` ``matrix`` has a row and column for every
  class in ``class_arrays`` (labels, predictions): a class index ``>= C``
  means the matrix is for another (smaller) set of classes, so the matrix is
  named, not the labels."""
  c = matrix.shape[0]
  for arg, values in class_arrays.items():
    v = np.asarray(values)
    if v.size and np.issubdtype(v.dtype, np.integer) and v.max() >= c:
      raise ValueError(
          f"{name} is {c}x{c} (classes 0..{c - 1}), but {arg} holds class {int(v.max())}: "
          f"pass the similarity matrix of the labels' classes (one row and column per "
          f"class).")


def row_normalize(weights: ArrayLike) -> np.ndarray:
  """L1 row normalisation, ``W_ij / sum_k W_ik``: each row a distribution."""
  w = check_weight_matrix("weights", weights)
  return w / w.sum(axis=1, keepdims=True)


@conventions.boundary(labels="labels")
def from_soft_labels(probs: ArrayLike, labels: ArrayLike, num_classes: int) -> np.ndarray:
  """IHL: the mean human soft label of each true class, ``(C, C)``.

  .. math:: W_{yj} = \\frac{1}{|\\{n: y_n = y\\}|} \\sum_{n: y_n = y} p_{nj}

  Args:
    probs: ``(N, C)`` human label distributions (CIFAR-10H's
      ``cifar10h-probs.npy``), rows summing to 1.
    labels: ``(N,)`` true classes (the CIFAR-10 test labels, same order).
    num_classes: ``C``.
  """
  p = np.asarray(probs, dtype=np.float64)
  y = np.asarray(labels)
  _validation.check_num_classes("num_classes", num_classes)
  if p.ndim != 2 or p.shape[1] != num_classes:
    raise ValueError(f"probs must have shape (N, {num_classes}); got {p.shape}.")
  if y.shape != (p.shape[0],):
    raise ValueError(f"labels must have shape ({p.shape[0]},), one per row of probs; got {y.shape}.")
  _validation.check_labels("labels", y, num_classes)
  if not np.all(np.isfinite(p)) or np.any(p < 0):
    raise ValueError("probs must be finite and non-negative.")
  sums = p.sum(axis=1)
  bad = np.flatnonzero(np.abs(sums - 1) > 1e-3)
  if bad.size:
    raise ValueError(
        f"probs rows must sum to 1 (soft labels); {bad.size} rows do not, e.g. row "
        f"{bad[0]} sums to {sums[bad[0]]:.4f}.")
  counts = np.bincount(y, minlength=num_classes)
  missing = np.flatnonzero(counts == 0)
  if missing.size:
    raise ValueError(f"labels has no example of classes {missing.tolist()}.")
  agree = float(np.mean(p.argmax(axis=1) == y))
  if agree < 0.5:  # humans agree with the labels on most images (CIFAR-10H: about 95%)
    warnings.warn(
        f"from_soft_labels: the humans' most voted class agrees with labels on only "
        f"{agree:.1%} of the images: are probs and labels in the same order (one row per "
        "image, the same images)?", UserWarning, stacklevel=_validation.user_stacklevel())
  out = np.zeros((num_classes, num_classes))
  np.add.at(out, y, p)
  return out / counts[:, None]


def from_ratings(ratings: ArrayLike, *, scale_max: float | None = None) -> np.ndarray:
  """CHL: a class-level rating matrix scaled to ``[0, 1]``.

  ``ratings[i, j]`` is how reasonable humans found "an image of class i
  classified as j" (the authors' CIFAR-10 ratings are a 0-4 Likert scale
  with 4 on the diagonal). Divides by ``scale_max`` (default: the largest
  rating), so a perfect rating becomes 1, like the WordNet diagonal; row
  normalisation, as the authors apply to CHL, is unaffected by the scale.
  """
  r = check_weight_matrix("ratings", ratings)
  if scale_max is not None:
    _validation.check_positive("scale_max", scale_max)
  top = r.max() if scale_max is None else scale_max
  _validation.check_positive("scale_max", float(top))
  if r.max() > top:
    raise ValueError(f"ratings must not exceed scale_max={top}; the largest is {r.max():g}.")
  return r / top


AUTHORS_KINDS = ("ihl", "chl", "ekl")


def as_stored_by_authors(kind: str, weights: ArrayLike) -> np.ndarray:
  """The matrix of kind ``ihl``, ``chl`` or ``ekl`` as Olmo et al.'s code
  stores it (``aOlmo/weighted-misclassifications``,
  ``confusion_matrices/cifar10_*_cmat.npy``), the input of their
  ``WeightedCC``, which softmaxes its rows:

  * ``chl``: the raw class-level ratings, 0-4 with 4 on the diagonal
    (``data.load_human_labels("cifar10_chl")``), not :func:`from_ratings`'
    ``[0, 1]`` scaling; a matrix whose largest entry is at most 1 is
    refused, since it cannot be the raw ratings;
  * ``ekl``: the WordNet similarity, L1-normalised per row (their
    ``normalize(c10_wn_cmat, "l1")``);
  * ``ihl``: the mean human soft label per class (:func:`from_soft_labels`),
    as is; its rows must sum to 1.
  """
  _validation.check_choice("kind", kind, AUTHORS_KINDS)
  w = check_weight_matrix("weights", weights)
  _check_positive_diagonal("weights", w)  # a distance matrix is refused
  if kind == "chl":
    if w.max() <= 1.0:
      raise ValueError(
          "weights must be the raw CHL ratings (0-4, diagonal 4) for kind='chl'; got a "
          f"matrix whose largest entry is {w.max():g} (already scaled, e.g. by "
          "from_ratings?).")
    if w.max() > 4.0 + 1e-6 or not np.allclose(np.diag(w), 4.0):
      raise ValueError(
          "weights must be the raw CHL ratings (0-4, diagonal 4) for kind='chl'; got "
          f"entries up to {w.max():g} and a diagonal from {np.diag(w).min():g} to "
          f"{np.diag(w).max():g} (another rating scale? the authors' softmax reads the 0-4 "
          "scale: rescale to it).")
    return w
  if kind == "ekl":
    return row_normalize(w)
  sums = w.sum(axis=1)
  if not np.allclose(sums, 1.0, atol=1e-3):
    raise ValueError(
        "weights must be a row-stochastic IHL matrix (mean soft labels, rows summing to 1) "
        f"for kind='ihl'; its row sums range over [{sums.min():.4g}, {sums.max():.4g}].")
  return w


def explicability_matrix(*matrices: ArrayLike) -> np.ndarray:
  """``M``: the mean of the row-normalised matrices (the authors average
  IHL, CHL and EKL), the similarity behind hard and soft scores.

  .. math:: M = \\frac1K \\sum_{k=1}^K \\operatorname{rownorm}(W_k), \\qquad
            \\operatorname{rownorm}(W)_{ij} = W_{ij} / \\textstyle\\sum_l W_{il}

  Args:
    *matrices: ``K >= 1`` non-negative ``(C, C)`` similarity matrices (row =
      true class), e.g. the IHL, CHL and EKL matrices.

  Returns:
    ``(C, C)`` float64, each row summing to 1.

  Example:
    >>> import numpy as np
    >>> explicability_matrix(np.eye(2), np.ones((2, 2))).tolist()
    [[0.75, 0.25], [0.25, 0.75]]
  """
  if not matrices:
    raise ValueError("explicability_matrix needs at least one weight matrix.")
  first: Any = matrices[0]
  if len(matrices) == 1 and not isinstance(first, Mapping) and (
      isinstance(first, (list, tuple)) and first and np.ndim(first[0]) == 2
      or hasattr(first, "ndim") and first.ndim == 3):
    raise TypeError(
        "explicability_matrix takes the matrices as separate arguments, "
        "explicability_matrix(ihl, chl, ekl); got one "
        f"{type(first).__name__} of {len(first)} (a list of matrices? unpack it: "
        "explicability_matrix(*matrices)).")
  for i, m in enumerate(matrices):
    if isinstance(m, Mapping):
      raise TypeError(f"matrices[{i}] must be a (C, C) matrix; got a mapping (a table by "
                      f"name? pass its values: explicability_matrix(*table.values())).")
  normed = [row_normalize(m) for m in matrices]
  for i, m in enumerate(normed):
    _check_positive_diagonal(f"matrices[{i}]", m)
  shapes = {m.shape for m in normed}
  if len(shapes) != 1:
    raise ValueError(f"the matrices must share one shape; got shapes {sorted(shapes)}.")
  return np.mean(normed, axis=0)
