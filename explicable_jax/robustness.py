"""Robustness tests: adversarial attacks, Gaussian noise, CIFAR-10-C corruptions.

Images are NHWC floats in ``[0, 1]`` (what :mod:`explicable_jax.data` gives);
``epsilon``, noise levels and clipping are in those input units, so
``epsilon=8/255`` is the usual CIFAR L-inf budget. Models enter as
a :class:`~explicable_jax.models.Classifier` or any ``logits_fn(x) -> (N, C)``.

* :func:`fgsm` -- Goodfellow et al. (2015), ``x + eps * sign(grad_x L)``.
* :func:`pgd` -- Madry et al. (2018), projected sign-gradient ascent in the
  L-inf ball with a random start.
* :func:`gaussian_noise` -- additive noise (Olmo et al. use ``stddev=0.2``).
* :func:`corrupt` -- the CIFAR-10-C corruptions of Hendrycks and Dietterich
  (ICLR 2019) at severities 1..5, generated in code with the constants of
  their ``make_cifar_c.py``: ``gaussian_noise``, ``shot_noise``,
  ``defocus_blur``, ``contrast``, ``brightness`` (pure JAX) and
  ``jpeg_compression`` (Pillow, on the host). We use them as the
  out-of-distribution set because CIFAR-10.1 is not available offline. The
  published CIFAR-10-C stores each image as ``uint8`` after the corruption;
  ours stay float (a difference below 1/255 per pixel).
"""
from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import _validation
from explicable_jax.attribution import _common

LogitsFn = Callable[[jax.Array], jax.Array]


def _check_images(name: str, x) -> None:
  shape = tuple(np.shape(x))
  if len(shape) != 4:
    raise ValueError(f"{name} must be a batch of NHWC images (rank 4); got shape {shape}.")


def _check_labels(labels, n: int, logits_fn=None, x=None) -> None:
  """``labels`` must be ``(n,)``; with the model, also in ``[0, classes)``
  (checked when concrete; traced labels are the caller's to check)."""
  shape = tuple(np.shape(labels))
  if shape != (n,):
    raise ValueError(f"labels must have shape ({n},), one per image; got {shape}.")
  if logits_fn is None or isinstance(labels, jax.core.Tracer):
    return  # traced labels (inside jit/vmap) are the caller's to check
  from explicable_jax.models import Classifier
  if isinstance(logits_fn, Classifier):
    classes = logits_fn.num_classes  # static: no trace
  else:
    classes = int(jax.eval_shape(lambda v: logits_fn(v),
                                 jax.ShapeDtypeStruct(np.shape(x), jnp.float32)).shape[-1])
  _validation.check_labels("labels", labels, classes)


def _check_clip(clip) -> tuple[float, float] | None:
  if clip is None:
    return None
  try:
    lo, hi = (float(c) for c in clip)
  except (TypeError, ValueError):
    raise ValueError(f"clip must be None or a pair (low, high); got {clip!r}.") from None
  if not lo < hi:
    raise ValueError(f"clip must satisfy low < high; got {clip!r}.")
  return lo, hi


def _clip(x, clip):
  return x if clip is None else jnp.clip(x, clip[0], clip[1])


def _loss_gradient(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array) -> jax.Array:
  """Gradient of each example's own cross-entropy with respect to its input.

  The sum over the batch has the per-example gradients as its gradient
  because examples do not interact in evaluation mode (no batch statistics).
  """
  def total(x):
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(x), labels).sum()
  return jax.grad(total)(x)


def fgsm(logits_fn: LogitsFn, x, labels, epsilon: float, *,
         clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """Fast gradient sign method (Goodfellow, Shlens and Szegedy, ICLR 2015).

  .. math:: x' = \\mathrm{clip}(x + \\epsilon\\, \\mathrm{sign}(\\nabla_x L(f(x), y)))

  Args:
    logits_fn: ``x -> logits`` of a model in evaluation mode, or a
      :class:`~explicable_jax.models.Classifier`.
    x: ``(N, H, W, C)`` images in input units.
    labels: ``(N,)`` true classes (the loss is raised for these).
    epsilon: L-inf budget in input units (Olmo et al.: 0.3 on ``[0, 1]``).
    clip: valid input range, or ``None``.
  """
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0], logits_fn, x)
  _validation.check_nonnegative("epsilon", epsilon)
  clip = _check_clip(clip)
  return _by_model(_fgsm, _fgsm_classifier, logits_fn)(
      logits_fn, jnp.asarray(x), jnp.asarray(labels), float(epsilon), clip)


def _by_model(static_fn, classifier_fn, model):
  """The jitted attack for ``model``: a Classifier crosses ``jit`` as an
  argument (one compilation for any params, none kept alive in the cache);
  any other ``logits_fn`` is a static argument."""
  from explicable_jax.models import Classifier
  return classifier_fn if isinstance(model, Classifier) else static_fn


def _fgsm_impl(logits_fn, x, labels, epsilon, clip):
  g = _loss_gradient(logits_fn, x, labels)
  return _clip(x + epsilon * jnp.sign(g), clip)


_fgsm = jax.jit(_fgsm_impl, static_argnums=(0, 4))
_fgsm_classifier = jax.jit(_fgsm_impl, static_argnums=(4,))


MAX_UNROLLED_STEPS = _common.MAX_UNROLLED_CHUNKS
"""PGD loops of at most this many steps are unrolled, by the attribution
suite's rule: on XLA:CPU a conv's input gradient inside a ``lax`` loop runs
several times slower (``python -m benchmarks.attribution`` measures it)."""


def pgd(key: jax.Array, logits_fn: LogitsFn, x, labels, epsilon: float, *,
        steps: int = 10, step_size: float | None = None, random_start: bool = True,
        clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """Projected gradient descent in the L-inf ball (Madry et al., ICLR 2018).

  .. math:: x^{t+1} = \\Pi_{\\|x' - x\\|_\\infty \\le \\epsilon}
            \\mathrm{clip}(x^t + \\alpha\\, \\mathrm{sign}(\\nabla_x L(f(x^t), y)))

  starting from ``x`` plus uniform noise in the ball (``random_start``).

  Args:
    logits_fn: ``x -> logits`` of a model in evaluation mode, or a
      :class:`~explicable_jax.models.Classifier`.
    x: ``(N, H, W, C)`` images; labels: ``(N,)`` true classes.
    epsilon: L-inf radius in input units.
    key: PRNG key of the random start.
    steps: gradient steps.
    step_size: ``alpha``; default ``2.5 * epsilon / steps`` (Madry et al.).
    random_start: start from a uniform point of the ball.
    clip: valid input range, or ``None``.
  """
  key = _validation.check_key("key", key, call="pgd(key, logits_fn, x, labels, epsilon)")
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0], logits_fn, x)
  _validation.check_nonnegative("epsilon", epsilon)
  _validation.check_positive("steps", steps, integer=True)
  if step_size is None:
    step_size = 2.5 * epsilon / steps
  _validation.check_nonnegative("step_size", step_size)
  clip = _check_clip(clip)
  return _by_model(_pgd, _pgd_classifier, logits_fn)(
      logits_fn, jnp.asarray(x), jnp.asarray(labels), key, float(epsilon),
      float(step_size), int(steps), bool(random_start), clip)


def _pgd_impl(logits_fn, x, labels, key, epsilon, step_size, steps, random_start, clip):
  x0 = x
  if random_start:
    x = _clip(x + jax.random.uniform(key, x.shape, x.dtype, -epsilon, epsilon), clip)

  def step(_, x):
    g = _loss_gradient(logits_fn, x, labels)
    x = x + step_size * jnp.sign(g)
    x = jnp.clip(x, x0 - epsilon, x0 + epsilon)
    return _clip(x, clip)

  if steps <= MAX_UNROLLED_STEPS:
    for i in range(steps):
      x = step(i, x)
    return x
  return jax.lax.fori_loop(0, steps, step, x)


_pgd = jax.jit(_pgd_impl, static_argnums=(0, 6, 7, 8))
_pgd_classifier = jax.jit(_pgd_impl, static_argnums=(6, 7, 8))


def gaussian_noise(key: jax.Array, x, stddev: float, *,
                   clip: tuple[float, float] | None = None) -> jax.Array:
  """``x + stddev * N(0, I)``, optionally clipped.

  Olmo et al. evaluate with ``stddev=0.2`` on ``[0, 1]`` images and no
  clipping; CIFAR-10-C's ``gaussian_noise`` (see :func:`corrupt`) is the
  clipped, milder version.
  """
  key = _validation.check_key("key", key, call="gaussian_noise(key, ...)")
  _validation.check_nonnegative("stddev", stddev)
  clip = _check_clip(clip)
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
  c = CORRUPTION_CONSTANTS[corruption][severity - 1]
  if corruption == "jpeg_compression":
    return jnp.asarray(_jpeg(np.asarray(x, np.float32), c))
  # The constant is an argument, not a static: one compilation serves all
  # five severities.
  param = defocus_kernel(*c) if corruption == "defocus_blur" else np.float32(c)
  return _corrupt_jax(key, jnp.asarray(x, jnp.float32), corruption, jnp.asarray(param))


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


def accuracy_under(logits_fn: LogitsFn, x, labels, *, batch_size: int = 500,
                   perturb: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None,
                   key: jax.Array | None = None) -> float:
  """Top-1 accuracy of a model on perturbed inputs.

  Example ``i`` is perturbed alone, as ``perturb(fold_in(key, i), x[i:i+1],
  y[i:i+1])`` (``jax.vmap``-ed over the batch), so the result does not depend
  on ``batch_size`` or on how the examples are ordered into batches; batches
  of ``batch_size`` go through the library's batching helper in one jitted
  call each, so memory stays bounded. ``perturb`` must be traceable (the
  attacks, noise and the JAX corruptions are; for the JPEG corruption,
  corrupt first with :func:`corrupt` and pass the images without
  ``perturb``).

  Args:
    logits_fn: ``x -> logits`` in evaluation mode, or a
      :class:`~explicable_jax.models.Classifier`.
    x, labels: ``(N, H, W, C)`` images and ``(N,)`` classes.
    perturb: ``(key, x_batch, y_batch) -> x_batch``, e.g.
      ``lambda k, x, y: fgsm(clf, x, y, 0.3)``.
    key: required with ``perturb``.
  """
  from explicable_jax import _batching
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0])
  _validation.check_positive("batch_size", batch_size, integer=True)
  if perturb is not None:
    if key is None:
      raise ValueError("key is required when perturb is given (explicit PRNG keys).")
    key = _validation.check_key("key", key)
  x, labels = np.asarray(x), np.asarray(labels)
  if len(x) == 0:
    raise ValueError("x is empty; accuracy of no examples is undefined.")
  model = logits_fn if _by_model(False, True, logits_fn) else None
  static = None if model is not None else logits_fn

  def correct(m, index, xb, yb):
    f = m if m is not None else static
    if perturb is not None:
      keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
      xb = jax.vmap(lambda k, xi, yi: perturb(k, xi[None], yi[None])[0])(keys, xb, yb)
    return jnp.argmax(f(xb), -1) == yb

  hits = _batching.map_batches(jax.jit(correct), [np.arange(len(x)), x, labels],
                               batch_size=batch_size, args=(model,))
  return float(np.mean(hits))


def corruption_suite(key: jax.Array, x, *, corruptions: Sequence[str] = CORRUPTIONS,
                     severities: Sequence[int] = SEVERITIES):
  """Yields ``(corruption, severity, images)`` for every pair, each with its
  own key, ``fold_in`` of the corruption's index in :data:`CORRUPTIONS` and
  of the severity (like the CIFAR-10-C files): a corruption gets the same
  noise whichever others are asked for with it."""
  # Checked here, when called, not when the first item is drawn.
  key = _validation.check_key("key", key, call="corruption_suite(key, ...)")
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
