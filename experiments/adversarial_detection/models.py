"""Wang et al.'s MNIST models as pure functions, and their image round trip.

* :func:`lenet_init` / :func:`lenet_apply`: ``MnistNet4`` of
  ``models/lenet.py`` (conv 6@5x5 pad 2, pool, conv 16@5x5, pool, 120, 84,
  10, ReLU), on ``[0, 1]`` NHWC images normalised inside with their MNIST
  constants ``(0.1307, 0.3081)`` (``utils/data_manger.py``), so attack
  budgets are in pixel units: their ``eps`` in normalised units is ``eps *
  0.3081`` here.
* :func:`subst_init` / :func:`subst_apply`: the substitute ``ArchA`` of
  ``attacks/attack_type/blackBox.py`` (conv 32@2x2, pool, conv 64@2x2, pool,
  200, 200, 10).
* :func:`their_png_round_trip`: what saving with ``scipy.misc.imsave`` and
  reloading did to every adversarial image (``attacks/attack_util.py``,
  ``save_imgs_tensor``): the float image is min-max stretched to ``0..255``
  (scipy's ``bytescale``), rounded to ``uint8``, read back as ``/255``.
* :func:`their_fgsm`: their FGSM (``attacks/attack_type/fgsm.py``) takes
  ``F.nll_loss`` of the *logits* (``MnistNet4`` returns logits), i.e. the
  sign of ``-dZ_y/dx``, not of the cross-entropy gradient.

Parameters are nested dicts with ``kernel`` / ``bias`` leaves (Flax layout,
output axis last), the names :mod:`explicable_jax.mutation` reads.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MEAN, STD = 0.1307, 0.3081


def _torch_uniform(key, shape, fan_in):
  """torch's default ``Conv2d``/``Linear`` initialisation, U(-1/sqrt(fan_in), ...)."""
  bound = 1.0 / np.sqrt(fan_in)
  return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def _conv_params(key, kh, kw, cin, cout):
  k1, k2 = jax.random.split(key)
  fan_in = kh * kw * cin
  return {"kernel": _torch_uniform(k1, (kh, kw, cin, cout), fan_in),
          "bias": _torch_uniform(k2, (cout,), fan_in)}


def _dense_params(key, din, dout):
  k1, k2 = jax.random.split(key)
  return {"kernel": _torch_uniform(k1, (din, dout), din), "bias": _torch_uniform(k2, (dout,), din)}


def _conv(p, x, padding):
  y = jax.lax.conv_general_dilated(x, p["kernel"], (1, 1), padding,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + p["bias"]


def _pool(x):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def lenet_init(key):
  k = jax.random.split(key, 5)
  return {"conv1": _conv_params(k[0], 5, 5, 1, 6), "conv2": _conv_params(k[1], 5, 5, 6, 16),
          "fc1": _dense_params(k[2], 400, 120), "fc2": _dense_params(k[3], 120, 84),
          "fc3": _dense_params(k[4], 84, 10)}


def lenet_features(params, x, *, dropout_key=None, rate=0.5):
  """The 84-d last hidden layer (after ReLU; Wang et al.'s
  ``last_hd_layer_output`` for Feinman et al.'s density). With
  ``dropout_key``: their ``get_dropout_ouput`` (channel dropout after the
  second pooling, unit dropout after ``fc2``)."""
  h = (x - MEAN) / STD
  h = _pool(jax.nn.relu(_conv(params["conv1"], h, ((2, 2), (2, 2)))))
  h = _pool(jax.nn.relu(_conv(params["conv2"], h, "VALID")))
  if dropout_key is not None:
    k1, dropout_key = jax.random.split(dropout_key)
    keep = jax.random.bernoulli(k1, 1 - rate, (h.shape[0], 1, 1, h.shape[-1]))
    h = jnp.where(keep, h / (1 - rate), 0.0)
  # torch flattens (C, H, W); the order only matters for copying weights.
  h = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], -1)
  h = jax.nn.relu(h @ params["fc1"]["kernel"] + params["fc1"]["bias"])
  h = jax.nn.relu(h @ params["fc2"]["kernel"] + params["fc2"]["bias"])
  if dropout_key is not None:
    keep = jax.random.bernoulli(dropout_key, 1 - rate, h.shape)
    h = jnp.where(keep, h / (1 - rate), 0.0)
  return h


def lenet_head(params, h):
  return h @ params["fc3"]["kernel"] + params["fc3"]["bias"]


def lenet_apply(params, x):
  return lenet_head(params, lenet_features(params, x))


def subst_init(key):
  k = jax.random.split(key, 5)
  return {"conv1": _conv_params(k[0], 2, 2, 1, 32), "conv2": _conv_params(k[1], 2, 2, 32, 64),
          "fc1": _dense_params(k[2], 64 * 6 * 6, 200), "fc2": _dense_params(k[3], 200, 200),
          "fc3": _dense_params(k[4], 200, 10)}


def subst_apply(params, x):
  h = (x - MEAN) / STD
  h = _pool(jax.nn.relu(_conv(params["conv1"], h, "VALID")))
  h = _pool(jax.nn.relu(_conv(params["conv2"], h, "VALID")))
  h = h.reshape(h.shape[0], -1)
  h = jax.nn.relu(h @ params["fc1"]["kernel"] + params["fc1"]["bias"])
  h = jax.nn.relu(h @ params["fc2"]["kernel"] + params["fc2"]["bias"])
  return h @ params["fc3"]["kernel"] + params["fc3"]["bias"]


def their_png_round_trip(x: np.ndarray) -> np.ndarray:
  """scipy's ``imsave`` of a float image then ``ToTensor``: per image
  ``round(255 (x - min) / (max - min))``, then ``/ 255`` (the stretch is
  the same in normalised and pixel units: it is affine invariant)."""
  x = np.asarray(x, np.float64)
  flat = x.reshape(len(x), -1)
  lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
  scale = np.where(hi > lo, 255.0 / np.where(hi > lo, hi - lo, 1.0), 0.0)
  u8 = np.clip((flat - lo) * scale, 0, 255) + 0.5
  return (u8.astype(np.uint8).astype(np.float32) / 255.0).reshape(x.shape)


def their_fgsm(logits_fn, x, labels, epsilon):
  """``x + eps * sign(-dZ_y/dx)``: FGSM with ``nll_loss`` on logits, unclipped."""
  def loss(v):
    return -jnp.take_along_axis(logits_fn(v), labels[:, None], axis=1).sum()
  return x + epsilon * jnp.sign(jax.grad(loss)(x))
