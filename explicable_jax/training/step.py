"""Pure training and evaluation steps."""
from __future__ import annotations

import copy
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


COMPUTE_DTYPES = ("float32", "bfloat16")
"""What a train step can compute its forward and backward passes in (see
:func:`make_train_step`'s ``compute_dtype``)."""


def _cast_floats(tree, dtype):
  """Every float32 leaf of ``tree`` as ``dtype`` (integer leaves unchanged)."""
  return jax.tree.map(lambda a: a.astype(dtype) if a.dtype == jnp.float32 else a, tree)


def _computing_in(backend, params, model_state, dtype):
  """``backend`` with every NNX layer that has a ``dtype`` (convolutions,
  dense layers, normalisations) computing in ``dtype``; other backends as
  they are.

  Casting the parameters is not enough for batch norm: Flax promotes its
  input with the float32 running statistics, so its output (and every layer
  after it) would be float32 again. With the layer's ``dtype`` set, Flax
  still computes the batch statistics in float32 and updates the float32
  running averages, and returns ``dtype``."""
  if getattr(backend, "kind", None) != "nnx":
    return backend
  from flax import nnx  # the NNX backend's own library
  module = nnx.merge(backend.graphdef, params, model_state, copy=True)
  for _, node in nnx.iter_graph(module):
    if isinstance(node, nnx.Module) and "dtype" in vars(node):
      node.dtype = jnp.dtype(dtype)
  graphdef = nnx.split(module, nnx.Param, ...)[0]
  if graphdef == backend.graphdef:
    return backend
  new = copy.copy(backend)
  new.graphdef, new._checked = graphdef, set()
  return new


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation,
                    *, augment: Callable | None = None,
                    compute_dtype: str = "float32") -> Callable:
  """A pure training step ``step(state, batch) -> (state, metrics)``.

  .. math:: \\theta_{t+1} = \\mathrm{opt}\\big(\\nabla_\\theta
     \\tfrac{1}{|B|}\\textstyle\\sum_{i \\in B} m_i\\, \\ell(f_\\theta(x_i), y_i)\\big)

  where ``m`` is the batch's ``mask`` (padding excluded).

  Mixed precision (``compute_dtype="bfloat16"``, Micikevicius et al., ICLR
  2018, with bfloat16 instead of float16, so no loss scaling): the parameters
  and the optimiser state stay float32; inside the loss, the parameters and
  the inputs are cast to bfloat16, so every convolution and matrix product
  runs in bfloat16, and the logits come back to float32 before the loss. The
  gradients therefore arrive in float32 (the cast's transpose), and the
  update is float32. Batch-norm statistics are computed and kept in float32
  (the model state is not cast; Flax computes them in at least float32).
  Attributions never use this step: they run on the float32 classifier at
  their own precision.

  Args:
    loss_fn: ``loss_fn(logits, batch, params) -> (batch,)`` per-example
      losses, or ``(losses, aux_metrics)``. If it has a ``model_fn`` keyword
      it also receives ``model_fn(x) -> logits`` (same params and mode), for
      penalties on input gradients.
    optimizer: an optax gradient transformation.
    augment: optional ``augment(key, x) -> x`` applied to the (float) inputs.
    compute_dtype: ``"float32"`` (default) or ``"bfloat16"`` (mixed
      precision, above); one of :data:`COMPUTE_DTYPES`.

  Returns:
    The step. A non-finite loss or gradient leaves the state unchanged and
    reports ``metrics["finite"] == False`` so that the caller can stop.
  """
  _validation.check_choice("compute_dtype", compute_dtype, COMPUTE_DTYPES)
  mixed = compute_dtype != "float32"
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

    def forward(params, xx):
      if not mixed:
        return backend.apply(params, state.model_state, xx, train=True, key=k_drop)
      low = _cast_floats(params, compute_dtype)
      logits, new_model_state = _computing_in(backend, low, state.model_state, compute_dtype).apply(
          low, state.model_state, _cast_floats(xx, compute_dtype), train=True, key=k_drop)
      # Statistics back in their stored dtype, whatever the model returned.
      new_model_state = jax.tree.map(lambda new, old: new.astype(old.dtype),
                                     new_model_state, state.model_state)
      return logits.astype(jnp.float32), new_model_state

    def objective(params):
      logits, new_model_state = forward(params, x)
      kwargs = {}
      if wants_model_fn:
        kwargs["model_fn"] = lambda xx: forward(params, xx)[0]
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
  step.loss_fn = loss_fn  # The run record (training.resume) names the loss.
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
