"""Standard CIFAR augmentation as a jitted function of an explicit key."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _validation, conventions

__all__ = [
    "random_crop_flip",
]


def _check_padding(padding, hw) -> None:
  """``padding`` of the random crop: an int in ``[0, min(H, W))`` (a crop
  shifted by ``H`` or more pixels is all padding: zeros)."""
  _validation.check_nonnegative("padding", padding, integer=True)
  if padding >= min(hw):
    raise ValueError(f"padding must be smaller than the images' height and width {tuple(hw)} "
                     f"(a crop shifted that far is all zeros); got {padding}.")


@conventions.boundary()
def random_crop_flip(key: jax.Array, image: jax.Array, *, padding: int = 4,
                     flip: bool = True) -> jax.Array:
  """One image: zero-pad by ``padding``, crop back at a random offset, and
  flip left-right with probability 1/2 (He et al. 2016, section 4.2)."""
  key = _validation.check_key("key", key, call="random_crop_flip(key, ...)")
  if np.ndim(image) != 3:
    raise ValueError(
        f"image must be one image (H, W, C); got shape {tuple(np.shape(image))}"
        + (": for a batch use data.augment_cifar(key, images), one key per image"
           if np.ndim(image) == 4 else "") + ".")
  _check_padding(padding, image.shape[:2])
  h, w, c = image.shape
  k_crop, k_flip = jax.random.split(key)
  padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  dy, dx = jax.random.randint(k_crop, (2,), 0, 2 * padding + 1)
  out = jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, c))
  if flip:
    out = jnp.where(jax.random.bernoulli(k_flip), out[:, ::-1, :], out)
  return out


def augment_cifar(key: jax.Array, images: jax.Array, *, padding: int = 4,
                  flip: bool = True) -> jax.Array:
  """A batch: :func:`random_crop_flip` with one key per image, via ``vmap``.

  ``images`` must be NHWC (``(N, H, W, C)``): the ``images`` convention's
  layout check (:func:`~explicable_jax.conventions.check_images`) refuses a
  channel-first batch, which would be cropped and flipped along the wrong
  axes; a concrete batch is also checked for its scale (``uint8`` pixels or
  ``[0, 1]`` floats, returned in the same dtype). Under ``jit`` only the
  layout is checked.
  """
  key = _validation.check_key("key", key, call="augment_cifar(key, ...)")
  conventions.check_images("images", images, convert=False, strict_range=False)
  return _augment_cifar(key, images, padding=padding, flip=flip)


@functools.partial(jax.jit, static_argnames=("padding", "flip"))
def _augment_cifar(key: jax.Array, images: jax.Array, *, padding: int, flip: bool):
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(functools.partial(random_crop_flip, padding=padding,
                                    flip=flip))(keys, images)
