"""Gradient attacks: FGSM, PGD and the JSMA; accuracy under a perturbation.

* :func:`fgsm` -- Goodfellow et al. (2015), ``x + eps * sign(grad_x L)``.
* :func:`pgd` -- Madry et al. (2018), projected sign-gradient ascent in the
  L-inf ball with a random start.
* :func:`jsma` -- Papernot et al. (EuroS&P 2016), the targeted Jacobian
  saliency map attack (cleverhans' two-feature variant, or one feature at a
  time).
* :func:`accuracy_under` -- top-1 accuracy on perturbed inputs.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax.attribution import _common as _attribution_common
from explicable_jax import _class_index
from explicable_jax.robustness._common import (
    check_targets_differ,
  LogitsFn,
  _by_model,
  _check_clip,
  _check_images,
  _check_labels,
  _clip,
  _loss_gradient,
)

__all__ = [
    "JSMA_PIXELS", "MAX_UNROLLED_STEPS", "accuracy_under", "fgsm", "jsma", "pgd",
    "random_targets",
]


@conventions.boundary(x="images", labels="labels", epsilon="perturbation")
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
  clip = _check_clip(clip, x)
  return _by_model(_fgsm, _fgsm_classifier, logits_fn)(
      logits_fn, jnp.asarray(x), jnp.asarray(labels), float(epsilon), clip)


def _fgsm_impl(logits_fn, x, labels, epsilon, clip):
  g = _loss_gradient(logits_fn, x, labels)
  return _clip(x + epsilon * jnp.sign(g), clip)


_fgsm = jax.jit(_fgsm_impl, static_argnums=(0, 4))
_fgsm_classifier = jax.jit(_fgsm_impl, static_argnums=(4,))


MAX_UNROLLED_STEPS = _attribution_common.MAX_UNROLLED_CHUNKS
"""PGD loops of at most this many steps are unrolled, by the attribution
suite's rule: on XLA:CPU a conv's input gradient inside a ``lax`` loop runs
several times slower (``python -m benchmarks.attribution`` measures it)."""


@conventions.boundary(x="images", labels="labels", epsilon="perturbation", step_size="perturbation")
def pgd(key: jax.Array, logits_fn: LogitsFn, x, labels, epsilon: float, *,
        steps: int = 10, step_size: float | None = None, random_start: bool = True,
        clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """Projected gradient descent in the L-inf ball (Madry et al., ICLR 2018).

  .. math:: x^{t+1} = \\Pi_{\\|x' - x\\|_\\infty \\le \\epsilon}
            \\mathrm{clip}(x^t + \\alpha\\, \\mathrm{sign}(\\nabla_x L(f(x^t), y)))

  starting from ``x`` plus uniform noise in the ball (``random_start``).

  Its keyword-only parameters are Madry et al.'s settings (steps, step size, random start, box)
  under the names of the common attack libraries.

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
  given_step = step_size is not None
  if step_size is None:
    step_size = 2.5 * epsilon / steps
  _validation.check_nonnegative("step_size", step_size)
  if step_size == 0 and epsilon > 0:
    raise ValueError("step_size must be positive: with step_size=0 the steps never move and "
                     "pgd returns its (random) start; leave it None for 2.5 epsilon / steps.")
  clip = _check_clip(clip, x)
  if given_step and step_size > epsilon > 0:
    import warnings
    warnings.warn(
        f"pgd: step_size={step_size!r} exceeds epsilon={epsilon!r}, so every step lands on "
        "the ball's boundary (FGSM repeated); the usual step is smaller, e.g. 2.5 epsilon / "
        "steps (the default).", UserWarning, stacklevel=_validation.user_stacklevel())
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


@conventions.boundary(x="images", labels="labels")
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
    _validation.check_signature("perturb", perturb, 3, "perturb(key, x_batch, y_batch) -> x_batch")
  elif key is not None:
    raise ValueError("key is read only with perturb (it seeds the perturbation); got a key "
                     "and no perturb, so nothing would be perturbed: pass perturb=, or drop "
                     "key.")
  x, labels = np.asarray(x), np.asarray(labels)
  if len(x) == 0:
    raise ValueError("x is empty; accuracy of no examples is undefined.")
  model = logits_fn if _by_model(False, True, logits_fn) else None
  static = None if model is not None else logits_fn
  clf = conventions.classifier_of(logits_fn)
  unit = clf is None or getattr(clf.spec, "input_range", (0.0, 1.0)) is not None

  def correct(m, index, xb, yb):
    f = m if m is not None else static
    if perturb is not None:
      keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(index)
      xb = jax.vmap(lambda k, xi, yi: _one_perturbed(perturb, k, xi[None], yi[None]))(
          keys, xb, yb)
    bad = conventions.image_scale_codes(xb, unit=perturb is not None and unit, perturbed=True)
    return jnp.argmax(f(xb), -1) == yb, bad

  hits, bad = _batching.map_batches(jax.jit(correct), [np.arange(len(x)), x, labels],
                                    batch_size=batch_size, args=(model,))
  for code, what in ((1, "NaN or inf"), (2, "values far off the images' [0, 1] scale (0..255?)")):
    rows = np.flatnonzero(np.asarray(bad) == code)
    if rows.size:
      raise ValueError(
          f"perturb must return images in the inputs' units; it returned {what} for "
          f"{rows.size} of {len(x)} images (first: {rows[:5].tolist()}): an accuracy on "
          "them would mean nothing.")
  return float(np.mean(hits))


def _one_perturbed(perturb, key, x1, y1):
  """``perturb(key, x1, y1)`` of one example ``(1, H, W, C)``, which must come
  back in its shape (static: checked when traced)."""
  out = perturb(key, x1, y1)
  if not hasattr(out, "shape"):
    raise ValueError(
        "perturb must return the perturbed batch alone, one array of x_batch's shape; it "
        f"returned a {type(out).__name__}"
        + (f" of {len(out)}" if isinstance(out, (tuple, list)) else "") + ".")
  if tuple(jnp.shape(out)) != tuple(x1.shape):
    raise ValueError(
        f"perturb must return its input batch's shape, one perturbed image per image; "
        f"given x_batch of shape {tuple(x1.shape)} it returned shape "
        f"{tuple(jnp.shape(out))}.")
  return out[0]


@conventions.boundary(labels="labels")
def random_targets(key: jax.Array, labels, num_classes: int) -> jax.Array:
  """A target class for each label, uniform over the other ``num_classes - 1``
  classes (cleverhans' ``random_targets``; Wang et al.'s JSMA targets).

  .. math:: t_i = (y_i + u_i) \\bmod C, \\quad u_i \\sim \\mathcal{U}\\{1, \\dots, C - 1\\}
  """
  key = _validation.check_key("key", key, call="random_targets(key, labels, num_classes)")
  _validation.check_num_classes("num_classes", num_classes, why="a target is another class")
  labels = jnp.asarray(labels)
  shift = jax.random.randint(key, labels.shape, 1, num_classes)
  return (labels + shift) % num_classes


JSMA_PIXELS = (1, 2)


@conventions.boundary(x="images", labels="labels")
def jsma(logits_fn: LogitsFn, x, labels, *, theta: float = 1.0, gamma: float = 0.1,
         pixels: int = 2, clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """Jacobian saliency map attack (Papernot et al., EuroS&P 2016), targeted.

  Each iteration takes the Jacobian of the logits, ``a_p = dZ_t/dx_p`` for
  the target ``t`` and ``b_p = sum_{j != t} dZ_j/dx_p``, and adds ``theta``
  to the features of the best saliency, then removes them from the search
  domain. ``pixels=2`` (cleverhans' ``jsma_symbolic``, the paper's eq. 10)
  picks the pair

  .. math:: (p, q) = \\arg\\max_{p \\ne q} \\; (-\\alpha\\beta)\\,
            [\\alpha > 0][\\beta < 0], \\quad \\alpha = a_p + a_q,\\ \\beta = b_p + b_q

  (signs reversed when ``theta < 0``); ``pixels=1`` the single feature
  ``argmax_p a_p |b_p| [a_p >= 0][b_p <= 0]`` (Wang et al.'s ``optimal``
  JSMA, ``attacks/attack_type/jsma.py``). An example stops once it is
  classified as its target, after ``floor(gamma * n / pixels)``
  iterations, or when no feature has a positive saliency (where cleverhans
  and Wang et al. would change feature 0), so at most ``gamma * n`` of its
  ``n`` features change, all chosen by the saliency map.

  Args:
    logits_fn: ``x -> logits`` in evaluation mode, or a
      :class:`~explicable_jax.models.Classifier`.
    x: ``(N, H, W, C)`` images in input units.
    labels: ``(N,)`` *target* classes (see :func:`random_targets`).
    theta: change of a chosen feature (cleverhans and Wang et al.: 1).
    gamma: largest fraction of features changed (Wang et al.: 0.12).
    pixels: features changed per iteration, 2 (cleverhans) or 1 (Wang et al.).
    clip: valid input range; features at the bound are outside the initial
      search domain and changes are clipped to it (cleverhans), or ``None``.

  Returns:
    The adversarial images (an example whose target is out of reach comes
    back with its budget spent).
  """
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0], logits_fn, x)
  _validation.check_choice("pixels", pixels, JSMA_PIXELS)
  _validation.check_concrete("theta", theta)
  if not np.isfinite(theta) or theta == 0:
    raise ValueError(f"theta must be a non-zero number; got {theta!r}.")
  _validation.check_fraction("gamma", gamma)
  clip = _check_clip(clip, x)
  if clip is not None and abs(theta) > clip[1] - clip[0]:
    raise ValueError(
        f"theta must be at most the width of the valid range clip={clip} (a feature moves "
        f"by theta and is clipped); got {theta!r}: 1.0 saturates a [0, 1] feature already.")
  check_targets_differ("jsma", logits_fn, x, labels)
  n_features = int(np.prod(np.shape(x)[1:]))
  max_iters = math.floor(n_features * gamma / pixels)
  return _by_model(_jsma, _jsma_classifier, logits_fn)(
      logits_fn, jnp.asarray(x), jnp.asarray(labels), float(theta), bool(theta > 0), max_iters,
      pixels, clip)


def _jsma_scores_pair(a, b, domain, increase):
  """cleverhans' pair scores: features out of the domain are pushed out of
  reach by twice the largest gradient, the diagonal is zeroed."""
  coef = (4.0 * increase - 2.0) * (domain == 0).astype(a.dtype)
  a = a - coef * jnp.abs(a).max(axis=1, keepdims=True)
  b = b + coef * jnp.abs(b).max(axis=1, keepdims=True)
  a2 = a[:, :, None] + a[:, None, :]
  b2 = b[:, :, None] + b[:, None, :]
  mask = (a2 > 0) & (b2 < 0) if increase else (a2 < 0) & (b2 > 0)
  d = a.shape[1]
  scores = jnp.where(mask, -a2 * b2, 0.0) * (1.0 - jnp.eye(d, dtype=a.dtype))
  scores = scores.reshape(a.shape[0], d * d)
  best = jnp.argmax(scores, axis=1)
  chosen = jax.nn.one_hot(best % d, d, dtype=a.dtype) + jax.nn.one_hot(best // d, d, dtype=a.dtype)
  return chosen, scores.max(axis=1) > 0


def _jsma_scores_single(a, b, domain, increase):
  if increase:
    s = jnp.where(a >= 0, a, 0.0) * jnp.abs(jnp.where(b <= 0, b, 0.0))
  else:
    s = jnp.abs(jnp.where(a <= 0, a, 0.0)) * jnp.where(b >= 0, b, 0.0)
  s = s * domain
  return jax.nn.one_hot(jnp.argmax(s, axis=1), a.shape[1], dtype=a.dtype), s.max(axis=1) > 0


def _jsma_impl(logits_fn, x, targets, theta, increase, max_iters, pixels, clip):
  n, d = x.shape[0], math.prod(x.shape[1:])
  flat = x.reshape(n, d)
  if clip is None:
    domain = jnp.ones_like(flat)
  else:
    domain = (flat < clip[1] if increase else flat > clip[0]).astype(flat.dtype)

  def logits_of(xf):
    return logits_fn(xf.reshape(x.shape))

  def body(state):
    xf, domain, i, _ = state
    logits, vjp = jax.vjp(logits_of, xf)
    onehot = _class_index.one_hot(targets, logits.shape[-1], dtype=logits.dtype)
    a, b = vjp(onehot)[0], vjp(1.0 - onehot)[0]
    not_done = jnp.argmax(logits, -1) != targets
    chosen, found = (_jsma_scores_pair if pixels == 2 else _jsma_scores_single)(
        a, b, domain, increase)
    active = not_done & found & (domain.sum(axis=1) >= pixels)
    chosen = chosen * active[:, None].astype(chosen.dtype)
    xf = xf + theta * chosen
    if clip is not None:
      xf = jnp.minimum(xf, clip[1]) if increase else jnp.maximum(xf, clip[0])
    return xf, jnp.maximum(domain - chosen, 0.0), i + 1, active.any()

  def cond(state):
    return (state[2] < max_iters) & state[3]

  xf, *_ = jax.lax.while_loop(cond, body, (flat, domain, 0, jnp.array(True)))
  return xf.reshape(x.shape)


_jsma = jax.jit(_jsma_impl, static_argnums=(0, 4, 6, 7))
_jsma_classifier = jax.jit(_jsma_impl, static_argnums=(4, 6, 7))
