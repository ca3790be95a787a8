"""Training: pure jitted steps, data-parallel sharding, checkpoints, fit loop.

The pieces, from the bottom up:

* :class:`TrainState`: a pytree of everything that changes during training
  (step, params, model state such as batch-norm statistics, optimiser state,
  PRNG key data). The model's structure (``graphdef``) is static.
* :func:`make_train_step` ``(loss_fn, optimizer) -> step(state, batch)``: one
  pure update. ``loss_fn(logits, batch, params)`` returns one loss per example
  (weighted losses and gradient penalties plug in unchanged; a loss that
  needs the network itself, such as an input-gradient penalty, declares a
  ``model_fn`` keyword and receives ``model_fn(x) -> logits``).
* :func:`data_parallel`: jit a step over all local devices with a
  ``jax.sharding.Mesh`` (batch split over the ``"data"`` axis, state
  replicated). Multi-host: call ``jax.distributed.initialize()`` first on every
  host; ``jax.devices()`` then spans all hosts and the same code runs.
* :class:`Checkpointer`: orbax checkpoints every N steps and at the end;
  :func:`fit` resumes a killed run from the newest one.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from explicable_jax import _validation
from explicable_jax import data as data_lib
from explicable_jax import losses as losses_lib
from explicable_jax import models as models_lib

Batch = Mapping[str, Any]


@struct.dataclass
class TrainState:
  """Everything a training run updates, as one pytree.

  Attributes:
    step: number of updates applied so far.
    params: trainable weights (``nnx.State``).
    model_state: non-trainable model state, e.g. batch-norm statistics.
    opt_state: optimiser state.
    key_data: raw PRNG key data; step ``t`` draws from ``fold_in(key, t)``, so
      a resumed run draws the same numbers as an uninterrupted one.
    graphdef: the model's static structure.
    num_classes: size of the model's output.
  """
  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  key_data: jax.Array
  graphdef: Any = struct.field(pytree_node=False)
  num_classes: int = struct.field(pytree_node=False, default=0)

  @property
  def key(self) -> jax.Array:
    return jax.random.wrap_key_data(self.key_data)

  def apply(self, x: jax.Array, *, train: bool = False,
            key: jax.Array | None = None):
    """``(logits, new_model_state)`` of the model held by this state."""
    return models_lib.apply_model(self.graphdef, self.params, self.model_state,
                                  x, train=train, key=key)

  def model(self) -> nnx.Module:
    """A live copy of the model (for interactive use, not inside ``jit``).

    Its arrays are copies, so it stays usable after ``fit`` donates this
    state's buffers."""
    params, model_state = jax.tree.map(jnp.copy, (self.params, self.model_state))
    return models_lib.merge_model(self.graphdef, params, model_state)

  def checkpoint_tree(self) -> dict:
    """The arrays that a checkpoint holds (everything but ``graphdef``)."""
    return {"step": self.step, "params": self.params,
            "model_state": self.model_state, "opt_state": self.opt_state,
            "key_data": self.key_data}

  def with_checkpoint_tree(self, tree: Mapping) -> "TrainState":
    return self.replace(**tree)


def create_train_state(model: nnx.Module, optimizer: optax.GradientTransformation,
                       key: jax.Array) -> TrainState:
  """A fresh :class:`TrainState` for ``model`` (its current weights).

  The state holds copies of the model's arrays: the jitted step donates the
  state's buffers, and the model (or another state made from it) must stay
  usable."""
  graphdef, params, model_state = models_lib.split_model(model)
  params, model_state = jax.tree.map(jnp.copy, (params, model_state))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    model_state=model_state, opt_state=optimizer.init(params),
                    key_data=jax.random.key_data(key), graphdef=graphdef,
                    num_classes=int(model.num_classes))


def _accepts(fn: Callable, name: str) -> bool:
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return name in params or any(
      p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


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
  wants_model_fn = _accepts(loss_fn, "model_fn")

  def step(state: TrainState, batch: Batch):
    key = jax.random.fold_in(state.key, state.step)
    k_aug, k_drop = jax.random.split(key)
    x = batch["x"]
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
    if augment is not None:
      x = augment(k_aug, x)
    batch = {**batch, "x": x}
    mask = batch.get("mask", jnp.ones(x.shape[0], bool))

    def objective(params):
      logits, new_model_state = models_lib.apply_model(
          state.graphdef, params, state.model_state, x, train=True, key=k_drop)
      kwargs = {}
      if wants_model_fn:
        kwargs["model_fn"] = lambda xx: models_lib.apply_model(
            state.graphdef, params, state.model_state, xx, train=True,
            key=k_drop)[0]
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
    correct = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
    metrics = {"loss": loss, "accuracy": _masked_mean(correct, mask),
               "grad_norm": optax.tree.norm(grads), "finite": finite,
               **{k: jnp.mean(v) for k, v in aux.items()}}
    return new, metrics

  return step


def make_eval_step(loss_fn: Callable = losses_lib.cross_entropy_loss) -> Callable:
  """``eval_step(state, batch) -> sums`` of loss, correct predictions, count."""

  def eval_step(state: TrainState, batch: Batch):
    x = batch["x"]
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
    logits, _ = state.apply(x)
    mask = batch.get("mask", jnp.ones(x.shape[0], bool)).astype(jnp.float32)
    out = loss_fn(logits, {**batch, "x": x}, state.params)
    per_example = out[0] if isinstance(out, tuple) else out
    correct = (jnp.argmax(logits, -1) == batch["y"]).astype(jnp.float32)
    return {"loss_sum": jnp.sum(per_example * mask),
            "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}

  return eval_step


# ---------------------------------------------------------------------------
# Data parallelism.


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``"data"`` over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("data",))


def data_parallel(step: Callable, mesh: Mesh | None = None, *,
                  donate: bool = True) -> Callable:
  """``jit`` of ``step(state, batch)`` with the state replicated and the batch
  split along its first axis over the mesh's ``"data"`` axis. Gradients are
  averaged across devices by the compiler (the loss is a mean over the
  global batch), so the result equals the single-device step."""
  mesh = data_mesh() if mesh is None else mesh
  replicated = NamedSharding(mesh, P())
  sharded = NamedSharding(mesh, P("data"))
  return jax.jit(step, in_shardings=(replicated, sharded),
                 out_shardings=replicated,
                 donate_argnums=(0,) if donate else ())


def shard_batch(batch: Batch, mesh: Mesh) -> dict:
  """Places a host batch on the mesh, split along the first axis."""
  n = mesh.devices.size
  size = len(next(iter(batch.values())))
  if size % n:
    raise ValueError(
        f"batch_size must be a multiple of the {n} devices for data parallelism; "
        f"got {size}.")
  sharding = NamedSharding(mesh, P("data"))
  return {k: jax.device_put(np.asarray(v), sharding) for k, v in batch.items()}


def replicate(tree, mesh: Mesh):
  """Places a pytree on every device of the mesh, in new buffers (the
  train step donates its input, so the caller's arrays must not be reused)."""
  return jax.device_put(tree, NamedSharding(mesh, P()), may_alias=False)


# ---------------------------------------------------------------------------
# Checkpoints.


class Checkpointer:
  """Orbax checkpoints of a :class:`TrainState` in ``directory``.

  Writes are atomic (orbax writes to a temporary folder and renames it), so a
  run killed while saving leaves the previous checkpoint intact. ``restore``
  falls back to the newest checkpoint that reads back if the newest is
  damaged.
  """

  def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 3):
    import orbax.checkpoint as ocp  # Host-side only.
    self._ocp = ocp
    self.directory = os.path.abspath(os.fspath(directory))
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    self.manager.reload()
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    self.manager.reload()
    return sorted(self.manager.all_steps())

  def save(self, state: TrainState, *, force: bool = True) -> None:
    step = int(jax.device_get(state.step))
    if step in self.all_steps():
      return
    self.manager.save(step, args=self._ocp.args.StandardSave(
        jax.device_get(state.checkpoint_tree())), force=force)
    self.manager.wait_until_finished()

  def restore(self, template: TrainState, step: int | None = None) -> TrainState:
    """The newest readable checkpoint (or ``step``), shaped like ``template``."""
    steps = [step] if step is not None else self.all_steps()[::-1]
    if not steps:
      raise FileNotFoundError(f"No checkpoint in {self.directory!r}.")
    abstract = jax.tree.map(lambda x: np.zeros(np.shape(x), x.dtype),
                            jax.device_get(template.checkpoint_tree()))
    errors = []
    for s in steps:
      try:
        tree = self.manager.restore(
            s, args=self._ocp.args.StandardRestore(abstract))
        return template.with_checkpoint_tree(tree)
      except Exception as e:  # Damaged checkpoint: try the one before.
        errors.append(f"step {s}: {type(e).__name__}: {e}")
    raise RuntimeError(
        f"No checkpoint in {self.directory!r} could be read: " + "; ".join(errors))

  def close(self) -> None:
    self.manager.close()


# ---------------------------------------------------------------------------
# Optimisers and schedules.

SCHEDULES = ("constant", "cosine", "one_cycle", "step")
OPTIMIZERS = ("sgd", "adam", "adamw")


def make_schedule(name: str, learning_rate: float, total_steps: int, *,
                  warmup_steps: int = 0) -> optax.Schedule:
  """Learning-rate schedule by name.

  ``constant``; ``cosine`` (linear warm-up then cosine decay to 0);
  ``one_cycle`` (Smith and Topin 2019, optax's ``cosine_onecycle_schedule``
  peaking at 30% of training); ``step`` (x0.1 at 50% and 75% of training, He
  et al.'s CIFAR schedule).
  """
  _validation.check_choice("schedule", name, SCHEDULES)
  _validation.check_positive("learning_rate", learning_rate)
  _validation.check_positive("total_steps", total_steps, integer=True)
  if name == "constant":
    return optax.constant_schedule(learning_rate)
  if name == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, min(warmup_steps, total_steps - 1), total_steps)
  if name == "one_cycle":
    return optax.cosine_onecycle_schedule(total_steps, learning_rate)
  return optax.piecewise_constant_schedule(
      learning_rate, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1})


def make_optimizer(name: str, schedule: optax.Schedule, *,
                   momentum: float = 0.9, nesterov: bool = True,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """``sgd`` (with coupled L2 weight decay, as torch's SGD), ``adam``, ``adamw``."""
  _validation.check_choice("optimizer", name, OPTIMIZERS)
  _validation.check_nonnegative("weight_decay", weight_decay)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=momentum or None,
                                 nesterov=nesterov and bool(momentum)))
  if name == "adam":
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.adam(schedule))
  return optax.adamw(schedule, weight_decay=weight_decay)


# ---------------------------------------------------------------------------
# The fit loop.


@dataclasses.dataclass
class TrainConfig:
  """One training run. Every field is a command-line option of ``train``."""
  dataset: str = "digits"
  model: str = "mlp"
  model_kwargs: dict = dataclasses.field(default_factory=dict)
  loss: str = "cross_entropy"
  loss_kwargs: dict = dataclasses.field(default_factory=dict)
  epochs: int = 10
  batch_size: int = 128
  optimizer: str = "sgd"
  learning_rate: float = 0.1
  schedule: str = "cosine"
  warmup_epochs: float = 0.0
  momentum: float = 0.9
  nesterov: bool = True
  weight_decay: float = 5e-4
  augment: str = "auto"
  seed: int = 0
  data_dir: str | None = None
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  log_every: int = 50
  validation: str = "test"
  init_from: str | None = None

  def validate(self) -> None:
    _validation.lookup("dataset", self.dataset, data_lib.DATASETS)
    _validation.lookup("model", self.model, models_lib.MODELS)
    _validation.lookup("loss", self.loss, losses_lib.LOSSES)
    _validation.check_positive("epochs", self.epochs, integer=True)
    _validation.check_positive("batch_size", self.batch_size, integer=True)
    _validation.check_positive("learning_rate", self.learning_rate)
    _validation.check_positive("checkpoint_every", self.checkpoint_every, integer=True)
    _validation.check_positive("log_every", self.log_every, integer=True)
    _validation.check_nonnegative("warmup_epochs", self.warmup_epochs)
    _validation.check_choice("schedule", self.schedule, SCHEDULES)
    _validation.check_choice("optimizer", self.optimizer, OPTIMIZERS)
    _validation.check_choice("augment", self.augment, ("auto", "none", "crop_flip"))
    _validation.check_choice("validation", self.validation,
                             ("test", "paper", "none"))


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss or gradient."""


class JsonlLogger:
  """Appends one JSON object per line to ``path`` (and flushes each line)."""

  def __init__(self, path: str):
    self.path = path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

  def write(self, **record) -> None:
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")


def evaluate(state: TrainState, ds: data_lib.Dataset, *, batch_size: int = 500,
             eval_step: Callable | None = None) -> dict[str, float]:
  """Accuracy and mean cross-entropy of ``state``'s model on ``ds``."""
  _validation.check_labels("labels", ds.y, state.num_classes)
  step = jax.jit(eval_step or make_eval_step())
  totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
  for batch in data_lib.batches(ds, min(batch_size, len(ds))):
    out = jax.device_get(step(state, batch))
    for k in totals:
      totals[k] += float(out[k])
  n = max(totals["count"], 1.0)
  return {"accuracy": totals["correct"] / n, "loss": totals["loss_sum"] / n,
          "count": int(totals["count"])}


def predict(state: TrainState, x: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
  """Logits of ``state``'s model for every row of ``x`` (evaluation mode)."""
  fn = jax.jit(lambda s, xb: s.apply(
      xb.astype(jnp.float32) / 255.0 if xb.dtype == jnp.uint8 else xb)[0])
  out = []
  for i in range(0, len(x), batch_size):
    xb = x[i:i + batch_size]
    pad = batch_size - len(xb) if len(x) > batch_size else 0
    xb_p = np.concatenate([xb, np.repeat(xb[:1], pad, 0)]) if pad else xb
    out.append(np.asarray(fn(state, xb_p))[:len(xb)])
  return np.concatenate(out)


def check_model_input(model: models_lib.StagedModel, ds: data_lib.Dataset) -> None:
  """Raises ``ValueError`` if ``ds``'s examples do not fit ``model``."""
  graphdef, params, model_state = models_lib.split_model(model)
  try:
    jax.eval_shape(
        lambda x: models_lib.apply_model(graphdef, params, model_state, x)[0],
        jax.ShapeDtypeStruct((2, *ds.input_shape), jnp.float32))
  except (ValueError, TypeError) as e:
    raise ValueError(
        f"dataset {ds.name!r} examples of shape {ds.input_shape} do not fit "
        f"model {type(model).__name__}: {e}") from None


def fit(state: TrainState, train_ds: data_lib.Dataset, *, train_step: Callable,
        epochs: int, batch_size: int, seed: int = 0,
        eval_ds: data_lib.Dataset | None = None, workdir: str | None = None,
        checkpoint_every: int = 500, keep_checkpoints: int = 3,
        log_every: int = 50, resume: bool = True, progress: bool = True,
        mesh: Mesh | None = None, eval_every: int = 1) -> TrainState:
  """Trains ``state`` for ``epochs`` passes over ``train_ds``.

  Deterministic given ``seed``: epoch ``e`` visits the examples in the order
  ``epoch_permutation(n, seed, e)`` (the last partial batch is dropped) and
  step ``t`` draws its randomness from ``fold_in(key, t)``. With a
  ``workdir``, checkpoints are written every ``checkpoint_every`` steps and at
  the end, metrics go to ``workdir/metrics.jsonl``, and with ``resume`` a run
  restarts from the newest checkpoint, ending with the same parameters as an
  uninterrupted run.

  Raises:
    NonFiniteLossError: a step produced a NaN/inf loss or gradient; the last
      checkpoint is the last good state.
  """
  from tqdm.auto import tqdm  # Host-side only.
  _validation.check_positive("epochs", epochs, integer=True)
  _validation.check_positive("batch_size", batch_size, integer=True)
  if batch_size > len(train_ds):
    raise ValueError(
        f"batch_size must be at most the {len(train_ds)} training examples; "
        f"got {batch_size}.")
  _validation.check_labels("labels", train_ds.y, state.num_classes)
  mesh = data_mesh() if mesh is None else mesh
  steps_per_epoch = data_lib.num_batches(len(train_ds), batch_size, True)
  total = steps_per_epoch * epochs
  ckpt = logger = None
  if workdir is not None:
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                        max_to_keep=keep_checkpoints)
    logger = JsonlLogger(os.path.join(workdir, "metrics.jsonl"))
    if resume and ckpt.latest_step() is not None:
      state = ckpt.restore(state)
      if logger:
        logger.write(event="resumed", step=int(state.step))
  state = replicate(state, mesh)
  step_fn = data_parallel(train_step, mesh)
  start = int(jax.device_get(state.step))
  bar = tqdm(total=total, initial=start, disable=not progress, unit="step",
             dynamic_ncols=True)
  t0, seen = time.time(), 0
  try:
    for epoch in range(start // steps_per_epoch, epochs):
      offset = start - epoch * steps_per_epoch if epoch == start // steps_per_epoch else 0
      for batch in data_lib.batches(train_ds, batch_size, shuffle=True, seed=seed,
                                    epoch=epoch, drop_remainder=True,
                                    start=max(offset, 0)):
        state, metrics = step_fn(state, shard_batch(batch, mesh))
        seen += 1
        step = start + seen  # Host-side count: no device round trip per step.
        if not bool(metrics["finite"]):
          raise NonFiniteLossError(
              f"Training stopped at step {step}: the loss or a gradient was "
              f"not finite (loss={float(metrics['loss'])}); the state was left "
              f"at the last good update"
              + (f" and the newest checkpoint in {ckpt.directory!r} is intact."
                 if ckpt else "."))
        bar.update(1)
        if step % log_every == 0 or step == total:
          m = {k: float(v) for k, v in jax.device_get(metrics).items()}
          bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['accuracy']:.3f}")
          if logger:
            logger.write(step=step, epoch=epoch, **m,
                         images_per_s=seen * batch_size / (time.time() - t0))
        if ckpt and step % checkpoint_every == 0:
          ckpt.save(state)
      if eval_ds is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
        ev = evaluate(state, eval_ds)
        line = (f"epoch {epoch + 1}/{epochs}: eval accuracy {ev['accuracy']:.4f} "
                f"loss {ev['loss']:.4f} ({time.time() - t0:.0f}s)")
        bar.write(line) if progress else print(line, flush=True)
        if logger:
          logger.write(step=int(jax.device_get(state.step)), epoch=epoch + 1,
                       eval_accuracy=ev["accuracy"], eval_loss=ev["loss"])
    if ckpt:
      ckpt.save(state)
  finally:
    bar.close()
    if ckpt:
      ckpt.close()
  return state


def default_augment(config: TrainConfig, ds: data_lib.Dataset) -> Callable | None:
  """Crop-and-flip for 32x32 colour images under ``augment="auto"``."""
  if config.augment == "crop_flip" or (
      config.augment == "auto" and ds.input_shape[-1:] == (3,)
      and ds.input_shape[:2] == (32, 32)):
    return data_lib.augment_cifar
  return None


def _datasets(config: TrainConfig):
  if config.validation == "paper":
    splits = data_lib.paper_split(config.dataset, data_dir=config.data_dir,
                                  seed=config.seed)
    return splits["train"], splits["validation"], splits["test"]
  train = data_lib.load(config.dataset, "train", data_dir=config.data_dir,
                        seed=config.seed)
  test = data_lib.load(config.dataset, "test", data_dir=config.data_dir,
                       seed=config.seed)
  return train, (test if config.validation == "test" else None), test


def build(config: TrainConfig, train_ds: data_lib.Dataset):
  """``(state, train_step)`` for ``config``: model, optimiser, loss, augmentation."""
  config.validate()
  model = models_lib.create_model(
      config.model, input_shape=train_ds.input_shape,
      num_classes=train_ds.num_classes, key=jax.random.key(config.seed),
      **config.model_kwargs)
  if config.init_from:
    model = _initial_weights(config, model)
  check_model_input(model, train_ds)
  steps_per_epoch = data_lib.num_batches(len(train_ds), config.batch_size, True)
  if steps_per_epoch == 0:
    raise ValueError(
        f"batch_size must be at most the {len(train_ds)} training examples; "
        f"got {config.batch_size}.")
  total = steps_per_epoch * config.epochs
  schedule = make_schedule(config.schedule, config.learning_rate, total,
                           warmup_steps=int(config.warmup_epochs * steps_per_epoch))
  optimizer = make_optimizer(config.optimizer, schedule, momentum=config.momentum,
                             nesterov=config.nesterov,
                             weight_decay=config.weight_decay)
  loss_fn = losses_lib.LOSSES[config.loss](**config.loss_kwargs)
  state = create_train_state(model, optimizer,
                             jax.random.fold_in(jax.random.key(config.seed), 1))
  step = make_train_step(loss_fn, optimizer,
                         augment=default_augment(config, train_ds))
  return state, step


def _initial_weights(config: TrainConfig, model: nnx.Module) -> nnx.Module:
  """The model of ``config.init_from`` (fine-tuning), checked against ``config``."""
  path = config.init_from
  if os.path.isdir(os.path.join(path, "model")) and not os.path.exists(
      os.path.join(path, "model.json")):
    path = os.path.join(path, "model")  # A train --workdir.
  loaded, meta = load_model(path)
  want = (config.model, dict(config.model_kwargs))
  got = (meta["model"], dict(meta["model_kwargs"]))
  if want != got:
    raise ValueError(
        f"init_from must hold the model being trained, {want[0]} {want[1]}; "
        f"{config.init_from!r} holds {got[0]} {got[1]}.")
  _, p_new, s_new = models_lib.split_model(model)
  _, p_old, s_old = models_lib.split_model(loaded)
  shapes = lambda t: jax.tree.map(lambda a: a.shape, nnx.to_pure_dict(t))
  if shapes(p_new) != shapes(p_old) or shapes(s_new) != shapes(s_old):
    raise ValueError(
        f"init_from must match this dataset's input shape and classes; "
        f"{config.init_from!r} was trained with input_shape {meta['input_shape']} "
        f"and {meta['num_classes']} classes.")
  return loaded


def train_and_evaluate(config: TrainConfig, workdir: str | None, *,
                       resume: bool = True, progress: bool = True) -> dict:
  """Trains as ``config`` says, evaluates, and exports the model to
  ``workdir/model``. Returns the final metrics (also in ``workdir/result.json``)."""
  config.validate()
  train, val, test = _datasets(config)
  state, step = build(config, train)
  if workdir:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(dataclasses.asdict(config), f, indent=2)
  t0 = time.time()
  state = fit(state, train, train_step=step, epochs=config.epochs,
              batch_size=config.batch_size, seed=config.seed, eval_ds=val,
              workdir=workdir, checkpoint_every=config.checkpoint_every,
              keep_checkpoints=config.keep_checkpoints,
              log_every=config.log_every, resume=resume, progress=progress)
  result = {"dataset": config.dataset, "model": config.model,
            "train_seconds": time.time() - t0,
            "train": evaluate(state, train),
            "test": evaluate(state, test),
            "num_params": models_lib.count_params(state.params),
            "note": train.note}
  if val is not None and config.validation == "paper":
    result["validation"] = evaluate(state, val)
  if workdir:
    save_model(os.path.join(workdir, "model"), state, config, train)
    with open(os.path.join(workdir, "result.json"), "w") as f:
      json.dump(result, f, indent=2)
  return result


# ---------------------------------------------------------------------------
# Exported models (weights + the config to rebuild them).


def save_model(path: str, state: TrainState, config: TrainConfig,
               ds: data_lib.Dataset) -> None:
  """Writes the trained weights and batch statistics (no optimiser state) and
  ``model.json`` describing how to rebuild the model."""
  import orbax.checkpoint as ocp  # Host-side only.
  path = os.path.abspath(path)
  os.makedirs(path, exist_ok=True)
  meta = {"model": config.model, "model_kwargs": config.model_kwargs,
          "input_shape": list(ds.input_shape), "num_classes": ds.num_classes,
          "class_names": list(ds.class_names), "dataset": ds.name,
          "step": int(jax.device_get(state.step))}
  with open(os.path.join(path, "model.json"), "w") as f:
    json.dump(meta, f, indent=2)
  tree = {"params": nnx.to_pure_dict(jax.device_get(state.params)),
          "model_state": nnx.to_pure_dict(jax.device_get(state.model_state))}
  weights = os.path.join(path, "weights")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(weights, tree, force=True)


def load_model(path: str):
  """``(model, meta)``: the live model saved by :func:`save_model` and its
  description (``model.json``)."""
  import orbax.checkpoint as ocp  # Host-side only.
  path = os.path.abspath(path)
  meta_path = os.path.join(path, "model.json")
  if not os.path.exists(meta_path):
    raise FileNotFoundError(
        f"path must be a folder written by save_model, holding model.json and "
        f"weights/; {path!r} has no model.json.")
  with open(meta_path) as f:
    meta = json.load(f)
  model = models_lib.create_model(
      meta["model"], input_shape=meta["input_shape"],
      num_classes=meta["num_classes"], key=jax.random.key(0),
      **meta["model_kwargs"])
  graphdef, params, model_state = models_lib.split_model(model)
  template = {"params": nnx.to_pure_dict(params),
              "model_state": nnx.to_pure_dict(model_state)}
  with ocp.StandardCheckpointer() as ckptr:
    tree = ckptr.restore(os.path.join(path, "weights"), template)
  nnx.replace_by_pure_dict(params, tree["params"])
  nnx.replace_by_pure_dict(model_state, tree["model_state"])
  return models_lib.merge_model(graphdef, params, model_state), meta
