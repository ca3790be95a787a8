"""The fit loop, evaluation and prediction."""
from __future__ import annotations

import dataclasses
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from explicable_jax import _batching, _paths, _validation
from explicable_jax import data as data_lib
from explicable_jax import losses as losses_lib
from explicable_jax import models as models_lib
from explicable_jax.training.checkpoint import Checkpointer
from explicable_jax.training.parallel import (data_mesh, data_parallel, process_rows,
                                              replicate, shard_batch)
from explicable_jax.training.state import TrainState
from explicable_jax.training.step import eval_batch, logits_batch

class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss or gradient."""


class TrainingInterrupted(KeyboardInterrupt):
  """``fit`` was interrupted (SIGINT, Ctrl-C); the message says at which step,
  which step the newest checkpoint holds, and how to resume."""

  def __init__(self, message: str, step: int, checkpoint_step: int | None):
    super().__init__(message)
    self.step, self.checkpoint_step = step, checkpoint_step

  def __str__(self) -> str:
    return str(self.args[0])


@contextlib.contextmanager
def _deferred_sigint():
  """Turn the first SIGINT into a flag the loop reads between steps.

  A ``KeyboardInterrupt`` raised wherever the signal lands can fire inside an
  asynchronous checkpoint save, a garbage-collector callback or a ``__del__``
  (where Python swallows it and the run goes on). With this handler the first
  Ctrl-C asks the loop to stop after the current step (it then saves and raises
  ``TrainingInterrupted``); a second one interrupts at once. Outside the main
  thread, where handlers cannot be set, the default behaviour stays.
  """
  requested = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield requested
    return
  previous = signal.getsignal(signal.SIGINT)

  def handler(signum, frame):
    if requested.is_set():
      raise KeyboardInterrupt
    requested.set()
    print("explicable-jax: interrupt received; stopping after this step "
          "(press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
  try:
    signal.signal(signal.SIGINT, handler)
  except ValueError:  # not settable here (embedded interpreter)
    yield requested
    return
  try:
    yield requested
  finally:
    signal.signal(signal.SIGINT, previous)


class JsonlLogger:
  """Appends one JSON object per line to ``path`` (and flushes each line).

  ``path`` may be local or a URI such as ``gs://bucket/run/metrics.jsonl``
  (see ``explicable_jax._paths``)."""

  def __init__(self, path: str):
    self.path = _paths.resolve(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)

  def truncate_after(self, step: int) -> None:
    """Drops the records of steps after ``step`` (and a line cut short by a
    kill), so that a run resumed from the checkpoint at ``step`` logs each
    step once; records without a step are kept."""
    if not self.path.exists():
      return
    keep = []
    for line in self.path.read_text().splitlines():
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if not isinstance(record.get("step"), int) or record["step"] <= step:
        keep.append(json.dumps(record) + "\n")
    _paths.write_text(self.path, "".join(keep))

  def write(self, **record) -> None:
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    _paths.append_line(self.path, json.dumps(record) + "\n")


class Callback:
  """Hooks of :func:`fit`; override any of them. ``fit`` calls them on process
  0 only (``jax.process_index() == 0``), with plain Python numbers.

  * ``on_train_begin(step)``: before the first step (``step`` > 0 when the
    run resumed);
  * ``on_log(record)``: every ``log_every`` steps: ``step``, ``epoch``,
    ``loss``, ``accuracy``, the loss's auxiliary metrics, ``images_per_s``;
  * ``on_eval(record)``: after each evaluation: ``step``, ``epoch``,
    ``eval_accuracy``, ``eval_loss``;
  * ``on_train_end(step)``: after the last step, or when the run stops early.
  """

  def on_train_begin(self, step: int) -> None:
    pass

  def on_log(self, record: dict) -> None:
    pass

  def on_eval(self, record: dict) -> None:
    pass

  def on_train_end(self, step: int) -> None:
    pass


class MetricsWriter(Callback):
  """Writes every log and evaluation record as one line of a JSON-lines file
  (``workdir/metrics.jsonl`` in :func:`fit`)."""

  def __init__(self, path: str):
    self.logger = JsonlLogger(path)

  def on_log(self, record: dict) -> None:
    self.logger.write(**record)

  on_eval = on_log


class TensorBoardWriter(Callback):
  """An example writer: each numeric entry of the log and evaluation records
  as a TensorBoard scalar at its step (``tensorboardX``, installed with
  ``pip install explicable-jax[tensorboard]``). One writer per ``fit``: it is
  closed when training ends."""

  def __init__(self, logdir: str):
    try:
      from tensorboardX import SummaryWriter
    except ImportError as e:
      raise ImportError("TensorBoardWriter needs tensorboardX: pip install "
                        "'explicable-jax[tensorboard]' (or tensorboardX).") from e
    self.writer = SummaryWriter(logdir)

  def on_log(self, record: dict) -> None:
    step = int(record["step"])
    for k, v in record.items():
      if k not in ("step", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool):
        self.writer.add_scalar(k, v, step)

  on_eval = on_log

  def on_train_end(self, step: int) -> None:
    self.writer.close()


@dataclasses.dataclass
class History:
  """What :func:`fit` logged: ``logs`` (one record per ``log_every`` steps)
  and ``evals`` (one per evaluation), as the callbacks saw them."""
  logs: list = dataclasses.field(default_factory=list)
  evals: list = dataclasses.field(default_factory=list)

  def series(self, key: str, *, evals: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one metric, e.g. ``history.series("loss")``."""
    recs = [r for r in (self.evals if evals else self.logs) if key in r]
    return (np.array([r["step"] for r in recs]), np.array([r[key] for r in recs]))




def _guarded(train_step: Callable) -> Callable:
  """``train_step`` carrying ``bad``, the first non-finite step (-1: none):
  after it, every step returns its input state unchanged."""
  def step(carry, batch):
    state, bad = carry
    new, metrics = train_step(state, batch)
    keep = metrics["finite"] & (bad < 0)
    new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
    bad = jnp.where((bad < 0) & ~metrics["finite"], state.step + 1, bad).astype(jnp.int32)
    return (new, bad), metrics
  step.num_classes = getattr(train_step, "num_classes", None)
  return step


def evaluate(model, ds: data_lib.Dataset, *, batch_size: int = 500,
             loss_fn: Callable = losses_lib.cross_entropy_loss,
             across_processes: bool = False) -> dict[str, float]:
  """Accuracy and mean loss (cross-entropy by default) of a model on ``ds``.

  ``model`` is a :class:`~explicable_jax.models.Classifier` or a
  :class:`TrainState`. Batches go through the one jitted evaluation function
  (:func:`~explicable_jax.training.step.eval_batch`), so repeated calls with
  the same shapes compile once. ``across_processes`` (a multi-process run;
  every process must call it): each process evaluates ``1/P`` of ``ds`` and
  every process gets the whole result; ``fit`` and ``train_and_evaluate``
  evaluate this way.
  """
  clf = models_lib.as_classifier("model", model)
  if not isinstance(ds, data_lib.Dataset):
    raise TypeError(f"ds must be a data.Dataset; got {type(ds).__name__}.")
  _validation.check_labels("labels", ds.y, clf.num_classes)
  # Accuracy over the dataset's classes only: a model with extra outputs (a
  # hardness predictor's logit, last) must not win an argmax with them.
  classes = getattr(loss_fn, "num_classes", None) or ds.num_classes
  per_example, correct = _batching.map_batches(
      lambda c, x, y: eval_batch(c, x, y, loss_fn=loss_fn, num_classes=classes), [ds.x, ds.y],
      batch_size=batch_size, args=(clf,), across_processes=across_processes)
  return {"accuracy": float(np.mean(correct)), "loss": float(np.mean(per_example)),
          "count": int(len(correct))}


def predict(model, x: np.ndarray, *, batch_size: int = 500,
            across_processes: bool = False) -> np.ndarray:
  """Evaluation-mode logits of a model for every row of ``x`` (uint8 images
  are scaled to [0, 1]); ``model`` is a Classifier or a TrainState.
  ``across_processes``: as in :func:`evaluate`."""
  clf = models_lib.as_classifier("model", model)
  return _batching.map_batches(logits_batch, [np.asarray(x)],
                               batch_size=batch_size, args=(clf,),
                               across_processes=across_processes)


def check_model_input(model, ds: data_lib.Dataset) -> None:
  """Raises ``ValueError`` if ``ds``'s examples do not fit ``model``."""
  clf = models_lib.as_classifier("model", model)
  try:
    out = jax.eval_shape(clf.logits, jax.ShapeDtypeStruct((2, *ds.input_shape), jnp.float32))
  except (ValueError, TypeError) as e:
    raise ValueError(
        f"dataset {ds.name!r} examples of shape {ds.input_shape} do not fit "
        f"the model ({clf!r}): {e}") from None
  if out.ndim != 2 or out.shape[-1] < ds.num_classes:
    raise ValueError(
        f"the model must return at least {ds.num_classes} class scores per example "
        f"for dataset {ds.name!r}; it returns shape {tuple(out.shape)} for a batch of 2.")


def fit(state: TrainState, train_ds: data_lib.Dataset, *, train_step: Callable,
        epochs: int, batch_size: int, seed: int = 0,
        eval_ds: data_lib.Dataset | None = None, workdir: str | None = None,
        checkpoint_every: int = 500, keep_checkpoints: int = 3,
        log_every: int = 50, resume: bool = True, progress: bool = True,
        mesh: Mesh | None = None, eval_every: int = 1, shuffle: bool = True,
        drop_remainder: bool = True, callbacks=(), return_history: bool = False):
  """Trains ``state`` for ``epochs`` passes over ``train_ds``.

  Deterministic given ``seed``: epoch ``e`` visits the examples in the order
  ``epoch_permutation(n, seed, e)`` (with ``shuffle=False``: the data set's
  own order every epoch, as the fixed slices of Ross et al.'s code); the last
  partial batch is dropped unless ``drop_remainder=False``, which pads it and
  masks the padding out of the loss; and
  step ``t`` draws its randomness from ``fold_in(key, t)``. With a
  ``workdir``, checkpoints are written every ``checkpoint_every`` steps and at
  the end, metrics go to ``workdir/metrics.jsonl``, and with ``resume`` a run
  restarts from the newest checkpoint, ending with the same parameters as an
  uninterrupted run.

  ``callbacks`` (:class:`Callback`) see every log and evaluation record; the
  ``metrics.jsonl`` writer is one of them (:class:`MetricsWriter`), and
  :class:`TensorBoardWriter` is another. In a multi-process run only process
  0 calls them, writes ``metrics.jsonl`` and shows the progress bar. With
  ``return_history`` fit returns ``(state, History)``, else the state.

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
  step_classes = getattr(getattr(train_step, "__wrapped__", train_step), "num_classes", None)
  if step_classes is not None and step_classes != train_ds.num_classes:
    raise ValueError(
        f"train_step's loss is for {step_classes} classes (e.g. a {step_classes}x"
        f"{step_classes} weights matrix); dataset {train_ds.name!r} has "
        f"{train_ds.num_classes}.")
  if state.num_classes > train_ds.num_classes and step_classes != train_ds.num_classes:
    raise ValueError(
        f"the model returns {state.num_classes} scores for the {train_ds.num_classes} "
        f"classes of {train_ds.name!r}, and train_step's loss does not say which are class "
        "scores, so the training accuracy would count the extra outputs; give the loss a "
        f"num_classes={train_ds.num_classes} attribute (make_hardness_loss does) or build "
        f"the model with {train_ds.num_classes} outputs.")
  mesh = data_mesh() if mesh is None else mesh
  # Several processes: each gathers only the rows of every batch that its
  # devices hold (a bad batch size gets shard_batch's error instead).
  local_rows = global_size = None
  if jax.process_count() > 1 and batch_size % mesh.devices.size == 0:
    local_rows, global_size = process_rows(mesh, batch_size), batch_size
  steps_per_epoch = data_lib.num_batches(len(train_ds), batch_size, drop_remainder)
  total = steps_per_epoch * epochs
  main = jax.process_index() == 0
  callbacks = list(callbacks)
  history = History()
  ckpt = None
  if workdir is not None:
    ckpt = Checkpointer(_paths.resolve(workdir) / "checkpoints",
                        max_to_keep=keep_checkpoints)
    resumed = resume and ckpt.latest_step() is not None
    if resumed:
      state = ckpt.restore(state)
    if main:
      writer = MetricsWriter(_paths.resolve(workdir) / "metrics.jsonl")
      # Steps after the restored one (all of them on a fresh start) will be
      # run, and logged, again: drop their old records so each step is
      # logged once.
      writer.logger.truncate_after(int(state.step))
      if resumed:
        writer.logger.write(event="resumed", step=int(state.step))
      callbacks.insert(0, writer)
  if not main:
    callbacks = []

  def emit(kind, record):
    (history.evals if kind == "on_eval" else history.logs).append(record)
    for cb in callbacks:
      getattr(cb, kind)(record)
  state = replicate(state, mesh)
  # The NaN guard lives on the device: once a step is not finite, every later
  # step leaves the state as it is (the last good update) and ``bad`` keeps
  # the first bad step's number. The host reads ``bad`` only where it syncs
  # anyway (logging, checkpoints, evaluation, the end), never once per step.
  step_fn = data_parallel(_guarded(train_step), mesh)
  bad = replicate(jnp.asarray(-1, jnp.int32), mesh)
  start = int(jax.device_get(state.step))

  def stop_if_bad():
    first = int(jax.device_get(bad))
    if first >= 0:
      raise NonFiniteLossError(
          f"Training stopped: the loss or a gradient was not finite at step {first}; "
          f"the state was left at the last good update (step {first - 1})"
          + (f" and the newest checkpoint in {ckpt.directory!r} is intact."
             if ckpt else "."))
  for cb in callbacks:
    cb.on_train_begin(start)
  bar = tqdm(total=total, initial=start, disable=not (progress and main), unit="step",
             dynamic_ncols=True)
  t0, seen = time.time(), 0
  interrupt = contextlib.ExitStack()
  try:
    stop_requested = interrupt.enter_context(_deferred_sigint())

    def check_interrupt():
      if stop_requested.is_set():
        raise KeyboardInterrupt
    for epoch in range(start // steps_per_epoch, epochs):
      offset = start - epoch * steps_per_epoch if epoch == start // steps_per_epoch else 0
      for batch in data_lib.batches(train_ds, batch_size, shuffle=shuffle, seed=seed,
                                    epoch=epoch, drop_remainder=drop_remainder,
                                    start=max(offset, 0), rows=local_rows):
        (state, bad), metrics = step_fn((state, bad),
                                        shard_batch(batch, mesh, global_size=global_size))
        seen += 1
        step = start + seen  # Host-side count: no device round trip per step.
        bar.update(1)
        saving = ckpt is not None and step % checkpoint_every == 0
        logging = step % log_every == 0 or step == total
        if saving or logging:
          stop_if_bad()
        if logging:
          m = {k: float(v) for k, v in jax.device_get(metrics).items()}
          bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['accuracy']:.3f}")
          emit("on_log", {"step": step, "epoch": epoch, **m,
                          "images_per_s": seen * batch_size / (time.time() - t0)})
        if saving:
          ckpt.save(state)
        check_interrupt()
      stop_if_bad()
      if eval_ds is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
        ev = evaluate(state, eval_ds, across_processes=True)
        line = (f"epoch {epoch + 1}/{epochs}: eval accuracy {ev['accuracy']:.4f} "
                f"loss {ev['loss']:.4f} ({time.time() - t0:.0f}s)")
        if main:
          bar.write(line) if progress else print(line, flush=True)
        emit("on_eval", {"step": int(jax.device_get(state.step)), "epoch": epoch + 1,
                         "eval_accuracy": ev["accuracy"], "eval_loss": ev["loss"]})
      check_interrupt()
    if ckpt:
      ckpt.save(state)
  except KeyboardInterrupt as e:
    if isinstance(e, TrainingInterrupted):
      raise
    done = int(jax.device_get(state.step))  # the last completed step
    saved = None
    if ckpt:
      try:
        ckpt.save(state)
        saved = ckpt.latest_step()
      except BaseException:  # a second Ctrl-C while saving: report what is on disk
        saved = ckpt.latest_step()
    raise TrainingInterrupted(
        f"interrupted at step {done}; "
        + (f"the last checkpoint is step {saved}; rerun the same command to resume"
           if saved is not None else "no checkpoint was written (no workdir)"),
        done, saved) from None
  finally:
    interrupt.close()
    bar.close()
    if ckpt:
      ckpt.close()
    last = int(jax.device_get(state.step))
    for cb in callbacks:
      cb.on_train_end(last)
  return (state, history) if return_history else state

