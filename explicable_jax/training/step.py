"""Pure training and evaluation steps."""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from explicable_jax import _class_index, _optax, _validation, conventions
from explicable_jax import losses as losses_lib
from explicable_jax.training.state import TrainState, check_optimizer

__all__ = [
    "COMPUTE_DTYPES", "eval_batch", "logits_batch", "make_eval_step",
    "make_train_step", "to_float",
]

Batch = Mapping[str, Any]


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def to_float(x: jax.Array) -> jax.Array:
  """Integer pixels (``uint8``, or an integer image batch of rank >= 3) to
  ``[0, 1]`` floats (:func:`explicable_jax.conventions.inputs_to_float`, the
  ``inputs`` rule, through :func:`~explicable_jax.conventions.to_unit_float`,
  the one conversion); other inputs unchanged, so integer token ids ``(N, T)``
  and ``bfloat16`` inputs pass through. Unchecked, for inside jitted steps:
  :func:`explicable_jax.data.to_float` is the checked entry on the host.

  Args:
    x: a batch, e.g. ``(N, H, W, C)`` ``uint8`` images.

  Returns:
    ``x / 255`` as ``float32`` for integer pixels, else ``x``.

  Example:
    >>> to_float(jnp.array([0, 255], jnp.uint8)).tolist()
    [0.0, 1.0]
  """
  return conventions.inputs_to_float(x)


COMPUTE_DTYPES = ("float32", "bfloat16")
"""What a train step can compute its forward and backward passes in (see
:func:`make_train_step`'s ``compute_dtype``)."""


def per_example_losses(out, n: int, *, name: str = "loss_fn"):
  """``(losses, aux)`` from a loss's output, refusing anything but one loss
  per example: ``(n,)``.

  A scalar (a loss that already took the mean) would count padded rows and
  ignore the mask; ``(n, 1)`` or ``(n, C)`` would broadcast against the
  ``(n,)`` mask into an ``(n, n)`` or per-class sum, a loss scaled by ``n``
  or ``C`` without a word. Checked from shapes, at trace time."""
  per_example, aux = out if isinstance(out, tuple) else (out, {})
  if isinstance(out, tuple) and (len(out) != 2 or not isinstance(aux, Mapping)):
    raise ValueError(
        f"{name} must return per-example losses (n,), or (losses, aux) with aux a dict of "
        f"metrics; got a tuple of {len(out)} items"
        + (f" whose second is a {type(aux).__name__}" if len(out) == 2 else "") + ".")
  shape = tuple(jnp.shape(per_example))
  if shape != (n,):
    hint = (" (a mean? return the losses unreduced: the step takes the masked mean, so "
            "padding is left out)" if shape == () else
            " (drop the trailing axis: losses[:, 0])" if shape == (n, 1) else
            " (sum the class axis: one loss per example)" if len(shape) == 2 and shape[0] == n
            else "")
    raise ValueError(
        f"{name} must return one loss per example, shape ({n},) for this batch of {n}; it "
        f"returned shape {shape}{hint}.")
  return per_example, aux


def _opt_kinds(tree) -> str:
  """The optax state types in an optimiser state, in order (for messages)."""
  out: list[str] = []

  def visit(node):
    fields = getattr(node, "_fields", None)
    if fields is not None:
      if type(node).__name__ not in out:
        out.append(type(node).__name__)
      for f in fields:
        visit(getattr(node, f))
    elif isinstance(node, (tuple, list)):
      for v in node:
        visit(v)
    elif isinstance(node, Mapping):
      for v in node.values():
        visit(v)
  visit(tree)
  return "(" + ", ".join(out) + ")" if out else f"({type(tree).__name__})"


def check_optimizer_state(optimizer: optax.GradientTransformation, params, opt_state) -> None:
  """Raises ``ValueError`` unless ``opt_state`` is the state ``optimizer``
  makes for ``params`` (structure and shapes): a step built for another
  optimiser than the state's would otherwise fail inside optax, or, with
  the same layout, update by another rule. Shapes only (trace time)."""
  with jax.numpy_dtype_promotion("standard"):
    want = jax.eval_shape(optimizer.init, jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(jnp.shape(a), a.dtype), params))
  want_l, want_def = jax.tree_util.tree_flatten_with_path(want)
  got_l, got_def = jax.tree_util.tree_flatten_with_path(opt_state)
  msg = None
  if want_def != got_def:
    msg = (f"the state's optimiser state is {_opt_kinds(opt_state)} with {len(got_l)} arrays; "
           f"train_step's optimiser makes {_opt_kinds(want)} with {len(want_l)}")
  else:
    for (path, w), (_, g) in zip(want_l, got_l):
      if tuple(w.shape) != tuple(jnp.shape(g)):
        msg = (f"opt_state{jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(g))}; "
               f"train_step's optimiser makes {tuple(w.shape)}")
        break
  if msg:
    raise ValueError(
        f"train_step was built for another optimiser than the state's: {msg}. Build both "
        "from one optimiser: create_train_state(key, model, opt) and make_train_step(loss, "
        "opt).")


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


def check_loss_fn(loss_fn) -> bool:
  """Checks the calling form ``loss_fn(logits, batch, params)`` (``model_fn=``
  may be a keyword) of a loss given to ``make_train_step`` or ``evaluate``;
  returns whether it takes ``model_fn``."""
  wants_model_fn = _validation.accepts_keyword(loss_fn, "model_fn")
  _validation.check_signature("loss_fn", loss_fn, 3, "loss_fn(logits, batch, params) -> (B,) "
                              "per-example losses (model_fn= may be a keyword)",
                              ("model_fn",) if wants_model_fn else ())
  return wants_model_fn


def call_loss(loss_fn: Callable, logits, batch, params, **kwargs):
  """``loss_fn(logits, batch, params, **kwargs)``, the one call of a user's
  loss (training, evaluation): a loss that fails on those arguments (written
  for another order, ``loss_fn(batch, logits, params)``, say) is named with
  the form it must have, instead of the error from deep inside it."""
  try:
    return loss_fn(logits, batch, params, **kwargs)
  except (TypeError, IndexError, KeyError, AttributeError) as e:
    if "loss_fn" in str(e) or "batch" in str(e).split(";")[0]:
      raise  # already a message about the loss's own arguments
    raise TypeError(
        f"loss_fn must be loss_fn(logits, batch, params) -> (B,) per-example losses (logits "
        f"(B, C), batch the dict {{'x', 'y', ...}}); calling it so fails: "
        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (its arguments in "
        "another order?)") from e


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
  check_optimizer(optimizer)
  if augment is not None:
    _validation.check_signature("augment", augment, 2, "augment(key, x) -> x, or None")
  mixed = compute_dtype != "float32"
  wants_model_fn = check_loss_fn(loss_fn)
  # A loss may say that only its first ``num_classes`` outputs are class
  # scores (a hardness predictor's extra output): accuracy reads those.
  classes = getattr(loss_fn, "num_classes", None)

  def step(state: TrainState, batch: Batch):
    if not isinstance(state, TrainState):
      raise TypeError(
          f"state must be a training.TrainState (create_train_state(key, model, optimizer)); "
          f"got {type(state).__name__}"
          + (": a Classifier holds no optimiser state or step; wrap it with "
             "training.create_train_state" if conventions.classifier_of(state) is state
             else "") + ".")
    if not isinstance(batch, Mapping) or "x" not in batch or "y" not in batch:
      raise TypeError(
          "batch must be a mapping {'x': inputs, 'y': labels} (data.batches yields them); "
          f"got {type(batch).__name__}"
          + (" (x, y)? pass {'x': x, 'y': y}" if isinstance(batch, (tuple, list)) else
             f" with keys {sorted(batch)}" if isinstance(batch, Mapping) else "") + ".")
    if not isinstance(batch["x"], jax.core.Tracer):  # a call outside jit: the inputs rule
      conventions.check_model_inputs("batch['x']", batch["x"], state, convert=False)
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
      # Flax's batch norm promotes its low-precision input with its float32
      # statistics (jnp.promote_types), which strict dtype promotion refuses;
      # the library's own code is strict-clean.
      with jax.numpy_dtype_promotion("standard"):
        logits, new_model_state = _computing_in(
            backend, low, state.model_state, compute_dtype).apply(
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
      out = call_loss(loss_fn, logits, batch, params, **kwargs)
      per_example, aux = per_example_losses(out, x.shape[0])
      return _masked_mean(per_example, mask), (logits, new_model_state, aux)

    check_optimizer_state(optimizer, state.params, state.opt_state)
    (loss, (logits, new_model_state, aux)), grads = jax.value_and_grad(
        objective, has_aux=True)(state.params)
    updates, opt_state = _optax.update(optimizer, grads, state.opt_state, state.params)
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
  step.loss_fn = loss_fn  # The run record (training.resume) names the loss,
  step.optimizer = optimizer  # and fingerprints the optimiser,
  step.compute_dtype, step.augment = compute_dtype, augment  # and records these.
  return step


@conventions.boundary(x="inputs", y="labels")
@functools.partial(jax.jit, static_argnames=("loss_fn", "num_classes"))
def eval_batch(clf, x, y, *, loss_fn: Callable = losses_lib.cross_entropy_loss,
               num_classes: int | None = None):
  """Per-example ``(loss, correct)`` of a classifier on one batch;
  ``correct`` is NaN on rows whose logits hold NaN or inf (the argmax of NaN
  logits is class 0, which is no prediction), or whose label lies outside
  the classes (traced labels, which the boundary cannot check), for the
  caller to refuse.

  Module-level and jitted with the classifier as an argument, so evaluating
  any number of times (every epoch of ``fit``) compiles once per shape;
  :func:`~explicable_jax.training.evaluate`, which checks the whole data set
  once, calls the jitted function without the per-batch checks
  (``eval_batch.__wrapped__``)."""
  x = to_float(x)
  logits = clf.logits(x)
  # A loss that reads the model (RRR's input gradients) gets it as in training.
  kwargs = {"model_fn": clf.logits} if _validation.accepts_keyword(loss_fn, "model_fn") else {}
  out = call_loss(loss_fn, logits, {"x": x, "y": y}, clf.params, **kwargs)
  per_example = per_example_losses(out, x.shape[0])[0]
  scored = logits[..., :num_classes]
  correct = _class_index.valid((jnp.argmax(scored, -1) == y).astype(jnp.float32), y,
                               scored.shape[-1])
  finite = jnp.all(jnp.isfinite(logits), axis=-1)
  return per_example, jnp.where(finite, correct, jnp.nan)


@jax.jit
def logits_batch(clf, x):
  """Evaluation-mode logits of one batch (uint8 images scaled to [0, 1])."""
  return clf.logits(to_float(x))


def make_eval_step(loss_fn: Callable = losses_lib.cross_entropy_loss) -> Callable:
  """``eval_step(state, batch) -> sums`` of loss, correct predictions, count
  (masked rows excluded); a jittable building block for custom loops."""
  wants_model_fn = check_loss_fn(loss_fn)

  def eval_step(state: TrainState, batch: Batch):
    x = to_float(batch["x"])
    logits, _ = state.apply(x)
    mask = batch.get("mask", jnp.ones(x.shape[0], bool)).astype(jnp.float32)
    kwargs = {"model_fn": lambda xx: state.apply(xx)[0]} if wants_model_fn else {}
    out = call_loss(loss_fn, logits, {**batch, "x": x}, state.params, **kwargs)
    per_example = per_example_losses(out, x.shape[0])[0]
    correct = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
    return {"loss_sum": jnp.sum(per_example * mask),
            "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}

  setattr(eval_step, "evaluates_only", True)  # fit refuses it as a train_step
  return eval_step
