"""The data sets of Right for the Right Reasons (Ross, Hughes and Doshi-Velez,
IJCAI 2017; code ``dtak/rrr``), each with per-example ``annotation`` masks
(1 = a feature the model should not use) in ``Dataset.extras``.

* ``toy_colors``: 5x5 images over four colours (red, green, blue, violet).
  Class 0 when the four corners share a colour *and* the three top-middle
  pixels all differ; class 1 when *both* rules fail. Either rule alone
  classifies perfectly, so a model may learn either; the annotations mark
  the corners (``rule="corners"``, the default) or the top middle
  (``rule="top_middle"``). 20000 train / 20000 test by default.
* ``decoy_mnist``: MNIST with a grey swatch in a random corner whose shade
  is ``255 - 25 y`` in training (a perfect decoy) and ``255 - 25 r`` for a
  random digit ``r`` at test; the annotation is the swatch. 4x4 swatches on
  28x28 MNIST; where MNIST cannot be loaded, scikit-learn's built-in 8x8
  digits with 2x2 swatches (``note`` says which). ``decoy_digits`` is
  always the 8x8 version (built in, no download).
"""
from __future__ import annotations

import warnings

import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax.data import DATA_ENV, Dataset, DataNotFoundError, load

__all__ = [
    "CORNERS", "NEWSGROUPS_CATEGORIES", "NEWSGROUPS_FILE", "TOP_MIDDLE", "TOY_COLORS",
    "decoy_digits", "decoy_mnist", "explanation_mask", "newsgroups", "toy_colors",
    "toy_colors_rule_mask", "toy_colors_rule_scores", "toy_colors_rules",
]

TOY_COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 128, 255], [128, 0, 255]], np.uint8)
"""The four colours the original draws from (its 'r', 'g', 'b', 'v')."""

CORNERS = ((0, 0), (0, 4), (4, 0), (4, 4))
TOP_MIDDLE = ((0, 1), (0, 2), (0, 3))


def toy_colors_rule_mask(rule: str) -> np.ndarray:
  """``(5, 5, 3)`` boolean mask of rule 1 (``corners``) or rule 2 (``top_middle``)."""
  _validation.check_choice("rule", rule, ("corners", "top_middle"))
  m = np.zeros((5, 5, 3), bool)
  for i, j in (CORNERS if rule == "corners" else TOP_MIDDLE):
    m[i, j] = True
  return m


def _toy_colors_indices(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
  """Colour indices ``(N, 5, 5)`` obeying the class rules (vectorised)."""
  n = len(labels)
  img = rng.integers(0, 4, (n, 5, 5))
  zero = labels == 0
  # Class 0, rule 1: all corners take the bottom-right colour.
  for i, j in CORNERS[:3]:
    img[zero, i, j] = img[zero, 4, 4]
  # Class 0, rule 2: three distinct colours in the top middle.
  perms = np.argsort(rng.random((n, 4)), axis=1)[:, :3]
  img[zero, 0, 1:4] = perms[zero]
  # Class 1, rule 1 fails: one diagonal pair of corners differs.
  one = ~zero
  pair = rng.random(n) < 0.5
  shift = rng.integers(1, 4, n)
  a = one & pair & (img[:, 0, 4] == img[:, 4, 0])
  img[a, 0, 4] = (img[a, 4, 0] + shift[a]) % 4
  b = one & ~pair & (img[:, 0, 0] == img[:, 4, 4])
  img[b, 0, 0] = (img[b, 4, 4] + shift[b]) % 4
  # Class 1, rule 2 fails: a repeated colour in the top middle.
  top = img[:, 0, 1:4]
  distinct = (top[:, 0] != top[:, 1]) & (top[:, 0] != top[:, 2]) & (top[:, 1] != top[:, 2])
  fix = one & distinct
  src = rng.integers(0, 3, n)
  dst = (src + rng.integers(1, 3, n)) % 3
  rows = np.flatnonzero(fix)
  img[rows, 0, 1 + dst[rows]] = img[rows, 0, 1 + src[rows]]
  return img


@conventions.boundary(images="images")
def toy_colors_rules(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Whether rule 1 (equal corners) and rule 2 (distinct top middle) hold,
  for ``(N, 5, 5, 3)`` images."""
  x = np.asarray(images)
  if x.shape[1:] != (5, 5, 3):
    raise conventions.ConventionError(
        f"images must be Toy Colors images (N, 5, 5, 3) (the rules read fixed pixels); got "
        f"shape {x.shape}.")
  c = [x[:, i, j] for i, j in CORNERS]
  rule1 = np.all([np.all(c[0] == ck, axis=-1) for ck in c[1:]], axis=0)
  t = [x[:, 0, j] for j in (1, 2, 3)]
  eq = lambda a, b: np.all(a == b, axis=-1)  # noqa: E731
  rule2 = ~eq(t[0], t[1]) & ~eq(t[0], t[2]) & ~eq(t[1], t[2])
  return rule1, rule2


def toy_colors(split: str = "train", data_dir=None, source="auto", seed: int = 0, *,
               n: int = 20000, rule: str = "corners") -> Dataset:
  """Toy Colors (see the module docstring); labels balanced at random."""
  del data_dir, source
  _validation.check_choice("split", split, ("train", "test"))
  _validation.check_positive("n", n, integer=True)
  rng = np.random.default_rng([seed, 0 if split == "train" else 1])
  labels = (rng.random(n) < 0.5).astype(np.int32)
  img = TOY_COLORS[_toy_colors_indices(rng, labels)]
  ann = np.broadcast_to(toy_colors_rule_mask(rule), img.shape).copy()
  return Dataset(img, labels, 2, ("rules hold", "rules fail"), "toy_colors",
                 note=f"generated (seed {seed}); annotation = {rule}",
                 extras={"annotation": ann})


def explanation_mask(input_gradients: np.ndarray, cutoff: float = 0.67) -> np.ndarray:
  """Ross et al.'s explanation: the features whose |gradient| exceeds
  ``cutoff`` times the example's largest |gradient| (per example)."""
  _validation.check_fraction("cutoff", cutoff)
  g = np.asarray(input_gradients)
  if g.ndim < 2:
    raise conventions.ConventionError(
        f"input_gradients must be a batch (N, ...) of gradients; got shape {g.shape}.")
  conventions.check_finite("input_gradients", g)
  g = np.abs(g)
  top = g.reshape(len(g), -1).max(axis=1)
  dead = np.flatnonzero(top == 0)
  if dead.size:
    warnings.warn(
        f"explanation_mask: {dead.size} of {len(g)} examples ({', '.join(map(str, dead[:10]))}"
        f"{', ...' if dead.size > 10 else ''}) have all-zero input gradients, so their "
        "explanation is empty (a dead or saturated model? gradients of the wrong output?).",
        UserWarning, stacklevel=_validation.user_stacklevel())
  return g > cutoff * top.reshape((-1,) + (1,) * (g.ndim - 1))


def toy_colors_rule_scores(input_gradients: np.ndarray, cutoff: float = 0.67) -> dict:
  """The fraction of each explanation's pixels that lie in the corners
  (rule 1) and in the top middle (rule 2), averaged over examples, as in
  the original's ``rule1_score`` / ``rule2_score``: a pixel is in the
  explanation when any of its channels is."""
  g = np.asarray(input_gradients)
  if g.ndim not in (2, 4) or g.shape[1:] not in ((75,), (5, 5, 3)) or len(g) == 0:
    raise conventions.ConventionError(
        "input_gradients must be the toy colours' gradients, (N, 5, 5, 3) or flat (N, 75) "
        f"(data.rrr.toy_colors images); got shape {g.shape}.")
  g = g.reshape(-1, 5, 5, 3)
  pix = explanation_mask(g, cutoff).any(axis=-1)  # (N, 5, 5)
  total = np.maximum(pix.sum(axis=(1, 2)), 1)
  corners = toy_colors_rule_mask("corners")[..., 0]
  middle = toy_colors_rule_mask("top_middle")[..., 0]
  return {"rule1": float(np.mean((pix & corners).sum(axis=(1, 2)) / total)),
          "rule2": float(np.mean((pix & middle).sum(axis=(1, 2)) / total))}


def _add_swatch(images: np.ndarray, shades: np.ndarray, size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  x = images.copy()
  ann = np.zeros_like(x, dtype=bool)
  n, h, w = x.shape[:3]
  top = rng.random(n) < 0.5
  left = rng.random(n) < 0.5
  for i in range(n):
    rs = slice(0, size) if top[i] else slice(h - size, h)
    cs = slice(0, size) if left[i] else slice(w - size, w)
    x[i, rs, cs] = shades[i]
    ann[i, rs, cs] = True
  return x, ann


def decoy_mnist(split: str = "train", data_dir=None, source="auto", seed: int = 0) -> Dataset:
  """Decoy MNIST (see the module docstring); ``uint8`` images ``(N, H, W, 1)``."""
  _validation.check_choice("split", split, ("train", "test"))
  try:
    base = load("mnist", split, data_dir=data_dir, source=source)
  except DataNotFoundError as e:
    if data_dir is not None or source != "auto":  # asked for a copy that is not there
      raise
    import warnings
    warnings.warn(
        f"decoy_mnist: MNIST is unavailable ({str(e).splitlines()[0]}); using scikit-learn's "
        "8x8 digits with 2x2 swatches instead (decoy_digits), which is not the paper's data "
        f"set: set ${DATA_ENV} or data_dir to a folder holding mnist.npz for MNIST.",
        UserWarning, stacklevel=_validation.user_stacklevel())
    return _decoy(load("digits", split, seed=seed), split, seed, "decoy_mnist",
                  "MNIST unavailable: scikit-learn's 8x8 digits with 2x2 swatches")
  return _decoy(base, split, seed, "decoy_mnist", "MNIST")


def decoy_digits(split: str = "train", data_dir=None, source="auto", seed: int = 0) -> Dataset:
  """Decoy MNIST's construction on scikit-learn's built-in 8x8 digits (2x2
  swatches): no download, for demos and tests."""
  del data_dir, source
  _validation.check_choice("split", split, ("train", "test"))
  return _decoy(load("digits", split, seed=seed), split, seed, "decoy_digits",
                "scikit-learn's 8x8 digits with 2x2 swatches")


def _decoy(base: Dataset, split: str, seed: int, name: str, note: str) -> Dataset:
  if base.x.shape[1:3] == (8, 8):
    x, size = np.clip(np.round(base.x * 255), 0, 255).astype(np.uint8), 2
  else:
    x, size = base.x.reshape(len(base), 28, 28, 1).astype(np.uint8), 4
  y = base.y.astype(np.int32)
  rng = np.random.default_rng([seed, 2 if split == "train" else 3])
  digit = y if split == "train" else rng.integers(0, 10, len(y))
  shades = (255 - 25 * digit).astype(np.uint8)
  x, ann = _add_swatch(x, shades, size, rng)
  return Dataset(x, y, 10, tuple(str(i) for i in range(10)), name,
                 note=f"{note}; swatch shade 255 - 25 * "
                      f"{'label' if split == 'train' else 'random digit'}",
                 extras={"annotation": ann})




NEWSGROUPS_FILE = "20news-bydate_py3.pkz"
NEWSGROUPS_CATEGORIES = ("alt.atheism", "soc.religion.christian")


def _newsgroups_texts(subset: str, categories, data_dir, remove=()):
  """scikit-learn's 20 Newsgroups "bydate" texts: its cache first, then the
  local folder's ``20news-bydate_py3.pkz`` (copied into a cache folder, as
  scikit-learn wants), then a download where the network is reachable."""
  import os
  import shutil

  from sklearn.datasets import fetch_20newsgroups
  from explicable_jax.data import local_data_dir, network_reachable
  kw = dict(subset=subset, categories=list(categories), shuffle=False, remove=tuple(remove))
  try:
    return fetch_20newsgroups(download_if_missing=False, **kw)
  except OSError:
    pass
  folder = local_data_dir(data_dir)
  if folder and os.path.exists(os.path.join(folder, NEWSGROUPS_FILE)):
    home = os.path.join(os.path.expanduser("~"), ".cache", "explicable_jax", "sklearn")
    os.makedirs(home, exist_ok=True)
    if not os.path.exists(os.path.join(home, NEWSGROUPS_FILE)):
      shutil.copy(os.path.join(folder, NEWSGROUPS_FILE), os.path.join(home, NEWSGROUPS_FILE))
    return fetch_20newsgroups(data_home=home, download_if_missing=False, **kw)
  if network_reachable("ndownloader.figshare.com"):
    return fetch_20newsgroups(download_if_missing=True, **kw)
  raise DataNotFoundError(
      f"Could not load 20 Newsgroups: scikit-learn has no cached copy, the network is "
      f"unreachable, and no {NEWSGROUPS_FILE} is in "
      f"{repr(folder) if folder else 'a folder given as data_dir= or in $EXPLICABLE_JAX_DATA'} "
      f"(scikit-learn's cache format).")


@conventions.boundary()
def newsgroups(split: str = "train", data_dir=None, source="auto", seed: int = 0, *,
               categories=NEWSGROUPS_CATEGORIES, min_df: int = 2,
               remove: tuple[str, ...] = (), max_features: int | None = None,
               lowercase: bool = True, sublinear_tf: bool = True) -> Dataset:
  """20 Newsgroups, atheism vs christian by default, as TF-IDF features
  (``TfidfVectorizer`` fitted on the training texts). ``feature_names``
  holds the vocabulary, for word-level explanations.

  ``remove`` takes scikit-learn's ``("headers", "footers", "quotes")``; the
  default keeps them, as Ross et al. did, although headers (names, e-mail
  hosts) let a model be right for the wrong reasons -- which input-gradient
  explanations show.

  ``min_df``, ``max_features``, ``lowercase`` and ``sublinear_tf`` go to the
  vectoriser. Ross et al.'s notebook uses
  ``TfidfVectorizer(lowercase=False, max_features=5000)``, i.e.
  ``min_df=1, max_features=5000, lowercase=False, sublinear_tf=False``.

  Its first four parameters are every registered loader's (``split``, ``data_dir``, ``source``,
  ``seed``); the keyword-only rest are scikit-learn's ``fetch_20newsgroups`` and
  ``TfidfVectorizer`` arguments under their own names.
  """
  del source, seed
  from sklearn.feature_extraction.text import TfidfVectorizer
  _validation.check_choice("split", split, ("train", "test"))
  _validation.check_positive("min_df", min_df, integer=True)
  if max_features is not None:
    _validation.check_positive("max_features", max_features, integer=True)
  train = _newsgroups_texts("train", categories, data_dir, remove)
  vec = TfidfVectorizer(min_df=min_df, sublinear_tf=bool(sublinear_tf),
                        lowercase=bool(lowercase), max_features=max_features)
  vec.fit(train.data)
  texts = train if split == "train" else _newsgroups_texts("test", categories, data_dir,
                                                          remove)
  x = vec.transform(texts.data).astype(np.float32).toarray()
  return Dataset(x, np.asarray(texts.target, np.int32), len(categories), tuple(categories),
                 "newsgroups", note="20 Newsgroups bydate (scikit-learn), TF-IDF",
                 feature_names=tuple(vec.get_feature_names_out()))


