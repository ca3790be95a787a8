"""Data with known parts, for scoring deliberative explanations.

Wang and Vasconcelos score insecurities against CUB-200 part locations and
ADE20K segments: an insecurity between classes ``a`` and ``b`` should cover
the parts the two classes share. Neither image set is available offline, so
:func:`parts_dataset` generates images with the same kind of ground truth,
and :func:`load_cub_parts` reads CUB-200-2011's own annotations for users
who have the images.

Generated images (``parts_shapes``): 32x32 RGB, a noisy background and
``slots`` part positions (a 2x2 grid, jittered). There are ``num_parts``
part types (a shape drawn in a colour), and each class is a fixed set of
``parts_per_class`` parts placed in fixed slots (:func:`class_part_table`).
Classes overlap in their parts, so class pairs that share parts are the
ground-truth ambiguities, and each part is sometimes left out, so images are
genuinely ambiguous. Per image, ``extras`` holds ``part_centers`` ``(P, 2)``
(row, column; -1 when absent) and ``part_segments`` ``(H, W)`` (the part id
at each pixel, -1 for background).
"""
from __future__ import annotations

import math

import os
from typing import Any

import numpy as np

from explicable_jax import _validation
from explicable_jax.data import Dataset

__all__ = [
    "PALETTE", "PART_RADIUS", "SIZE", "SLOT_CENTERS", "class_part_table", "load_cub_parts",
    "parts_dataset", "shared_parts",
]

SIZE = 32
SLOT_CENTERS = ((8, 8), (8, 24), (24, 8), (24, 24))
PART_RADIUS = 5
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
                    [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230]], np.uint8)


def _shape_mask(kind: int) -> np.ndarray:
  """An 11x11 boolean glyph: 0 disk, 1 square, 2 cross, 3 ring, then diagonal
  stripes, triangle, plus-ring and checker for the rest."""
  r = PART_RADIUS
  yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
  kind = kind % 8
  if kind == 0:
    return xx ** 2 + yy ** 2 <= r * r
  if kind == 1:
    return (np.abs(xx) <= r - 1) & (np.abs(yy) <= r - 1)
  if kind == 2:
    return (np.abs(xx) <= 1) | (np.abs(yy) <= 1)
  if kind == 3:
    d = xx ** 2 + yy ** 2
    return (d <= r * r) & (d >= (r - 2) ** 2)
  if kind == 4:
    return ((xx + yy) % 4 < 2) & (np.abs(xx) <= r - 1) & (np.abs(yy) <= r - 1)
  if kind == 5:
    return (yy >= -r + 1) & (np.abs(xx) <= (yy + r) / 2)
  if kind == 6:
    return (np.abs(xx) + np.abs(yy) <= r) & (np.abs(xx) + np.abs(yy) >= r - 2)
  return ((xx // 2 + yy // 2) % 2 == 0) & (np.abs(xx) <= r - 1) & (np.abs(yy) <= r - 1)


def class_part_table(num_classes: int = 10, num_parts: int = 8, parts_per_class: int = 3,
                     seed: int = 0) -> np.ndarray:
  """``(C, slots)`` part ids (``-1`` = empty slot): which part each class
  shows in each slot. Classes are distinct and draw from a shared
  vocabulary, so many pairs share one or two parts in the same slot."""
  slots = len(SLOT_CENTERS)
  _validation.check_num_classes("num_classes", num_classes)
  if not 1 <= parts_per_class <= slots:
    raise ValueError(f"parts_per_class must be between 1 and {slots}; got {parts_per_class}.")
  if num_parts < 2:
    raise ValueError(f"num_parts must be at least 2; got {num_parts}.")
  possible = math.comb(slots, parts_per_class) * num_parts ** parts_per_class
  if num_classes > possible:
    raise ValueError(
        f"num_classes must be at most the {possible} distinct classes that {parts_per_class} "
        f"of {num_parts} parts in {slots} slots allow; got {num_classes}: raise num_parts or "
        "parts_per_class.")
  rng = np.random.default_rng([seed, 7])
  table: list[np.ndarray] = []
  seen: set[tuple[Any, ...]] = set()
  while len(table) < num_classes:
    row = np.full(slots, -1)
    used = rng.choice(slots, parts_per_class, replace=False)
    row[used] = rng.integers(0, num_parts, parts_per_class)
    key = tuple(row)
    if key not in seen:
      seen.add(key)
      table.append(row)
    if len(table) < num_classes and len(seen) >= possible:  # pragma: no cover - checked above
      raise ValueError("num_parts is too small for that many distinct classes.")
  return np.array(table)


def shared_parts(table: np.ndarray, a: int, b: int) -> np.ndarray:
  """Boolean over slots: the slots where classes ``a`` and ``b`` show the same part."""
  table = np.asarray(table)
  if table.ndim != 2:
    raise ValueError(f"table must be class_part_table's (classes, slots) array; got shape "
                     f"{table.shape}.")
  for name, c in (("a", a), ("b", b)):
    _validation.check_nonnegative(name, c, integer=True)
    if c >= len(table):
      raise ValueError(f"{name} must be a class of the table, in [0, {len(table)}); got {c}.")
  return (table[a] == table[b]) & (table[a] >= 0)


def parts_dataset(split: str = "train", data_dir=None, source="auto", seed: int = 0, *,
                  n: int | None = None, num_classes: int = 10, num_parts: int = 8,
                  parts_per_class: int = 3, drop_prob: float = 0.25,
                  noise: float = 40.0) -> Dataset:
  """The generated parts data set (see the module docstring); 20000 train /
  5000 test images by default. Slot ids stand for part ids in ``extras``:
  ``part_centers[n, s]`` is slot ``s``'s centre and ``part_segments`` holds
  the slot id of each part pixel.

  Its first four parameters are every registered loader's (``split``, ``data_dir``, ``source``,
  ``seed``); the keyword-only rest describe the generated task.
  """
  del data_dir, source
  _validation.check_choice("split", split, ("train", "test"))
  n = (20000 if split == "train" else 5000) if n is None else n
  _validation.check_positive("n", n, integer=True)
  _validation.check_fraction("drop_prob", drop_prob)
  table = class_part_table(num_classes, num_parts, parts_per_class, seed)
  glyphs = [_shape_mask(k) for k in range(num_parts)]
  rng = np.random.default_rng([seed, 0 if split == "train" else 1])
  y = rng.integers(0, num_classes, n).astype(np.int32)
  _validation.check_nonnegative("noise", noise)
  x = np.clip(rng.normal(128, noise, (n, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
  centers = np.full((n, len(SLOT_CENTERS), 2), -1, np.int32)
  segments = np.full((n, SIZE, SIZE), -1, np.int8)
  r = PART_RADIUS
  for i in range(n):
    for s, (cy, cx) in enumerate(SLOT_CENTERS):
      part = table[y[i], s]
      if part < 0 or rng.random() < drop_prob:
        continue
      cy2, cx2 = cy + rng.integers(-2, 3), cx + rng.integers(-2, 3)
      g = glyphs[part]
      window = (slice(cy2 - r, cy2 + r + 1), slice(cx2 - r, cx2 + r + 1))
      x[i][window][g] = PALETTE[part % len(PALETTE)]
      segments[i][window][g] = s
      centers[i, s] = (cy2, cx2)
  return Dataset(x, y, num_classes, tuple(f"class {c}" for c in range(num_classes)),
                 "parts_shapes", note=f"generated (seed {seed}); parts table seed {seed}",
                 extras={"part_centers": centers, "part_segments": segments})




def load_cub_parts(root: str) -> dict[str, np.ndarray]:
  """CUB-200-2011 part annotations from its folder (``images.txt``,
  ``image_class_labels.txt``, ``parts/part_locs.txt``).

  Returns ``{"paths": (N,) image paths relative to root/images,
  "labels": (N,) 0-based classes, "part_locs": (N, 15, 2) (x, y) pixel
  coordinates, "visible": (N, 15) bool}``, in image-id order.
  """
  def lines(rel):
    path = os.path.join(root, rel)
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"root must be the CUB_200_2011 folder; {path!r} does not exist "
          "(get it from https://www.vision.caltech.edu/datasets/cub_200_2011/).")
    with open(path) as f:
      return [ln.split() for ln in f if ln.strip()]
  images = lines("images.txt")
  ids = {int(i): k for k, (i, _) in enumerate(images)}
  labels = np.zeros(len(images), np.int32)
  for i, c in lines("image_class_labels.txt"):
    labels[ids[int(i)]] = int(c) - 1
  locs = np.zeros((len(images), 15, 2), np.float32)
  visible = np.zeros((len(images), 15), bool)
  for row in lines(os.path.join("parts", "part_locs.txt")):
    i, p, px, py, vis = int(row[0]), int(row[1]), float(row[2]), float(row[3]), int(row[4])
    locs[ids[i], p - 1] = (px, py)
    visible[ids[i], p - 1] = bool(vis)
  return {"paths": np.array([p for _, p in images]), "labels": labels,
          "part_locs": locs, "visible": visible}
