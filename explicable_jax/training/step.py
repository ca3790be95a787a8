"""Pure training and evaluation steps."""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from explicable_jax import _validation
from explicable_jax import losses as losses_lib
from explicable_jax.training.state import TrainState

Batch = Mapping[str, Any]


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def to_float(x: jax.Array) -> jax.Array:
  """uint8 images to ``[0, 1]`` floats; other inputs unchanged."""
  return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation,
                    *, augment: Callable | None = None) -> Callable:
  """A pure training step ``step(state, batch) -> (state, metrics)``.

  .. math:: \\theta_{t+1} = \\mathrm{opt}\\big(\\nabla_\\theta
     \\tfrac{1}{|B|}\\textstyle\\sum_{i \\in B} m_i\\, \\ell(f_\\theta(x_i), y_i)\\big)

  where ``m`` is the batch's ``mask`` (padding excluded).

  Args:
    loss_fn: ``loss_fn(logits, batch, params) -> (batch,)`` per-example
      losses, or ``(losses, aux_metrics)``. If it has a ``model_fn`` keyword
      it also receives ``model_fn(x) -> logits`` (same params and mode), for
      penalties on input gradients.
    optimizer: an optax gradient transformation.
    augment: optional ``augment(key, x) -> x`` applied to the (float) inputs.

  Returns:
    The step. A non-finite loss or gradient leaves the state unchanged and
    reports ``metrics["finite"] == False`` so that the caller can stop.
  """
  wants_model_fn = _validation.accepts_keyword(loss_fn, "model_fn")
  # A loss may say that only its first ``num_classes`` outputs are class
  # scores (a hardness predictor's extra output): accuracy reads those.
  classes = getattr(loss_fn, "num_classes", None)

  def step(state: TrainState, batch: Batch):
    key = jax.random.fold_in(state.key, state.step)
    k_aug, k_drop = jax.random.split(key)
    x = to_float(batch["x"])
    if augment is not None:
      x = augment(k_aug, x)
    batch = {**batch, "x": x}
    mask = batch.get("mask", jnp.ones(x.shape[0], bool))
    backend = state.spec.backend

    def objective(params):
      logits, new_model_state = backend.apply(
          params, state.model_state, x, train=True, key=k_drop)
      kwargs = {}
      if wants_model_fn:
        kwargs["model_fn"] = lambda xx: backend.apply(
            params, state.model_state, xx, train=True, key=k_drop)[0]
      out = loss_fn(logits, batch, params, **kwargs)
      per_example, aux = out if isinstance(out, tuple) else (out, {})
      return _masked_mean(per_example, mask), (logits, new_model_state, aux)

    (loss, (logits, new_model_state, aux)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & _all_finite(grads)
    new = state.replace(step=state.step + 1, params=params,
                        model_state=new_model_state, opt_state=opt_state)
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    correct = (jnp.argmax(logits[..., :classes], -1) == batch["y"]).astype(jnp.float32)
    metrics = {"loss": loss, "accuracy": _masked_mean(correct, mask),
               "grad_norm": optax.tree.norm(grads), "finite": finite,
               **{k: jnp.mean(v) for k, v in aux.items()}}
    return new, metrics

  step.num_classes = classes
  return step


@functools.partial(jax.jit, static_argnames=("loss_fn", "num_classes"))
def eval_batch(clf, x, y, *, loss_fn: Callable = losses_lib.cross_entropy_loss,
               num_classes: int | None = None):
  """Per-example ``(loss, correct)`` of a classifier on one batch.

  Module-level and jitted with the classifier as an argument, so evaluating
  any number of times (every epoch of ``fit``) compiles once per shape."""
  x = to_float(x)
  logits = clf.logits(x)
  out = loss_fn(logits, {"x": x, "y": y}, clf.params)
  per_example = out[0] if isinstance(out, tuple) else out
  return per_example, (jnp.argmax(logits[..., :num_classes], -1) == y).astype(jnp.float32)


@jax.jit
def logits_batch(clf, x):
  """Evaluation-mode logits of one batch (uint8 images scaled to [0, 1])."""
  return clf.logits(to_float(x))


def make_eval_step(loss_fn: Callable = losses_lib.cross_entropy_loss) -> Callable:
  """``eval_step(state, batch) -> sums`` of loss, correct predictions, count
  (masked rows excluded); a jittable building block for custom loops."""

  def eval_step(state: TrainState, batch: Batch):
    x = to_float(batch["x"])
    logits, _ = state.apply(x)
    mask = batch.get("mask", jnp.ones(x.shape[0], bool)).astype(jnp.float32)
    out = loss_fn(logits, {**batch, "x": x}, state.params)
    per_example = out[0] if isinstance(out, tuple) else out
    correct = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
    return {"loss_sum": jnp.sum(per_example * mask),
            "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}

  return eval_step
