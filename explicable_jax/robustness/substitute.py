"""Papernot et al.'s black-box attack: a substitute trained on the target's labels.

Papernot, McDaniel, Goodfellow, Jha, Celik and Swami, "Practical Black-Box
Attacks against Machine Learning" (AsiaCCS 2017). The attacker sees only the
target's labels (the *oracle*). Starting from a small seed set it repeats
``rounds`` times: label the set with the oracle, train a substitute on it,
and double the set by Jacobian-based dataset augmentation (their eq. 4)

.. math:: S_{\\rho+1} = S_\\rho \\cup \\{x + \\lambda\\,
          \\mathrm{sign}(\\nabla_x F_{O(x)}(x)) : x \\in S_\\rho\\}

where ``F`` is the substitute's logits and ``O(x)`` the oracle's label. The
adversarial images are then crafted on the substitute (FGSM here) and
transfer to the target.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import conventions
from explicable_jax import _batching, _optax, _validation
from explicable_jax import _class_index
from explicable_jax.robustness._common import (
  _check_clip,
  _check_images,
  _check_labels,
  _clip,
)

__all__ = [
    "Substitute", "black_box", "jacobian_augmentation", "train_substitute",
]


@conventions.boundary(x="images", labels="labels", step_size="perturbation")
def jacobian_augmentation(logits_fn: Callable[[jax.Array], jax.Array], x, labels,
                          step_size: float, *,
                          clip: tuple[float, float] | None = None) -> jax.Array:
  """New points ``x + step_size * sign(d F_label / dx)`` (Papernot et al.
  2017, eq. 4): each ``x`` moved along the sign of the gradient of the
  substitute's score for the oracle's label ``labels``, clipped to ``clip``.
  """
  _check_images("x", x)
  _check_labels(labels, np.shape(x)[0])
  _validation.check_positive("step_size", step_size)
  clip = _check_clip(clip, x)
  return _augment(logits_fn, jnp.asarray(x), jnp.asarray(labels), float(step_size), clip)


def _augment_impl(logits_fn, x, labels, step_size, clip):
  def score(v):
    return _class_index.entries(logits_fn(v), labels).sum()
  return _clip(x + step_size * jnp.sign(jax.grad(score)(x)), clip)


_augment = jax.jit(_augment_impl, static_argnums=(0, 4))


@dataclasses.dataclass(frozen=True)
class Substitute:
  """A trained substitute: ``apply_fn(params, x) -> logits`` with its
  ``params``; ``history`` holds one dict per round (``size`` of the training
  set, the substitute's ``agreement`` with the oracle on it)."""
  apply_fn: Callable[[Any, jax.Array], jax.Array]
  params: Any
  history: tuple = ()

  def logits(self, x: jax.Array) -> jax.Array:
    return self.apply_fn(self.params, x)


def _oracle_labels(oracle, x: np.ndarray, batch_size: int) -> np.ndarray:
  from explicable_jax.robustness._common import _by_model
  model = oracle if _by_model(False, True, oracle) else None
  static = None if model is not None else oracle

  def labels(m, xb):
    return jnp.argmax((m if m is not None else static)(xb), -1)
  return _batching.map_batches(jax.jit(labels), [x], batch_size=batch_size, args=(model,))


def _epoch_impl(apply_fn, learning_rate, momentum, batch_size, params, opt_state, key, x, y):
  n = x.shape[0]
  optimizer = optax.sgd(learning_rate, momentum=momentum)
  order = _batching.pad_to_chunks(jax.random.permutation(key, n), batch_size, fill=0)
  steps = order.shape[0]
  valid = (jnp.arange(steps * batch_size) < n).reshape(steps, batch_size)

  def step(carry, batch):
    params, opt_state = carry
    idx, mask = batch

    def loss(p):
      ce = optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, x[idx]), y[idx])
      weight = mask.astype(ce.dtype)
      return jnp.sum(ce * weight) / jnp.sum(weight)
    updates, opt_state = _optax.update(optimizer, jax.grad(loss)(params), opt_state,
                                       params)
    return (optax.apply_updates(params, updates), opt_state), None

  (params, opt_state), _ = jax.lax.scan(step, (params, opt_state),
                                        (order, valid))
  return params, opt_state


_epoch = jax.jit(_epoch_impl, static_argnums=(0, 1, 2, 3))


def _fit(key, apply_fn, params, x, y, *, epochs, learning_rate, momentum, batch_size):
  """Mini-batch SGD with momentum on the mean cross-entropy (torch's
  ``SGD(lr, momentum)`` and ``CrossEntropyLoss``), reshuffled every epoch;
  the last, smaller batch of an epoch is kept (a mask), as torch's
  ``DataLoader`` keeps it. One jitted call per epoch."""
  opt_state = optax.sgd(learning_rate, momentum=momentum).init(params)
  x, y = jnp.asarray(x), jnp.asarray(y)
  for e in range(epochs):
    params, opt_state = _epoch(apply_fn, float(learning_rate), float(momentum), int(batch_size),
                               params, opt_state, jax.random.fold_in(key, e), x, y)
  return params


def _augment_with(apply_fn, params, x, labels, step_size, clip):
  return _augment_impl(lambda v: apply_fn(params, v), x, labels, step_size, clip)


_augment_params = jax.jit(_augment_with, static_argnums=(0, 5))


@conventions.key_first
def train_substitute(key: jax.Array, oracle, init_fn: Callable[[jax.Array], Any],
                     apply_fn: Callable[[Any, jax.Array], jax.Array], x_seed, *,
                     rounds: int = 6, epochs: int = 10, step_size: float = 0.1,
                     learning_rate: float = 0.01, momentum: float = 0.5,
                     batch_size: int = 64,
                     clip: tuple[float, float] | None = None) -> Substitute:
  """Trains a substitute of ``oracle`` by Jacobian-based dataset augmentation.

  Each of the ``rounds`` substitute epochs labels the current set with the
  oracle's argmax, trains the substitute from ``init_fn(key)`` (the same
  start every round, as Wang et al.'s ``attacks/attack_type/blackBox.py``
  deep-copies one untrained model) for ``epochs`` epochs, and, except after
  the last round, doubles the set with :func:`jacobian_augmentation`.
  Defaults are Wang et al.'s MNIST setting (``scripts/craftAdvSamples.sh``:
  6 rounds, 10 epochs, ``lambda = 0.1``, a seed of 200 test images; SGD with
  learning rate 0.01 and momentum 0.5, batches of 64).

  Its keyword-only parameters are Papernot et al.'s (2017) hyperparameters (substitute rounds,
  epochs, the augmentation step lambda, learning rate, momentum, batch size, clipping), with
  their values as defaults; :func:`black_box` passes them through.

  Args:
    key: PRNG key (initialisation and the order of the mini-batches).
    oracle: the target, ``x -> logits`` or a
      :class:`~explicable_jax.models.Classifier`; only its labels are used.
    init_fn: ``key -> params`` of the substitute.
    apply_fn: ``(params, x) -> logits`` of the substitute.
    x_seed: ``(N, H, W, C)`` the attacker's initial images.
    rounds: substitute epochs ``rho``.
    epochs: training epochs per round.
    step_size: ``lambda`` of the augmentation.
    learning_rate, momentum, batch_size: the SGD of each round.
    clip: valid input range of the augmented points, or ``None`` (Wang et
      al. do not clip).

  Returns:
    The :class:`Substitute` of the last round.
  """
  key = _validation.check_key("key", key, call="train_substitute(key, oracle, ...)")
  _validation.check_signature("oracle", oracle, 1, "x -> logits (the target model, or a "
                              "Classifier), whose labels the substitute learns")
  _validation.check_signature("init_fn", init_fn, 1, "key -> params of the substitute")
  _validation.check_signature("apply_fn", apply_fn, 2, "(params, x) -> logits of the substitute")
  x_seed = conventions.check_images("x_seed", x_seed)
  if np.shape(x_seed)[0] == 0:
    raise ValueError(f"x_seed must hold at least one image (the attacker's starting set); got "
                     f"an empty batch of shape {tuple(np.shape(x_seed))}.")
  for name, value in (("rounds", rounds), ("epochs", epochs), ("batch_size", batch_size)):
    _validation.check_positive(name, value, integer=True)
  conventions.check_perturbation("step_size", step_size, allow_zero=False)
  _validation.check_positive("learning_rate", learning_rate)
  _validation.check_fraction("momentum", momentum)
  clip = _check_clip(clip, x_seed)
  x = np.asarray(x_seed, np.float32)
  init_key, fit_key = jax.random.split(key)
  probe = init_fn(init_key)  # the substitute must return logits, as every model here
  leaves = jax.tree.leaves(probe)
  if not leaves or any(not hasattr(a, "shape") or not np.issubdtype(np.asarray(a).dtype,
                                                                    np.number)
                       for a in leaves):
    raise TypeError(f"init_fn must return the substitute's parameters, a pytree of numeric "
                    f"arrays; init_fn(key) returned {type(probe).__name__} {probe!r:.80}.")
  batch = jax.ShapeDtypeStruct(x[:2].shape, x.dtype)
  try:
    jax.eval_shape(lambda v: apply_fn(probe, v), batch)
  except Exception as e:  # noqa: BLE001 - reported with the form it must have
    raise TypeError(
        f"apply_fn must be (params, x) -> logits of the substitute; apply_fn(init_fn(key), "
        f"x_seed[:2]) fails: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
        "(its arguments in the other order?)") from None
  conventions.check_model_output("apply_fn", lambda v: apply_fn(probe, v), x)
  told = jax.eval_shape(oracle, batch)
  if (not hasattr(told, "shape") or len(told.shape) != 2 or told.shape[0] != batch.shape[0]
      or not jnp.issubdtype(told.dtype, jnp.floating)):
    got = (f"shape {tuple(told.shape)} of dtype {told.dtype}" if hasattr(told, "shape")
           else type(told).__name__)
    raise ValueError(
        f"oracle must return class scores (N, C) for a batch (N, ...), floats whose argmax is "
        f"the label; oracle(x_seed[:2]) returns {got}"
        + (" (labels? return the scores they are the argmax of, e.g. "
           "jax.nn.one_hot(labels, C))" if hasattr(told, "shape") and len(told.shape) == 1
           else "") + ".")
  widths = [int(told.shape[-1]), int(jax.eval_shape(lambda v: apply_fn(probe, v), batch).shape[-1])]
  if widths[0] != widths[1]:
    raise ValueError(f"apply_fn must return one logit per class of the oracle ({widths[0]}); "
                     f"the substitute returns {widths[1]}.")
  history, params = [], None
  for r in range(rounds):
    y = np.asarray(_oracle_labels(oracle, x, 500), np.int32)
    params = _fit(jax.random.fold_in(fit_key, r), apply_fn, init_fn(init_key), x, y,
                  epochs=epochs, learning_rate=learning_rate, momentum=momentum,
                  batch_size=batch_size)
    agree = float(np.mean(np.asarray(jnp.argmax(apply_fn(params, jnp.asarray(x)), -1)) == y))
    history.append({"round": r, "size": len(x), "agreement": agree})
    if r < rounds - 1:
      new = _augment_params(apply_fn, params, jnp.asarray(x), jnp.asarray(y), float(step_size),
                            clip)
      x = np.concatenate([x, np.asarray(new)])
  return Substitute(apply_fn, params, tuple(history))


@conventions.boundary(x="images", labels="labels", epsilon="perturbation")
def black_box(key: jax.Array, oracle, x, labels, epsilon: float, *,
              init_fn: Callable[[jax.Array], Any],
              apply_fn: Callable[[Any, jax.Array], jax.Array], x_seed,
              clip: tuple[float, float] | None = (0.0, 1.0), **training) -> jax.Array:
  """Papernot et al.'s black-box attack: :func:`train_substitute` on
  ``oracle``'s labels of ``x_seed``, then FGSM with budget ``epsilon`` on the
  substitute, raising its loss for ``labels``; the images are meant to
  transfer to ``oracle``.

  ``training`` holds :func:`train_substitute`'s keyword options.

  ``init_fn``, ``apply_fn`` and ``x_seed`` are :func:`train_substitute`'s own arguments
  (keyword-only), passed through with ``**training``.
  """
  from explicable_jax.robustness.attacks import fgsm
  key = _validation.check_key("key", key, call="black_box(key, oracle, x, labels, epsilon, ...)")
  _validation.check_options("black_box", training, train_substitute,
                            exclude=("key", "oracle", "init_fn", "apply_fn", "x_seed", "clip"),
                            passed_to="train_substitute")
  sub = train_substitute(key, oracle, init_fn, apply_fn, x_seed, **training)
  return fgsm(sub.logits, x, labels, epsilon, clip=clip)
