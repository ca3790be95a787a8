"""Noise and the CIFAR-10-C corruptions (Hendrycks and Dietterich, ICLR 2019).

* :func:`gaussian_noise` -- additive noise (Olmo et al. use ``stddev=0.2``).
* :func:`corrupt` -- the CIFAR-10-C corruptions at severities 1..5, generated
  in code with the constants of their ``make_cifar_c.py``: ``gaussian_noise``,
  ``shot_noise``, ``defocus_blur``, ``contrast``, ``brightness`` (pure JAX)
  and ``jpeg_compression`` (Pillow, on the host). We use them as the
  out-of-distribution set because CIFAR-10.1 is not available offline. The
  published CIFAR-10-C stores each image as ``uint8`` after the corruption;
  ours stay float (a difference below 1/255 per pixel).
* :func:`corruption_suite` -- every (corruption, severity) pair, each with
  its own key.
"""
from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax.robustness._common import _check_clip, _check_images, _clip

__all__ = [
    "CORRUPTIONS", "CORRUPTION_CONSTANTS", "SEVERITIES", "corrupt", "corruption_suite",
    "defocus_kernel", "gaussian_noise",
]


@conventions.boundary(x="images", stddev="perturbation")
def gaussian_noise(key: jax.Array, x, stddev: float, *,
                   clip: tuple[float, float] | None = None) -> jax.Array:
  """``x + stddev * N(0, I)``, optionally clipped.

  Olmo et al. evaluate with ``stddev=0.2`` on ``[0, 1]`` images and no
  clipping; CIFAR-10-C's ``gaussian_noise`` (see :func:`corrupt`) is the
  clipped, milder version.
  """
  key = _validation.check_key("key", key, call="gaussian_noise(key, ...)")
  _validation.check_nonnegative("stddev", stddev)
  clip = _check_clip(clip, x)
  x = jnp.asarray(x)
  return _clip(x + stddev * jax.random.normal(key, x.shape, x.dtype), clip)


# ---------------------------------------------------------------------------
# CIFAR-10-C corruptions (Hendrycks and Dietterich, ICLR 2019).

SEVERITIES = (1, 2, 3, 4, 5)

CORRUPTION_CONSTANTS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),      # noise stddev
    "shot_noise": (500, 250, 100, 75, 50),                  # photons per unit
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),               # contrast factor
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),             # added to HSV value
    "jpeg_compression": (80, 65, 58, 50, 40),               # JPEG quality
}
"""The CIFAR-10 constants of ``make_cifar_c.py``, severity 1 first."""

CORRUPTIONS = tuple(CORRUPTION_CONSTANTS)


def _gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
  r = np.arange(size) - (size - 1) / 2
  k = np.exp(-r ** 2 / (2 * sigma ** 2))
  return k / k.sum()


def defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
  """The anti-aliased disk of CIFAR-10-C's defocus blur, ``17 x 17``.

  A disk of ``radius`` pixels on ``[-8, 8]^2``, normalised to sum 1, then a
  ``3 x 3`` Gaussian blur of standard deviation ``alias_blur`` (OpenCV's
  ``GaussianBlur`` with its default reflect-101 border).
  """
  _validation.check_positive("radius", radius)
  _validation.check_positive("alias_blur", alias_blur)
  coords = np.arange(-8, 9)
  xx, yy = np.meshgrid(coords, coords)
  disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
  disk /= disk.sum()
  g = _gaussian_kernel_1d(3, alias_blur)
  padded = np.pad(disk, 1, mode="reflect")
  out = np.zeros_like(disk)
  for i in range(3):
    for j in range(3):
      out += g[i] * g[j] * padded[i:i + 17, j:j + 17]
  return out.astype(np.float32)


def _filter_same_reflect(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Each channel correlated with ``kernel``, reflect-101 border (OpenCV's
  ``filter2D`` default); ``x`` is ``(N, H, W, C)``."""
  k = kernel.shape[0] // 2
  c = x.shape[-1]
  xp = jnp.pad(x, ((0, 0), (k, k), (k, k), (0, 0)), mode="reflect")
  w = jnp.tile(kernel.astype(x.dtype)[:, :, None, None], (1, 1, 1, c))
  return jax.lax.conv_general_dilated(
      xp, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=c, precision=jax.lax.Precision.HIGHEST)


def _brightness(x: jax.Array, c: float) -> jax.Array:
  """Add ``c`` to the HSV value, clipped to 1, hue and saturation kept.

  In HSV every RGB channel is ``v`` times a factor fixed by ``(h, s)``, so
  the round trip is a rescaling by ``v' / v`` (a black pixel, ``s = 0``,
  becomes grey ``v'``).
  """
  v = x.max(axis=-1, keepdims=True)
  v_new = jnp.minimum(v + c, 1.0)
  safe_v = jnp.where(v > 0, v, 1.0)
  return jnp.where(v > 0, x * (v_new / safe_v), v_new)


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
  from PIL import Image  # Host side (Pillow, a declared dependency).
  out = np.empty_like(x)
  for i, img in enumerate(np.asarray(x)):
    u8 = np.uint8(np.clip(img, 0, 1) * 255)
    pil = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=int(quality))
    dec = np.asarray(Image.open(buf), dtype=np.float32) / 255.0
    out[i] = dec.reshape(img.shape)
  return out


@conventions.boundary(x="images")
def corrupt(key: jax.Array, x, corruption: str, severity: int) -> jax.Array:
  """One CIFAR-10-C corruption of a batch of ``[0, 1]`` NHWC images.

  Args:
    key: PRNG key (used by the noise corruptions; others ignore it).
    x: ``(N, H, W, C)`` images in ``[0, 1]``.
    corruption: one of :data:`CORRUPTIONS`.
    severity: 1 (mild) to 5 (severe).

  Returns:
    The corrupted images, clipped to ``[0, 1]``:

    * ``gaussian_noise``: ``x + c N(0, I)``;
    * ``shot_noise``: ``Poisson(c x) / c``;
    * ``defocus_blur``: each channel correlated with :func:`defocus_kernel`;
    * ``contrast``: ``(x - m) c + m``, ``m`` the per-image channel means;
    * ``brightness``: HSV value ``+ c`` (:func:`_brightness`);
    * ``jpeg_compression``: Pillow JPEG at quality ``c`` of the ``uint8`` image.
  """
  key = _validation.check_key("key", key, call="corrupt(key, ...)")
  _validation.check_choice("corruption", corruption, CORRUPTIONS)
  _validation.check_choice("severity", severity, SEVERITIES)
  _check_images("x", x)
  _warn_off_benchmark(corruption, np.shape(x))
  c = CORRUPTION_CONSTANTS[corruption][severity - 1]
  if corruption == "jpeg_compression":
    return jnp.asarray(_jpeg(np.asarray(x, np.float32), c))
  # The constant is an argument, not a static: one compilation serves all
  # five severities.
  param = defocus_kernel(*c) if corruption == "defocus_blur" else np.float32(c)
  return _corrupt_jax(key, jnp.asarray(x, jnp.float32), corruption, jnp.asarray(param))


# Corruptions whose constants are set for CIFAR-10's 32x32 RGB images (a
# blur kernel in pixels, JPEG blocks of 8x8 pixels, HSV brightness).
_SIZED = {"defocus_blur": "its blur radii are in CIFAR-10 pixels",
          "jpeg_compression": "JPEG works in 8x8 blocks of RGB pixels",
          "brightness": "it shifts the HSV value of RGB pixels"}


def _warn_off_benchmark(corruption: str, shape) -> None:
  """A warning where a corruption's CIFAR-10-C constants do not fit the
  images (not 32x32 RGB): the result is a corruption, not the benchmark's."""
  if corruption not in _SIZED or tuple(shape[1:]) == (32, 32, 3):
    return
  import warnings
  warnings.warn(
      f"corrupt: {corruption}'s CIFAR-10-C constants are for 32x32 RGB images ({_SIZED[corruption]}); "
      f"on images of shape {tuple(shape[1:])} the result is not the benchmark's "
      "corruption at this severity.", UserWarning, stacklevel=_validation.user_stacklevel())


@functools.partial(jax.jit, static_argnums=(2,))
def _corrupt_jax(key, x, corruption, c):
  if corruption == "gaussian_noise":
    y = x + c * jax.random.normal(key, x.shape, x.dtype)
  elif corruption == "shot_noise":
    y = jax.random.poisson(key, x * c, x.shape).astype(x.dtype) / c
  elif corruption == "defocus_blur":
    y = _filter_same_reflect(x, c)
  elif corruption == "contrast":
    m = x.mean(axis=(1, 2), keepdims=True)
    y = (x - m) * c + m
  elif corruption == "brightness":
    y = _brightness(x, c)
  else:  # pragma: no cover - guarded by corrupt()
    raise ValueError(corruption)
  return jnp.clip(y, 0.0, 1.0)


@conventions.boundary(x="images")
def corruption_suite(key: jax.Array, x, *, corruptions: Sequence[str] = CORRUPTIONS,
                     severities: Sequence[int] = SEVERITIES):
  """Yields ``(corruption, severity, images)`` for every pair, each with its
  own key, ``fold_in`` of the corruption's index in :data:`CORRUPTIONS` and
  of the severity (like the CIFAR-10-C files): a corruption gets the same
  noise whichever others are asked for with it."""
  # Checked here, when called, not when the first item is drawn.
  key = _validation.check_key("key", key, call="corruption_suite(key, ...)")
  corruptions = _validation.check_names("corruptions", corruptions)
  severities = _validation.check_names("severities", severities, of="severities (1..5)")
  for name, values in (("corruptions", corruptions), ("severities", severities)):
    if not values:
      raise ValueError(f"{name} must hold at least one entry; got an empty sequence, "
                       "which makes an empty suite (a table with no rows).")
  for name in corruptions:
    _validation.check_choice("corruption", name, CORRUPTIONS)
  for s in severities:
    _validation.check_choice("severity", s, SEVERITIES)

  def pairs():
    for name in corruptions:
      for s in severities:
        k = jax.random.fold_in(jax.random.fold_in(key, CORRUPTIONS.index(name)), s)
        yield name, s, corrupt(k, x, name, s)
  return pairs()
