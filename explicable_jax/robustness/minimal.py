"""Minimal-perturbation attacks: DeepFool and Carlini-Wagner L2.

* :func:`deepfool` -- Moosavi-Dezfooli, Fawzi and Frossard (CVPR 2016): the
  step to the closest linearised decision boundary, repeated.
* :func:`carlini_wagner_l2` -- Carlini and Wagner (S&P 2017): Adam on
  ``||delta||^2 + c f(x + delta)`` in tanh space, binary search over ``c``.

Both take ``logits_fn`` (or a :class:`~explicable_jax.models.Classifier`),
``x`` and ``labels`` like :func:`~explicable_jax.robustness.fgsm`, run every
example of the batch at once (a finished example stops changing), and are
jitted once per model and setting.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import conventions
from explicable_jax import _optax, _validation
from explicable_jax import _class_index
from explicable_jax.robustness._common import (
    check_targets_differ,
  LogitsFn,
  _by_model,
  _check_clip,
  _check_images,
  _check_labels,
  _clip,
  _logits_and_jacobian,
)

__all__ = [
    "CW_BOX_SHRINK", "DEEPFOOL_STABILITY", "carlini_wagner_l2", "deepfool",
]

DEEPFOOL_STABILITY = 1e-4
"""Added to each step's length, as in the reference code (LTS4/DeepFool and
Wang et al.'s ``attacks/attack_type/deepfool.py``), so a step crosses the
linearised boundary rather than stopping on it."""


@conventions.boundary(x="images", labels="labels")
def deepfool(logits_fn: LogitsFn, x, labels, *, overshoot: float = 0.02, max_iter: int = 50,
             candidates: int | None = None,
             clip: tuple[float, float] | None = (0.0, 1.0)) -> jax.Array:
  """DeepFool (Moosavi-Dezfooli, Fawzi and Frossard, CVPR 2016), multiclass L2.

  With ``k0`` the label, ``f_k = Z_k(x_i) - Z_{k0}(x_i)`` and ``w_k =
  grad f_k`` at the current point, each iteration steps to the closest
  linearised boundary,

  .. math:: l = \\arg\\min_{k \\ne k_0} \\frac{|f_k|}{\\|w_k\\|_2}, \\qquad
            r_i = \\Big(\\frac{|f_l|}{\\|w_l\\|_2} + 10^{-4}\\Big) \\frac{w_l}{\\|w_l\\|_2},

  accumulates ``r = sum_i r_i`` and sets ``x_{i+1} = x + (1 + overshoot) r``
  until the label changes or ``max_iter`` steps. On an affine classifier one
  step reaches the closest boundary point ``x - f(x) w / ||w||^2``.

  Args:
    logits_fn: ``x -> logits`` in evaluation mode, or a
      :class:`~explicable_jax.models.Classifier`.
    x: ``(N, H, W, C)`` images in input units.
    labels: ``(N,)`` classes to move away from (the model's predictions in
      the paper).
    overshoot: the paper's ``eta`` (0.02 in the paper and Wang et al.).
    max_iter: iterations (50 in the reference code and Wang et al.).
    candidates: consider only the classes of the ``candidates`` largest
      original scores (the reference code's ``num_classes``), or all (``None``,
      or any number at least the model's classes).
    clip: valid input range applied to every iterate, or ``None`` (the
      reference code does not clip).

  Returns:
    The perturbed images; an example still labelled ``k0`` after
    ``max_iter`` steps comes back at its last iterate.
  """
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0], logits_fn, x)
  _validation.check_nonnegative("overshoot", overshoot)
  _validation.check_positive("max_iter", max_iter, integer=True)
  if candidates is not None:
    _validation.check_positive("candidates", candidates, integer=True)
    if candidates < 2:
      raise ValueError(f"candidates must be at least 2 (the label and one other); got {candidates}.")
  clip = _check_clip(clip, x)
  return _by_model(_deepfool, _deepfool_classifier, logits_fn)(
      logits_fn, jnp.asarray(x), jnp.asarray(labels), float(overshoot), int(max_iter),
      candidates, clip)


def _deepfool_impl(logits_fn, x, labels, overshoot, max_iter, candidates, clip):
  n, d = x.shape[0], math.prod(x.shape[1:])
  rows = jnp.arange(n)
  logits0 = logits_fn(x)
  c = logits0.shape[-1]
  if candidates is None or candidates >= c:
    allowed = jnp.ones((n, c), bool)
  else:
    top = jnp.argsort(-logits0, axis=-1)[:, :candidates]
    allowed = jnp.zeros((n, c), bool).at[rows[:, None], top].set(True)
  allowed &= jnp.arange(c)[None, :] != labels[:, None]

  def body(state):
    i, r_tot, x_adv, _ = state
    logits, jac = _logits_and_jacobian(logits_fn, x_adv)
    active = jnp.argmax(logits, -1) == labels
    jac = jac.reshape(n, c, d)
    w = jac - jac[rows, labels][:, None, :]
    f = logits - logits[rows, labels][:, None]
    norm = jnp.linalg.norm(w, axis=-1)
    safe = jnp.where(norm > 0, norm, 1.0)
    dist = jnp.where(allowed & (norm > 0), jnp.abs(f) / safe, jnp.inf)
    l = jnp.argmin(dist, axis=-1)
    step = (dist[rows, l] + DEEPFOOL_STABILITY)[:, None] * w[rows, l] / safe[rows, l][:, None]
    step = jnp.where((active & jnp.isfinite(dist[rows, l]))[:, None], step, 0.0)
    r_tot = r_tot + step.reshape(x.shape)
    x_adv = _clip(x + (1.0 + overshoot) * r_tot, clip)
    return i + 1, r_tot, x_adv, active.any()

  def cond(state):
    return (state[0] < max_iter) & state[3]

  _, _, x_adv, _ = jax.lax.while_loop(cond, body, (0, jnp.zeros_like(x), x, jnp.array(True)))
  return x_adv


_deepfool = jax.jit(_deepfool_impl, static_argnums=(0, 4, 5, 6))
_deepfool_classifier = jax.jit(_deepfool_impl, static_argnums=(4, 5, 6))


CW_BOX_SHRINK = 0.999999
"""``arctanh`` of the box edge is infinite; Carlini and Wagner's code shrinks
the image by this factor before it (``l2_attack.py``)."""


@conventions.boundary(x="images", labels="labels")
def carlini_wagner_l2(logits_fn: LogitsFn, x, labels, *, targeted: bool = False,
                      confidence: float = 0.0, initial_const: float = 1e-3,
                      binary_search_steps: int = 9, max_iterations: int = 1000,
                      learning_rate: float = 1e-2,
                      clip: tuple[float, float] = (0.0, 1.0)) -> jax.Array:
  """Carlini-Wagner L2 attack (Carlini and Wagner, IEEE S&P 2017).

  In tanh space ``x' = lo + (hi - lo) (tanh(w) + 1) / 2`` (always in the box)
  Adam minimises, for each example,

  .. math:: \\|x' - x\\|_2^2 + c \\, \\max\\big(Z_y(x') - \\max_{j \\ne y} Z_j(x'), -\\kappa\\big)

  (untargeted; targeted swaps the two scores), from ``x' = x``. After each
  of ``binary_search_steps`` runs of ``max_iterations`` steps, ``c`` of an
  example that succeeded is bisected down, of one that failed bisected up
  (times 10 while no success bounds it): the rule of Carlini and Wagner's
  ``l2_attack.py``. The result is the successful iterate of smallest
  distance over all runs (success: ``argmax(Z - kappa e_y) != y``, or
  ``argmax(Z + kappa e_t) == t`` targeted). With 10 or more binary-search
  steps the last run is made at ``c`` = the upper bound (the reference
  code's ``repeat``; ``1e10`` for an example never misclassified). Unlike the
  reference code there is no early abort, so every run takes
  ``max_iterations`` steps.

  Its keyword-only parameters are Carlini and Wagner's settings (confidence, initial constant,
  binary-search steps, iterations, learning rate, box) under the names of their code and of the
  common attack libraries.

  Args:
    logits_fn: ``x -> logits`` in evaluation mode, or a
      :class:`~explicable_jax.models.Classifier`.
    x: ``(N, H, W, C)`` images inside ``clip``.
    labels: ``(N,)`` classes to leave (untargeted) or to reach (targeted).
    targeted: reach ``labels`` rather than leave them.
    confidence: ``kappa``, the margin demanded (0 in the paper's L2 runs).
    initial_const: the first ``c`` (reference code: 1e-3).
    binary_search_steps: runs (reference code: 9; 1 keeps ``c`` fixed).
    max_iterations: Adam steps per run (reference code: 10000; we default
      to cleverhans' 1000).
    learning_rate: Adam's step (reference code: 1e-2).
    clip: the box ``(lo, hi)``; required.

  Returns:
    The adversarial images; an example never misclassified comes back
    unchanged.
  """
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0], logits_fn, x)
  _validation.check_nonnegative("confidence", confidence)
  _validation.check_positive("initial_const", initial_const)
  _validation.check_positive("binary_search_steps", binary_search_steps, integer=True)
  _validation.check_positive("max_iterations", max_iterations, integer=True)
  _validation.check_positive("learning_rate", learning_rate)
  clip = _check_clip(clip, x)
  if clip is None:
    raise ValueError("clip must be a box (low, high) for the tanh change of variables; got None.")
  if targeted:
    check_targets_differ("carlini_wagner_l2", logits_fn, x, labels)
  return _by_model(_cw, _cw_classifier, logits_fn)(
      logits_fn, jnp.asarray(x), jnp.asarray(labels), float(confidence), float(initial_const),
      float(learning_rate), bool(targeted), int(binary_search_steps), int(max_iterations), clip)


def _cw_impl(logits_fn, x, labels, confidence, initial_const, learning_rate, targeted,
             binary_search_steps, max_iterations, clip):
  n = x.shape[0]
  axes = tuple(range(1, x.ndim))
  lo, hi = clip
  mid, half = (hi + lo) / 2, (hi - lo) / 2
  w0 = jnp.arctanh(jnp.clip((x - mid) / half, -1.0, 1.0) * CW_BOX_SHRINK)
  c = logits_fn(x).shape[-1]
  onehot = _class_index.one_hot(labels, c, dtype=x.dtype)
  sign = -1.0 if targeted else 1.0
  optimizer = optax.adam(learning_rate)

  def losses(w, const):
    adv = jnp.tanh(w) * half + mid
    logits = logits_fn(adv)
    l2 = jnp.sum((adv - x) ** 2, axis=axes)
    real = jnp.sum(onehot * logits, -1)
    other = jnp.max(logits - onehot * 1e4, -1)
    f = jnp.maximum(sign * (real - other) + confidence, 0.0)
    return jnp.sum(l2 + const * f), (l2, logits, adv)

  grad_fn = jax.value_and_grad(losses, has_aux=True)

  def success(logits):
    pred = jnp.argmax(logits + sign * confidence * onehot, -1)
    return pred == labels if targeted else pred != labels

  def run(carry, step_index):
    const, lower, upper, best_l2, best_adv = carry
    if binary_search_steps >= 10:  # the reference code's last "repeat" run
      const = jnp.where(step_index == binary_search_steps - 1, jnp.minimum(upper, 1e10), const)

    def step(_, s):
      w, opt_state, hit, best_l2, best_adv = s
      (_, (l2, logits, adv)), g = grad_fn(w, const)
      ok = success(logits)
      better = ok & (l2 < best_l2)
      best_l2 = jnp.where(better, l2, best_l2)
      best_adv = jnp.where(better.reshape((n,) + (1,) * len(axes)), adv, best_adv)
      updates, opt_state = _optax.update(optimizer, g, opt_state)
      return optax.apply_updates(w, updates), opt_state, hit | ok, best_l2, best_adv

    init = (w0, optimizer.init(w0), jnp.zeros(n, bool), best_l2, best_adv)
    _, _, hit, best_l2, best_adv = jax.lax.fori_loop(0, max_iterations, step, init)
    bounded = upper < 1e9
    upper = jnp.where(hit, jnp.minimum(upper, const), upper)
    lower = jnp.where(hit, lower, jnp.maximum(lower, const))
    const = jnp.where(hit | bounded, (lower + upper) / 2, const * 10)
    return (const, lower, upper, best_l2, best_adv), None

  init = (jnp.full(n, initial_const, x.dtype), jnp.zeros(n, x.dtype), jnp.full(n, 1e10, x.dtype),
          jnp.full(n, jnp.inf, x.dtype), x)
  (_, _, _, _, best_adv), _ = jax.lax.scan(run, init, jnp.arange(binary_search_steps))
  return best_adv


_cw = jax.jit(_cw_impl, static_argnums=(0, 6, 7, 8, 9))
_cw_classifier = jax.jit(_cw_impl, static_argnums=(6, 7, 8, 9))
