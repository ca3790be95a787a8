"""Dataset registry: tfds first, a local folder as fallback, built-in data.

``load(name, split)`` returns a :class:`Dataset` of numpy arrays. Images are
NHWC ``uint8`` (or ``float32`` in ``[0, 1]`` for built-in data); labels are
``int32``. Models take images in ``[0, 1]``: :func:`to_float` converts.

Where the data come from, for the real-image sets (``mnist``, ``cifar10``,
``cifar100``):

1. data that ``tensorflow_datasets`` has already prepared (no network);
2. a local folder, given as ``data_dir=`` or in the environment variable
   ``EXPLICABLE_JAX_DATA``, holding the files listed in :data:`LOCAL_FILES`
   (the layout of ``shared/data``);
3. a ``tensorflow_datasets`` download (needs the network);

and if none works, an error that lists the files expected and how to get them.

One module, not a package (over 500 lines): the :class:`Dataset` type, the
registry, the loaders and the split rules all read the same source table
(:data:`LOCAL_FILES`, the registry) and one sizes rule; augmentation, the
parts of a batch and the RRR annotations are already their own modules.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from explicable_jax import _paths, _validation, conventions

DATA_ENV = "EXPLICABLE_JAX_DATA"


MASK_EXTRAS = ("annotation",)
"""Side arrays that are masks (:mod:`explicable_jax.conventions`): Right for
the Right Reasons' annotation ``A`` (1 where the input must not matter)."""


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Examples held in memory as numpy arrays."""
  x: np.ndarray
  y: np.ndarray
  num_classes: int
  class_names: tuple[str, ...]
  name: str = ""
  note: str = ""
  extras: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
  feature_names: tuple[str, ...] = ()
  """Names of the input features where they have any (e.g. TF-IDF words)."""
  """Per-example side arrays (first axis = examples), e.g. ``annotation``
  masks for Right for the Right Reasons; sliced by :meth:`take` and yielded
  by :func:`batches` under their names."""

  def __post_init__(self):
    for name in ("x", "y"):
      if not isinstance(getattr(self, name), np.ndarray):
        raise TypeError(f"{name} must be a numpy array; got {type(getattr(self, name)).__name__} "
                        f"(pass np.asarray({name})).")
    if len(self.x) != len(self.y):
      raise ValueError(f"x and y must have one row per example; got {len(self.x)} inputs and "
                       f"{len(self.y)} labels.")
    _validation.check_num_classes("num_classes", self.num_classes, why="a classification task")
    _validation.check_class_names("class_names", self.class_names)
    if self.class_names and len(self.class_names) != self.num_classes:
      raise ValueError(f"class_names must name the {self.num_classes} classes; got "
                       f"{len(self.class_names)} names.")
    conventions.check_labels("y", self.y, self.num_classes, n=len(self.x))
    if len(self.x):
      # Layout and finiteness here; the scale belongs to the model (its
      # input_range), checked where a model meets the data.
      conventions.check_inputs("x", self.x, convert=False, unit_range=False)
    if not isinstance(self.extras, Mapping):
      raise TypeError(f"extras must be a mapping name -> per-example array (e.g. "
                      f"{{'annotation': masks}}); got {type(self.extras).__name__}.")
    for k, v in self.extras.items():
      if k in ("x", "y", "mask"):
        raise ValueError(f"extras may not be named {k!r} (a batch key of its own).")
      if isinstance(v, (str, bytes, Mapping)) or np.ndim(v) == 0:
        raise TypeError(f"extras[{k!r}] must be an array with one row per example "
                        f"({len(self.y)} rows); got {type(v).__name__} {v!r:.60}.")
      if len(v) != len(self.y):
        raise ValueError(f"extras[{k!r}] must have one row per example ({len(self.y)}); "
                         f"got {len(v)}.")
      if k in MASK_EXTRAS:
        conventions.check_mask(f"extras[{k!r}]", v)
        if np.shape(v)[1:] != self.x.shape[1:]:
          raise ValueError(f"extras[{k!r}] must mark the inputs' features, shape "
                           f"{(len(self.y),) + self.x.shape[1:]}; got {np.shape(v)}.")

  def __len__(self) -> int:
    return len(self.y)

  @property
  def input_shape(self) -> tuple[int, ...]:
    return tuple(self.x.shape[1:])

  def take(self, index: Any) -> Dataset:
    """The examples at ``index`` (an index array, mask or slice).

    Rows of a checked dataset are checked: the conventions are not scanned
    again for every split or subset."""
    out = object.__new__(Dataset)
    for f in dataclasses.fields(self):
      object.__setattr__(out, f.name, getattr(self, f.name))
    object.__setattr__(out, "x", self.x[index])
    object.__setattr__(out, "y", self.y[index])
    object.__setattr__(out, "extras", {k: v[index] for k, v in self.extras.items()})
    return out


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")

LOCAL_FILES = {
    "mnist": ("mnist.npz",),
    "cifar10": ("cifar10_test.npz",) + tuple(
        f"cifar10_train_batch{i}.npz" for i in range(1, 6)),
    "cifar100": ("cifar100_labels_and_prefix.npz",),
}

JPEG_CAVEAT = (
    "CIFAR-10 (JPEG-decoded copy): only images marked lossless are pixel-exact; "
    "the rest were decoded from a JPEG copy (about 30 dB PSNR), so accuracy is a "
    "little lower than on the pristine files.")


class DataNotFoundError(FileNotFoundError):
  """No loader could provide a dataset."""


def local_data_dir(data_dir: str | os.PathLike | None = None) -> str | None:
  """The local fallback folder: ``data_dir`` if given, else ``$EXPLICABLE_JAX_DATA``."""
  if data_dir is not None:
    if os.path.isfile(data_dir):
      raise NotADirectoryError(f"data_dir must be a folder; got the file {os.fspath(data_dir)!r}.")
    return os.fspath(data_dir)
  return os.environ.get(DATA_ENV) or None


def _missing_error(name: str, folder: str | None, reason: str) -> DataNotFoundError:
  files = ", ".join(LOCAL_FILES[name])
  where = f"the folder {folder!r}" if folder else (
      f"a folder given as data_dir= or in ${DATA_ENV}")
  return DataNotFoundError(
      f"Could not load dataset {name!r} ({reason}). Either let tensorflow_datasets "
      f"download it (needs the network: `tfds.data_source({name!r}, download=True)`), "
      f"or put these files into {where}: {files} (format: see "
      f"shared/data/README.md in the project docs).")


# ---------------------------------------------------------------------------
# tensorflow_datasets (no TensorFlow needed: array_record data sources).


def _from_tfds(name: str, split: str, *, download: bool,
               tfds_dir: str | None = None) -> Dataset:
  import logging

  import tensorflow_datasets as tfds  # Host-side only.
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  if not download:  # Probing for prepared data: its "not found" is expected.
    absl_logger.setLevel(logging.ERROR)
  try:
    source = tfds.data_source(name, split=split, download=download,
                              data_dir=tfds_dir)
  finally:
    absl_logger.setLevel(level)
  items = [source[i] for i in range(len(source))]
  x = np.stack([np.asarray(it["image"]) for it in items]).astype(np.uint8)
  y = np.asarray([it["label"] for it in items], np.int32)
  builder = tfds.builder(name, data_dir=tfds_dir)
  names = tuple(builder.info.features["label"].names)
  return Dataset(x, y, len(names), names, name)


# ---------------------------------------------------------------------------
# Local folder in the layout of shared/data.


def _stored_images(source: str, x: np.ndarray) -> np.ndarray:
  """Images read from a file, checked once: NHWC (a channel axis is added to
  ``(N, H, W)``), integer pixels kept as ``uint8``, float images in [0, 1]
  kept as ``float32``; anything else raises naming the file."""
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  conventions.check_images(source, x, convert=False)
  return x.astype(np.uint8) if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)


def _local_mnist(folder: str, split: str) -> Dataset:
  path = os.path.join(folder, "mnist.npz")
  f = _paths.load_npz("the MNIST file", path, (f"x_{split}", f"y_{split}"),
                      what="x_train, y_train, x_test, y_test (keras' mnist.npz)")
  x, y = f[f"x_{split}"], f[f"y_{split}"]
  return Dataset(_stored_images(f"{path}: x_{split}", x), y.astype(np.int32), 10,
                 tuple(str(i) for i in range(10)), "mnist")


def _local_cifar10(folder: str, split: str) -> Dataset:
  files = (["cifar10_test.npz"] if split == "test" else
           [f"cifar10_train_batch{i}.npz" for i in range(1, 6)])
  xs, ys = [], []
  for fname in files:
    f = _paths.load_npz("the CIFAR-10 file", os.path.join(folder, fname), ("x", "y"),
                        what="images x and labels y")
    xs.append(_stored_images(f"{os.path.join(folder, fname)}: x", f["x"]))
    ys.append(f["y"])
  return Dataset(np.concatenate(xs),
                 np.concatenate(ys).astype(np.int32), 10, CIFAR10_CLASSES,
                 "cifar10", note=JPEG_CAVEAT)


def _local_cifar100(folder: str, split: str) -> Dataset:
  keys = (f"x_{split}_prefix", f"y_{split}_fine", "fine_label_names")
  f = _paths.load_npz("the CIFAR-100 file", os.path.join(folder, "cifar100_labels_and_prefix.npz"),
                      keys, what=", ".join(keys))
  x = f[f"x_{split}_prefix"]
  fine = f[f"y_{split}_fine"]
  names = tuple(str(n) for n in f["fine_label_names"])
  n = len(x)
  note = (f"only the first {n} of {len(fine)} CIFAR-100 {split} images are in "
          "the local copy (all labels are); enough for class-name work, not "
          "for training")
  warnings.warn(f"cifar100: {note}.", stacklevel=_validation.user_stacklevel())
  return Dataset(x.astype(np.uint8), fine[:n].astype(np.int32), 100, names,
                 "cifar100", note=note)


_LOCAL_LOADERS = {"mnist": _local_mnist, "cifar10": _local_cifar10,
                  "cifar100": _local_cifar100}


TFDS_HOST = "storage.googleapis.com"
NETWORK_TIMEOUT_S = 3.0


def network_reachable(host: str = TFDS_HOST, port: int = 443,
                      timeout: float = NETWORK_TIMEOUT_S) -> bool:
  """Whether a TCP connection to ``host:port`` opens within ``timeout`` s.

  Checked before a tfds download so that an offline machine fails in
  seconds with a clear message instead of retrying for minutes."""
  import socket
  if not isinstance(host, str) or not host:
    raise ValueError(f"host must be a host name such as {TFDS_HOST!r}; got {host!r}.")
  _validation.check_positive("port", port, integer=True)
  _validation.check_positive("timeout", timeout)
  try:
    with socket.create_connection((host, port), timeout=timeout):
      return True
  except OSError:
    return False


def _load_real(name: str, split: str, data_dir: str | None,
               source: str) -> Dataset:
  _validation.check_choice("split", split, ("train", "test"))
  _validation.check_choice("source", source, ("auto", "tfds", "local"))
  folder = local_data_dir(data_dir)
  errors = []
  if source in ("auto", "tfds"):
    try:
      return _from_tfds(name, split, download=False)
    except Exception as e:  # Not prepared: try the next source.
      errors.append(f"tfds: {type(e).__name__}")
  if source in ("auto", "local") and folder is not None:
    missing = [f for f in LOCAL_FILES[name]
               if not os.path.exists(os.path.join(folder, f))]
    if not missing:
      return _LOCAL_LOADERS[name](folder, split)
    errors.append(f"local folder lacks {', '.join(missing)}")
  if source == "tfds" or (source == "auto" and folder is None):
    if not network_reachable():
      errors.append(f"tfds download: no network ({TFDS_HOST}:443 not reachable "
                    f"within {NETWORK_TIMEOUT_S:g} s)")
    else:
      try:
        return _from_tfds(name, split, download=True)
      except Exception as e:
        errors.append(f"tfds download: {type(e).__name__}: {str(e)[:120]}")
  raise _missing_error(name, folder, "; ".join(errors) or "no source tried")


# ---------------------------------------------------------------------------
# Built-in data.


def _digits(split: str, data_dir=None, source="auto", seed: int = 0) -> Dataset:
  """scikit-learn's bundled 8x8 digits (1797 images), split 75/25 by ``seed``."""
  from sklearn.datasets import load_digits  # Host-side only.
  _validation.check_choice("split", split, ("train", "test", "all"))
  d = load_digits()
  x = (d.images / 16.0).astype(np.float32)[..., None]
  y = d.target.astype(np.int32)
  ds = Dataset(x, y, 10, tuple(str(i) for i in range(10)), "digits")
  if split == "all":
    return ds
  train, test = split_dataset(ds, (0.75, 0.25), seed=seed)
  return train if split == "train" else test


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist": lambda split, data_dir=None, source="auto", seed=0: _load_real(
        "mnist", split, data_dir, source),
    "cifar10": lambda split, data_dir=None, source="auto", seed=0: _load_real(
        "cifar10", split, data_dir, source),
    "cifar100": lambda split, data_dir=None, source="auto", seed=0: _load_real(
        "cifar100", split, data_dir, source),
}


@conventions.boundary()
def register_dataset(name: str, loader: Callable[..., Dataset], *,
                     overwrite: bool = False) -> None:
  """Adds ``loader(split, data_dir=None, source="auto", seed=0)`` to the registry.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True`` to replace it).
  """
  sig = None
  try:
    if callable(loader):
      sig = inspect.signature(loader)
  except (TypeError, ValueError):  # a builtin or C callable: not inspectable
    pass
  if sig is not None:
    try:
      sig.bind("train", data_dir=None, source="auto", seed=0)
    except TypeError:
      params = sig.parameters
      keywords = any(p.kind is p.VAR_KEYWORD for p in params.values())
      missing = [k for k in ("data_dir", "source", "seed") if k not in params and not keywords]
      takes_split = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                        for p in params.values())
      lacks = ([] if takes_split else ["split argument"]) + (
          [f"{', '.join(missing)} keyword"] if missing else [])
      what = (f"takes no {' and no '.join(lacks)}: add them, or **kwargs" if lacks
              else f"cannot be called so (its signature is {sig}): give its other "
              "parameters defaults")
      raise TypeError(
          f"loader must be called as loader(split, data_dir=None, source='auto', seed=0); "
          f"{getattr(loader, '__name__', type(loader).__name__)} {what}.")
  _validation.register("dataset", DATASETS, name, loader, arg="loader", overwrite=overwrite)


def load(name: str, split: str = "train", *, data_dir: str | None = None,
         source: str = "auto", seed: int = 0) -> Dataset:
  """Loads a dataset of the registry by name.

  Args:
    name: one of :data:`DATASETS` (``digits``, ``mnist``, ``cifar10``,
      ``cifar100``, and generated sets registered by other modules).
    split: ``"train"`` or ``"test"``.
    data_dir: local fallback folder (else ``$EXPLICABLE_JAX_DATA``).
    source: ``"auto"`` (tfds, then the local folder), ``"tfds"`` or ``"local"``.
    seed: seed of generated data and of built-in splits.

  Returns:
    The :class:`Dataset`. Its ``note`` states any caveat about the copy used.
  """
  loader = _validation.lookup("dataset", name, DATASETS)
  _validation.check_choice("source", source, ("auto", "tfds", "local"))
  _validation.check_seed("seed", seed)
  if data_dir is not None and "://" not in os.fspath(data_dir) \
      and not os.path.isdir(os.fspath(data_dir)):
    what = "a file" if os.path.exists(os.fspath(data_dir)) else "no such folder"
    raise DataNotFoundError(
        f"data_dir must be an existing folder (the local copy of the data); got "
        f"{os.fspath(data_dir)!r} ({what}). Pass the folder that holds the files, or leave "
        f"data_dir out (then ${DATA_ENV}, or a loader that needs no files).")
  ds = loader(split, data_dir=data_dir, source=source, seed=seed)
  if not isinstance(ds, Dataset):
    raise TypeError(
        f"the loader registered as dataset {name!r} must return a data.Dataset; it returned "
        f"{type(ds).__name__}"
        + (" (an (x, y) tuple? return data.Dataset(x, y, num_classes, class_names))"
           if isinstance(ds, (tuple, list)) else "") + ".")
  return ds


# ---------------------------------------------------------------------------
# Splits and batches.


@_validation.named_check
def check_dataset(name: str, ds) -> None:
  """``ds`` must be a :class:`Dataset` (arrays or an ``(x, y)`` tuple are
  named, with how to wrap them)."""
  if not isinstance(ds, Dataset):
    hint = (": wrap arrays as data.Dataset(x, y, num_classes, class_names)"
            if isinstance(ds, (tuple, np.ndarray)) or hasattr(ds, "shape") else "")
    raise TypeError(f"{name} must be a data.Dataset; got {type(ds).__name__}{hint}.")


def split_dataset(ds: Dataset, sizes, *, seed: int) -> list[Dataset]:
  """Deterministic random partition of ``ds``.

  Args:
    ds: the dataset.
    sizes: example counts (integers summing to at most ``len(ds)``) or
      fractions (floats summing to 1), not a mix of the two.
    seed: the permutation's seed (an integer >= 0); the same seed gives the
      same split.
  """
  check_dataset("ds", ds)
  _validation.check_seed("seed", seed)
  n = len(ds)
  return [ds.take(idx) for idx in split_indices(n, sizes, seed=seed)]


def _split_counts(n: int, sizes) -> list[int]:
  """The part sizes of a partition of ``n`` examples: ``sizes`` as integer
  counts (non-negative, summing to at most ``n``), or as float fractions
  summing to 1 (rounded; the last part takes the remainder). The rule
  :func:`split_dataset` and :func:`split_indices` share."""
  if isinstance(sizes, (str, bytes)) or np.ndim(sizes) != 1:
    raise ValueError(
        f"sizes must be a sequence of part sizes, e.g. [100, {n - 100 if n > 100 else 0}] "
        f"(counts) or [0.8, 0.2] (fractions); got {sizes!r}.")
  sizes = list(sizes)
  if not all(isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)
             for s in sizes):
    raise ValueError(f"sizes must be integer counts or float fractions; got {sizes}.")
  floats = [isinstance(s, (float, np.floating)) for s in sizes]
  if any(floats) and not all(floats):
    raise ValueError(
        f"sizes must be all counts (integers) or all fractions (floats summing to 1), not a "
        f"mix; got {sizes}: write the counts as integers, or every size as a fraction.")
  if sizes and all(floats):
    total = float(sum(sizes))
    if any(not np.isfinite(s) or s < 0 for s in sizes) or not np.isclose(total, 1.0):
      raise ValueError(f"sizes given as fractions must sum to 1, each non-negative; got "
                       f"{sizes} (sum {total:g}).")
    counts = [int(round(s * n)) for s in sizes]
    counts[-1] = n - sum(counts[:-1])
    return counts
  counts = [int(s) for s in sizes]
  if any(c < 0 for c in counts) or sum(counts) > n:
    raise ValueError(
        f"sizes must be non-negative counts summing to at most {n}; got {sizes}.")
  return counts


def split_indices(n: int, counts, *, seed: int) -> list[np.ndarray]:
  """The sorted example indices of each part of :func:`split_dataset`'s
  partition of ``n`` examples into ``counts`` (e.g. to align per-example side
  data such as CIFAR-10H soft labels with a split). ``counts`` follows
  :func:`split_dataset`'s ``sizes`` rule: integer counts, or fractions
  summing to 1."""
  _validation.check_nonnegative("n", n, integer=True)
  _validation.check_seed("seed", seed)
  counts = _split_counts(int(n), counts)
  perm = np.random.default_rng(seed).permutation(n)
  out, start = [], 0
  for c in counts:
    out.append(np.sort(perm[start:start + int(c)]))
    start += int(c)
  return out


def paper_split(name: str, *, data_dir: str | None = None, seed: int = 0,
                source: str = "auto") -> dict[str, Dataset]:
  """Train / validation / test splits used by the papers reimplemented here.

  CIFAR-10 (Wu et al.): the 50000 training images; the 10000 test images split
  at random into 5000 validation and 5000 test images. Other datasets: the
  training set, and the test set halved the same way.
  """
  _validation.check_seed("seed", seed)
  train = load(name, "train", data_dir=data_dir, source=source, seed=seed)
  test = load(name, "test", data_dir=data_dir, source=source, seed=seed)
  half = len(test) // 2
  val, test = split_dataset(test, (half, len(test) - half), seed=seed)
  return {"train": train, "validation": val, "test": test}


def paper_split_indices(num_test: int = 10000, *, seed: int = 0) -> dict[str, np.ndarray]:
  """Indices into the test set of :func:`paper_split`'s validation and test halves."""
  _validation.check_seed("seed", seed)
  _validation.check_positive("num_test", num_test, integer=True)
  if num_test < 2:
    raise ValueError(f"num_test must be at least 2 (one example for each half); got {num_test}.")
  half = num_test // 2
  val, test = split_indices(num_test, (half, num_test - half), seed=seed)
  return {"validation": val, "test": test}


HUMAN_LABEL_FILES = {
    "cifar10h": "cifar10h-probs.npy",
    "cifar10_chl": "cifar10_chl_ratings.npy",
}
"""Human judgements of CIFAR-10, read from the local data folder.

``cifar10h``: (10000, 10) soft labels of the CIFAR-10 test set (Peterson et
al., ICCV 2019; github.com/jcpeterson/cifar-10h, CC BY-NC-SA 4.0), in test-set
order. ``cifar10_chl``: (10, 10) class-level 0-4 Likert ratings of Olmo et
al. (ICCV 2021; github.com/aOlmo/weighted-misclassifications,
``confusion_matrices/cifar10_CHL_cmat.npy``)."""


def load_human_labels(name: str, *, data_dir: str | None = None) -> np.ndarray:
  """``cifar10h`` soft labels or ``cifar10_chl`` ratings (:data:`HUMAN_LABEL_FILES`).

  Neither has a tfds or scikit-learn loader: download the file named in
  :data:`HUMAN_LABEL_FILES`'s docstring into ``data_dir`` (or
  ``$EXPLICABLE_JAX_DATA``).
  """
  _validation.lookup("human label set", name, HUMAN_LABEL_FILES)
  folder = local_data_dir(data_dir)
  fname = HUMAN_LABEL_FILES[name]
  path = os.path.join(folder, fname) if folder else None
  if not path or not os.path.exists(path):
    where = f"the folder {folder!r}" if folder else (
        f"a folder given as data_dir= or in ${DATA_ENV}")
    source = ("github.com/jcpeterson/cifar-10h (data/cifar10h-probs.npy)" if name == "cifar10h"
              else "github.com/aOlmo/weighted-misclassifications "
                   "(confusion_matrices/cifar10_CHL_cmat.npy)")
    raise DataNotFoundError(
        f"Could not find {fname} for {name!r} in {where}; download it from {source} "
        f"and save it there as {fname}.")
  return np.load(path)


def to_float(x: np.ndarray) -> np.ndarray:
  """A model's inputs as ``float32``, images in ``[0, 1]``: the checked
  :func:`explicable_jax.conventions.check_inputs` (integer pixels are divided
  by 255; float images off the [0, 1] scale and ambiguous integer vectors
  raise)."""
  return conventions.check_inputs("x", np.asarray(x) if not hasattr(x, "shape") else x)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
  """The shuffling order of epoch ``epoch``: a pure function of its arguments."""
  _validation.check_nonnegative("n", n, integer=True)
  _validation.check_nonnegative("epoch", epoch, integer=True)
  _validation.check_seed("seed", seed)
  return np.random.default_rng([seed, epoch]).permutation(n)


@conventions.boundary()
@conventions.boundary()
def batches(ds: Dataset, batch_size: int, *, shuffle: bool = False,
            seed: int = 0, epoch: int = 0, drop_remainder: bool = False,
            start: int = 0, rows: slice | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Yields ``{"x", "y", "mask", **ds.extras}`` numpy batches of a fixed size.

  Without ``drop_remainder`` the last batch is padded (with copies of the
  first example) to ``batch_size`` and ``mask`` marks the real examples, so
  jitted steps see one shape. ``start`` skips the first batches (resuming).
  ``rows`` (a slice of ``range(batch_size)``) yields only those rows of each
  batch and gathers only their examples: in a multi-process run each process
  reads the rows its devices hold (``training.parallel.process_rows``), so a
  memory-mapped ``ds.x`` (``np.load(path, mmap_mode="r")``) is read from disk
  by each host for its share only.
  """
  check_dataset("ds", ds)
  _validation.check_positive("batch_size", batch_size, integer=True)
  _validation.check_seed("seed", seed)
  _validation.check_nonnegative("epoch", epoch, integer=True)
  if not shuffle and (seed != 0 or epoch != 0):
    raise ValueError(
        f"seed and epoch set the shuffling order, read only with shuffle=True; got "
        f"seed={seed}, epoch={epoch} with shuffle=False, which ignores them: pass "
        "shuffle=True, or drop seed and epoch.")
  _validation.check_nonnegative("start", start, integer=True)
  start = int(start)
  if rows is not None and (not isinstance(rows, slice) or rows.step not in (None, 1)
                           or len(range(batch_size)[rows]) == 0):
    raise ValueError(f"rows must be a non-empty contiguous slice of the {batch_size} rows of a "
                     f"batch; got {rows!r}.")
  if rows is not None and ((rows.start or 0) < 0 or (rows.stop is not None and not
                                                      0 < rows.stop <= batch_size)):
    raise ValueError(f"rows must lie inside the {batch_size} rows of a batch (no negative or "
                     f"clipped bounds); got {rows!r}.")
  n = len(ds)
  order = epoch_permutation(n, seed, epoch) if shuffle else np.arange(n)
  nb = n // batch_size if drop_remainder else -(-n // batch_size)
  if nb == 0 and n:
    raise ValueError(f"batch_size={batch_size} with drop_remainder=True leaves no batch of the "
                     f"{n} examples; use a batch_size of at most {n} or drop_remainder=False.")
  if start > nb:
    raise ValueError(f"start must be at most the {nb} batches of an epoch (batch_size="
                     f"{batch_size}, {n} examples); got {start}.")
  for b in range(start, nb):
    idx = order[b * batch_size:(b + 1) * batch_size]
    mask = np.ones(batch_size, bool)
    if len(idx) < batch_size:
      mask[len(idx):] = False
      idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[0])])
    if rows is not None:
      idx, mask = idx[rows], mask[rows]
    yield {"x": ds.x[idx], "y": ds.y[idx], "mask": mask,
           **{k: v[idx] for k, v in ds.extras.items()}}


@conventions.boundary(drop_remainder="flag")
def num_batches(n: int, batch_size: int, drop_remainder: bool) -> int:
  """Batches of ``batch_size`` in ``n`` examples (a last partial one unless
  ``drop_remainder``)."""
  _validation.check_nonnegative("n", n, integer=True)
  _validation.check_positive("batch_size", batch_size, integer=True)
  return n // batch_size if drop_remainder else -(-n // batch_size)


from explicable_jax.data.augment import augment_cifar, random_crop_flip  # noqa: E402
from explicable_jax.data import parts, rrr  # noqa: E402

# The generated and annotated sets live in their own modules; the registry is
# written here, in its own package, never by them.
DATASETS.update({"toy_colors": rrr.toy_colors, "decoy_mnist": rrr.decoy_mnist,
                 "decoy_digits": rrr.decoy_digits, "newsgroups": rrr.newsgroups,
                 "parts_shapes": parts.parts_dataset})

__all__ = [
    "Dataset", "DATASETS", "LOCAL_FILES", "DataNotFoundError", "load",
    "register_dataset", "split_dataset", "paper_split", "batches", "to_float",
    "epoch_permutation", "num_batches", "check_dataset", "augment_cifar", "random_crop_flip",
    "local_data_dir", "CIFAR10_CLASSES", "JPEG_CAVEAT", "split_indices",
    "paper_split_indices", "load_human_labels", "HUMAN_LABEL_FILES", "network_reachable", "rrr",
    "parts",
]
