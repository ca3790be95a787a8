"""The fit loop, evaluation and prediction.

:func:`fit` is assembled from parts: :class:`FitConfig` (every setting and
its default, checked once), :func:`_open_run` (the workdir: run record,
resume, metrics), :func:`_run_epoch` (one pass of jitted steps),
:func:`_evaluate_epoch` and :func:`_stop_on_interrupt`.

One module, not a package (over 500 lines): its parts are private pieces of one
loop (each a short function named above), and :func:`evaluate` and
:func:`predict` share the loop's batching and data checks; the run record,
callbacks, checkpoints and resume already live in their own modules.
"""
from __future__ import annotations

import dataclasses
import contextlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from explicable_jax import _batching, _paths, _validation, conventions
from explicable_jax import data as data_lib
from explicable_jax import losses as losses_lib
from explicable_jax import models as models_lib
from explicable_jax.training import resume as resume_lib
from explicable_jax.training.callbacks import History, MetricsWriter
from explicable_jax.training.checkpoint import Checkpointer
from explicable_jax.training.parallel import (data_mesh, data_parallel, process_rows,
                                              replicate, shard_batch)
from explicable_jax.training.state import TrainState
from explicable_jax.training.step import (check_loss_fn, check_optimizer_state, eval_batch,
                                          logits_batch)

# evaluate() checks the whole data set once; its batches skip the boundary.
_eval_batch_unchecked: Callable = getattr(eval_batch, "__wrapped__")

__all__ = [
    "FIT_SETTINGS", "FitConfig", "NonFiniteLossError", "TrainingInterrupted",
    "check_model_input", "evaluate", "fit", "predict",
]

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
  setattr(step, "num_classes", getattr(train_step, "num_classes", None))
  return step


def _check_extra_outputs(model_classes: int, ds, loss_classes, who: str) -> None:
  """One rule for ``fit`` and ``evaluate``: a model with more outputs than the
  data's classes is accepted only when the loss says which are class scores
  (its ``num_classes`` attribute), else the accuracy would count the extras."""
  if model_classes > ds.num_classes and loss_classes != ds.num_classes:
    raise ValueError(
        f"the model returns {model_classes} scores for the {ds.num_classes} "
        f"classes of {ds.name!r}, and {who} does not say which are class "
        "scores, so the accuracy would count the extra outputs; give the loss a "
        f"num_classes={ds.num_classes} attribute (make_hardness_loss does) or build "
        f"the model with {ds.num_classes} outputs.")


@conventions.boundary()
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

  Args:
    model: a :class:`~explicable_jax.models.Classifier` or a
      :class:`TrainState`.
    ds: the examples, ``ds.x`` ``(N, ...)`` and ``ds.y`` ``(N,)``.
    batch_size: rows per jitted call.
    loss_fn: ``loss_fn(logits, batch, params)`` -> per-example losses ``(B,)``
      (as :func:`make_train_step` takes it).
    across_processes: split the work across processes, as above.

  Returns:
    ``{"accuracy": float, "loss": float, "count": int}``: the means over the
    ``N`` examples, and ``N``.

  Example:
    >>> import numpy as np
    >>> from explicable_jax import data, models
    >>> clf = models.from_functions(lambda w, x: x @ w, np.eye(2, dtype=np.float32),
    ...                             input_shape=(2,), num_classes=2)
    >>> ds = data.Dataset(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32),
    ...                   np.array([0, 1, 1]), 2, ("a", "b"))
    >>> evaluate(clf, ds)["accuracy"]  # the third example is class 1, predicted 0
    0.6667
  """
  clf = models_lib.as_classifier("model", model)
  if not isinstance(ds, data_lib.Dataset):
    raise TypeError(f"ds must be a data.Dataset; got {type(ds).__name__}.")
  _check_data_for_model("ds", clf, ds)
  _validation.check_labels("labels", ds.y, clf.num_classes)
  check_loss_fn(loss_fn)
  _check_extra_outputs(clf.num_classes, ds, getattr(loss_fn, "num_classes", None), "loss_fn")
  # Accuracy over the dataset's classes only: a model with extra outputs (a
  # hardness predictor's logit, last) must not win an argmax with them.
  classes = getattr(loss_fn, "num_classes", None) or ds.num_classes
  per_example, correct = _batching.map_batches(
      lambda c, x, y: _eval_batch_unchecked(c, x, y, loss_fn=loss_fn, num_classes=classes),
      [ds.x, ds.y],
      batch_size=batch_size, args=(clf,), across_processes=across_processes)
  # NaN marks rows with non-finite logits: their argmax (class 0) is no
  # prediction, so no accuracy is reported over them.
  conventions.check_finite("the model's logits (evaluate)", np.asarray(correct))
  return {"accuracy": float(np.mean(correct)), "loss": float(np.mean(per_example)),
          "count": int(len(correct))}


@conventions.boundary(x="inputs")
def predict(model, x: np.ndarray, *, batch_size: int = 500,
            across_processes: bool = False, check_finite: bool = True) -> np.ndarray:
  """Evaluation-mode logits of a model for every row of ``x``.

  Args:
    model: a Classifier or a TrainState.
    x: a batch of inputs (:mod:`~explicable_jax.conventions`: integer pixels
      are scaled to [0, 1]; float images must already be).
    batch_size: rows per jitted call.
    across_processes: as in :func:`evaluate`.
    check_finite: raise naming the rows whose logits hold NaN or inf (the
      library's policy outside jit); ``False`` returns them as they are.

  Returns:
    ``(N, C)`` logits (numpy).

  Example:
    >>> import numpy as np
    >>> from explicable_jax import models
    >>> clf = models.from_functions(lambda w, x: x @ w, np.eye(2, dtype=np.float32),
    ...                             input_shape=(2,), num_classes=2)
    >>> predict(clf, np.array([[0.2, 0.8]], np.float32)).round(4).tolist()
    [[0.2, 0.8]]
  """
  clf = models_lib.as_classifier("model", model)
  _validation.check_positive("batch_size", batch_size, integer=True)
  out = _batching.map_batches(logits_batch, [x], batch_size=batch_size, args=(clf,),
                              across_processes=across_processes)
  if check_finite:
    conventions.check_finite("the model's logits", out)
  return out


_SCALE_ROWS = 1024
"""How many of a data set's first examples :func:`check_model_input` reads
for the scale check (the scale is the whole set's; the first rows show it)."""


def _check_data_for_model(name: str, clf, ds: data_lib.Dataset) -> None:
  """``ds``'s inputs against the model's convention, without tracing: the
  model's ``input_shape`` and, unless it was adapted with
  ``input_range=None``, the ``[0, 1]`` scale of float images, read on the
  first :data:`_SCALE_ROWS` examples (a Dataset checks layout and finiteness
  only: the scale belongs to the model)."""
  conventions.check_model_inputs(
      f"{name}.x (dataset {ds.name!r}, first {min(len(ds), _SCALE_ROWS)} examples)",
      ds.x[:_SCALE_ROWS], clf, convert=False)
  model_names, data_names = tuple(clf.class_names or ()), tuple(ds.class_names or ())
  if model_names and data_names and model_names[:len(data_names)] != data_names:
    # Both name their classes: another order (or another set) means the
    # labels index other classes than the model's outputs.
    first = next(i for i, (a, b) in enumerate(zip(model_names, data_names)) if a != b) \
        if any(a != b for a, b in zip(model_names, data_names)) else min(len(model_names),
                                                                       len(data_names))
    raise conventions.ConventionError(
        f"{name}.class_names must name the model's classes in its output order; the model "
        f"has {list(model_names)[:12]}, dataset {ds.name!r} has {list(data_names)[:12]}"
        + (f" (they first differ at class {first})" if first < len(data_names) else "")
        + ": reorder the labels (and class_names) to the model's, or adapt the model with "
        "the data's class_names if its outputs are in that order.")


def check_model_input(model, ds: data_lib.Dataset, *, name: str = "ds") -> None:
  """Raises ``ValueError`` if ``ds``'s examples do not fit ``model``: their
  shape (traced once) and, for a model that declares ``input_range=(0, 1)``
  (the default), their scale (:func:`~explicable_jax.conventions.check_model_inputs`
  on the first examples)."""
  clf = models_lib.as_classifier("model", model)
  data_lib.check_dataset(name, ds)
  _check_data_for_model(name, clf, ds)
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


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """How :func:`fit` runs: every setting and its default, checked once.

  Attributes:
    epochs: passes over the training set (may grow when a run is resumed).
    batch_size: examples per step (part of the run's identity).
    seed: the data order's seed (epoch ``e`` visits
      ``data.epoch_permutation(n, seed, e)``).
    workdir: folder for checkpoints, ``metrics.jsonl`` and ``run.json``;
      ``None`` keeps nothing on disk.
    checkpoint_every: steps between checkpoints (and at the end).
    keep_checkpoints: how many checkpoints to keep.
    log_every: steps between log records.
    resume: ``True``: continue the run in ``workdir`` when there is one,
      refusing a call that differs from it (:mod:`~explicable_jax.training.resume`);
      ``False``: start afresh, refusing a workdir that already holds
      checkpoints; ``"allow_changes"``: continue even if settings changed.
    progress: show a progress bar.
    eval_every: epochs between evaluations on ``eval_ds`` (and at the end).
    shuffle: reshuffle every epoch (``False``: the data set's own order).
    drop_remainder: drop the last partial batch (``False``: pad and mask it).
    run_info: JSON-able facts that define the run beyond what the library
      sees (learning rate, schedule, loss weights); recorded in ``run.json``
      and compared on resume.

  Example:
    >>> config = FitConfig(epochs=2, batch_size=64)
    >>> config.epochs, config.batch_size  # fit(state, ds, train_step=..., config=config)
    (2, 64)
  """
  epochs: int
  batch_size: int
  seed: int = 0
  workdir: str | os.PathLike | None = None
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  log_every: int = 50
  resume: bool | str = True
  progress: bool = True
  eval_every: int = 1
  shuffle: bool = True
  drop_remainder: bool = True
  run_info: dict | None = None

  def __post_init__(self):
    for name in ("epochs", "batch_size", "checkpoint_every", "keep_checkpoints",
                 "log_every", "eval_every"):
      _validation.check_positive(name, getattr(self, name), integer=True)
    _validation.check_seed("seed", self.seed)
    if self.resume not in resume_lib.RESUME_MODES or isinstance(self.resume, (int, float)) \
        and not isinstance(self.resume, bool):
      raise ValueError(f"resume must be True, False or 'allow_changes'; got {self.resume!r}.")
    for name in ("progress", "shuffle", "drop_remainder"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}.")
    if self.workdir is not None:
      if not isinstance(self.workdir, (str, os.PathLike)):
        raise TypeError(f"workdir must be a folder path (str or os.PathLike) or None; got "
                        f"{type(self.workdir).__name__} {self.workdir!r}.")
      _paths.check_folder("workdir", self.workdir)
    if self.run_info is not None:
      try:
        json.dumps(dict(self.run_info))
      except (TypeError, ValueError):
        raise ValueError(f"run_info must be a JSON-able mapping; got {self.run_info!r}.") from None

  def replace(self, **changes) -> FitConfig:
    return dataclasses.replace(self, **changes)


FIT_SETTINGS = tuple(f.name for f in dataclasses.fields(FitConfig))


def _fit_config(config: FitConfig | None, settings: dict) -> FitConfig:
  """``config`` with keyword ``settings`` applied (unknown names refused)."""
  if "return_history" in settings:
    raise TypeError("fit no longer takes return_history: it always returns (state, history); "
                    "write `state, history = fit(...)` (see CHANGELOG.md).")
  unknown = sorted(set(settings) - set(FIT_SETTINGS))
  if unknown:
    raise TypeError(f"fit got unknown setting(s) {', '.join(unknown)}; the settings are the "
                    f"fields of FitConfig: {', '.join(FIT_SETTINGS)}.")
  if config is None:
    missing = [k for k in ("epochs", "batch_size") if k not in settings]
    if missing:
      raise TypeError(f"fit needs {' and '.join(missing)} (as keywords or in config=FitConfig(...)).")
    return FitConfig(**settings)
  if not isinstance(config, FitConfig):
    raise TypeError(f"config must be a training.FitConfig; got {type(config).__name__}.")
  changed = {k: v for k, v in settings.items() if getattr(config, k) != v}
  if changed:  # documented (keywords override), but easy to do by mistake
    warnings.warn(
        "fit: keywords override config's settings: "
        + ", ".join(f"{k}={v!r} (config has {getattr(config, k)!r})"
                    for k, v in changed.items()) + ".", UserWarning, stacklevel=_validation.user_stacklevel())
  return config.replace(**settings) if settings else config


_CALLBACK_HOOKS = ("on_train_begin", "on_log", "on_eval", "on_train_end")


def _check_callbacks(callbacks) -> list:
  """``callbacks`` as a list, each a :class:`Callback` or an object with its
  four hook methods (refused up front, not mid-run)."""
  from explicable_jax.training.callbacks import Callback
  if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
    raise TypeError(f"callbacks must be a sequence of training.Callback; got "
                    f"{type(callbacks).__name__}.")
  callbacks = list(callbacks)
  for i, cb in enumerate(callbacks):
    if isinstance(cb, type):
      raise TypeError(f"callbacks[{i}] must be a callback instance; got the class "
                      f"{cb.__name__}: pass {cb.__name__}(...).")
    unknown = sorted(n for n in dir(type(cb)) if n.startswith("on_") and n not in _CALLBACK_HOOKS
                     and callable(getattr(cb, n, None)))
    if unknown:  # a hook of another library's name would never be called
      raise TypeError(
          f"callbacks[{i}] defines {', '.join(unknown)}, which fit never calls; its hooks are "
          f"{', '.join(_CALLBACK_HOOKS)} (an epoch's end is on_eval, with eval_every=).")
    for hook in _CALLBACK_HOOKS:
      if callable(getattr(cb, hook, None)):
        arg = "record" if hook in ("on_log", "on_eval") else "step"
        _validation.check_signature(f"callbacks[{i}].{hook}", getattr(cb, hook), 1,
                                    f"{hook}(self, {arg})")
    if isinstance(cb, Callback):
      continue
    missing = [h for h in _CALLBACK_HOOKS if not callable(getattr(cb, h, None))]
    if missing:
      raise TypeError(
          f"callbacks[{i}] must be a training.Callback (or have its methods "
          f"{', '.join(_CALLBACK_HOOKS)}); got {type(cb).__name__}, which lacks "
          f"{', '.join(missing)}: subclass training.Callback and override the hooks you need.")
  return callbacks


_IGNORED_WITHOUT = (
    ("workdir", ("checkpoint_every", "keep_checkpoints", "resume"), "a workdir (where "
     "checkpoints are written and a run is resumed)"),
    ("eval_ds", ("eval_every",), "eval_ds (what is evaluated)"),
    ("shuffle", ("seed",), "shuffle=True (the seed sets the shuffling order)"),
)


def _check_ignored_settings(cfg: FitConfig, eval_ds) -> None:
  """A setting away from its default that this run would never read (a
  checkpoint cadence without a workdir, an evaluation cadence without
  ``eval_ds``, a seed without shuffling) is refused, naming what it needs."""
  defaults = {f.name: f.default for f in dataclasses.fields(FitConfig)}
  present = {"workdir": cfg.workdir is not None, "eval_ds": eval_ds is not None,
             "shuffle": cfg.shuffle}
  for needed, names, what in _IGNORED_WITHOUT:
    unread = [f"{n}={getattr(cfg, n)!r}" for n in names if getattr(cfg, n) != defaults[n]]
    if unread and not present[needed]:
      one = len(unread) == 1
      raise ValueError(f"{', '.join(unread)} would be ignored: {'it is' if one else 'they are'} "
                       f"read only with {what}; pass {needed}, or drop {'it' if one else 'them'}.")


def _check_step_form(train_step) -> None:
  """``train_step`` is called ``step(state, batch)``: a loss function
  (``loss(logits, batch, params)``) given in its place is named as such."""
  import inspect
  try:
    first = next(iter(inspect.signature(train_step).parameters), None)
  except (TypeError, ValueError):
    return
  if getattr(train_step, "evaluates_only", False):
    raise TypeError("train_step must update the state, step(state, batch) -> (state, metrics); "
                    "got make_eval_step's function, which only sums the loss and accuracy: "
                    "pass training.make_train_step(loss, optimizer).")
  if first == "logits":
    name = getattr(train_step, "__name__", type(train_step).__name__)
    raise TypeError(
        f"train_step must be a step function step(state, batch); got {name}, a loss "
        f"(its first argument is logits): build the step, "
        f"training.make_train_step({name}, optimizer).")
  _validation.check_signature("train_step", train_step, 2,
                              "step(state, batch) -> (state, metrics)")


def _check_fit_args(state, train_ds, train_step, cfg: FitConfig, eval_ds=None) -> None:
  """The arguments :func:`fit` takes, against each other."""
  if not isinstance(state, TrainState):
    raise TypeError(f"state must be a training.TrainState (create_train_state(key, model, "
                    f"optimizer)); got {type(state).__name__}.")
  if not isinstance(train_ds, data_lib.Dataset):
    got = type(train_ds).__name__
    hint = (" (an (x, y) tuple: wrap it as data.Dataset(x, y, num_classes, class_names))"
            if isinstance(train_ds, tuple) else "")
    raise TypeError(f"train_ds must be a data.Dataset; got {got}{hint}.")
  if len(train_ds) == 0:
    raise ValueError("train_ds holds no examples (an empty Dataset): nothing to train on.")
  if cfg.batch_size > len(train_ds):
    raise ValueError(
        f"batch_size must be at most the {len(train_ds)} training examples; "
        f"got {cfg.batch_size}.")
  if not callable(train_step):
    raise TypeError(f"train_step must be a step function (training.make_train_step(loss, "
                    f"optimizer)); got {type(train_step).__name__}.")
  _check_step_form(train_step)
  _validation.check_labels("labels", train_ds.y, state.num_classes)
  check_model_input(state, train_ds, name="train_ds")
  if eval_ds is not None:
    if not isinstance(eval_ds, data_lib.Dataset):
      raise TypeError(f"eval_ds must be a data.Dataset; got {type(eval_ds).__name__}.")
    if eval_ds.input_shape != train_ds.input_shape:
      raise ValueError(f"eval_ds must hold examples of the training set's shape "
                       f"{train_ds.input_shape}; got {eval_ds.input_shape}.")
    _check_data_for_model("eval_ds", state.classifier, eval_ds)
    if train_ds.class_names and eval_ds.class_names and \
        tuple(train_ds.class_names) != tuple(eval_ds.class_names):
      raise conventions.ConventionError(
          f"eval_ds.class_names must be the training set's, in its order; train_ds has "
          f"{list(train_ds.class_names)[:12]}, eval_ds {list(eval_ds.class_names)[:12]}: the "
          "labels of one index other classes than the other's.")
    _validation.check_labels("eval_ds labels", eval_ds.y, state.num_classes)
  optimizer = getattr(getattr(train_step, "__wrapped__", train_step), "optimizer", None)
  if optimizer is not None:
    check_optimizer_state(optimizer, state.params, state.opt_state)
  step_classes = getattr(getattr(train_step, "__wrapped__", train_step), "num_classes", None)
  if step_classes is not None and step_classes != train_ds.num_classes:
    raise ValueError(
        f"train_step's loss is for {step_classes} classes (e.g. a {step_classes}x"
        f"{step_classes} weights matrix); dataset {train_ds.name!r} has "
        f"{train_ds.num_classes}.")
  _check_extra_outputs(state.num_classes, train_ds, step_classes, "train_step's loss")


def _open_run(state, train_ds, train_step, cfg: FitConfig, main: bool):
  """The workdir's part of a run: ``(state, checkpointer, metrics writer)``.

  A fresh run records its identity in ``run.json``; a resumed one is checked
  against it first (a folder from before run records: against the
  checkpoint's shapes, then recorded)."""
  if cfg.workdir is None:
    return state, None, None
  _paths.check_folder("workdir", cfg.workdir)
  workdir = _paths.resolve(cfg.workdir)
  ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=cfg.keep_checkpoints)
  try:
    current = resume_lib.describe_run(
        state, train_ds, batch_size=cfg.batch_size, shuffle=cfg.shuffle,
        drop_remainder=cfg.drop_remainder, seed=cfg.seed, train_step=train_step,
        run_info=cfg.run_info)
    has_checkpoint = ckpt.latest_step() is not None
    recorded = resume_lib.read_run(workdir)
    if has_checkpoint and not cfg.resume:
      raise ValueError(
          f"workdir {os.fspath(workdir)!r} already holds checkpoints (steps "
          f"{ckpt.all_steps()}) and resume=False: choose an empty workdir for a new run, or "
          "pass resume=True to continue that one.")
    if has_checkpoint:
      if recorded is not None:
        resume_lib.check_resume(os.fspath(workdir), recorded, current, cfg.resume)
      elif not (workdir / resume_lib.RUN_FILE).exists():
        warnings.warn(
            f"{os.fspath(workdir)!r} holds checkpoints but no {resume_lib.RUN_FILE} (deleted, "
            "or written by an older version): resuming with only the checkpoint's shapes "
            "checked, so another learning rate, loss or data would go unnoticed; a new "
            "record is written.", UserWarning, stacklevel=_validation.user_stacklevel())
      state = ckpt.restore(state)  # Refuses other shapes (folders without run.json).
    elif recorded is not None and cfg.resume:
      warnings.warn(
          f"{os.fspath(workdir)!r} holds a run record ({resume_lib.RUN_FILE}) but no "
          "checkpoint (none written yet, or deleted): the run starts again from step 0, and "
          "the metrics logged after step 0 are dropped.", UserWarning, stacklevel=_validation.user_stacklevel())
    if main and (recorded is None or not has_checkpoint or cfg.resume == "allow_changes"):
      resume_lib.write_run(workdir, current)
  except BaseException:
    ckpt.close()
    raise
  writer = None
  if main:
    writer = MetricsWriter(workdir / "metrics.jsonl")
    # Steps after the restored one (all of them on a fresh start) will be
    # run, and logged, again: drop their old records so each is logged once.
    writer.logger.truncate_after(int(state.step))
    if has_checkpoint:
      writer.logger.write(event="resumed", step=int(state.step))
  return state, ckpt, writer


class _Run:
  """The mutable part of one :func:`fit` call: the device state, the NaN
  carry, the host's step count, the reporting hooks."""

  def __init__(self, state, mesh, callbacks, history, ckpt):
    self.state = replicate(state, mesh)
    # The NaN guard lives on the device: once a step is not finite, every
    # later step leaves the state as it is (the last good update) and
    # ``bad`` keeps the first bad step's number. The host reads ``bad`` only
    # where it syncs anyway (logging, checkpoints, evaluation, the end).
    self.bad = replicate(jnp.asarray(-1, jnp.int32), mesh)
    self.start = int(jax.device_get(self.state.step))
    self.seen = 0
    self.callbacks, self.history, self.ckpt = callbacks, history, ckpt
    self.t0 = time.time()

  @property
  def step(self) -> int:
    return self.start + self.seen  # Host-side count: no device round trip.

  def emit(self, kind: str, record: dict) -> None:
    (self.history.evals if kind == "on_eval" else self.history.logs).append(record)
    for cb in self.callbacks:
      getattr(cb, kind)(record)

  def stop_if_bad(self) -> None:
    first = int(jax.device_get(self.bad))
    if first >= 0:
      raise NonFiniteLossError(
          f"Training stopped: the loss or a gradient was not finite at step {first}; "
          f"the state was left at the last good update (step {first - 1})"
          + (f" and the newest checkpoint in {self.ckpt.directory!r} is intact."
             if self.ckpt else "."))


def _run_epoch(run: _Run, step_fn, train_ds, epoch: int, cfg: FitConfig, *, total: int,
               steps_per_epoch: int, mesh, local_rows, global_size, bar, check_interrupt):
  """One epoch of jitted steps (from the resumed position in the first)."""
  offset = run.start - epoch * steps_per_epoch if epoch == run.start // steps_per_epoch else 0
  order = dict(shuffle=True, seed=cfg.seed, epoch=epoch) if cfg.shuffle else {}
  for batch in data_lib.batches(train_ds, cfg.batch_size, **order,
                                drop_remainder=cfg.drop_remainder,
                                start=max(offset, 0), rows=local_rows):
    (run.state, run.bad), metrics = step_fn(
        (run.state, run.bad), shard_batch(batch, mesh, global_size=global_size))
    run.seen += 1
    step = run.step
    bar.update(1)
    saving = run.ckpt is not None and step % cfg.checkpoint_every == 0
    logging = step % cfg.log_every == 0 or step == total
    if saving or logging:
      run.stop_if_bad()
    if logging:
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['accuracy']:.3f}")
      run.emit("on_log", {"step": step, "epoch": epoch, **m,
                          "images_per_s": run.seen * cfg.batch_size / (time.time() - run.t0)})
    if saving:
      run.ckpt.save(run.state)
    check_interrupt()
  run.stop_if_bad()


def _evaluate_epoch(run: _Run, eval_ds, epoch: int, cfg: FitConfig, *, main: bool, bar) -> None:
  if eval_ds is None or not ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
    return
  ev = evaluate(run.state, eval_ds, across_processes=True)
  line = (f"epoch {epoch + 1}/{cfg.epochs}: eval accuracy {ev['accuracy']:.4f} "
          f"loss {ev['loss']:.4f} ({time.time() - run.t0:.0f}s)")
  if main:
    bar.write(line) if cfg.progress else print(line, flush=True)
  run.emit("on_eval", {"step": int(jax.device_get(run.state.step)), "epoch": epoch + 1,
                       "eval_accuracy": ev["accuracy"], "eval_loss": ev["loss"]})


def _stop_on_interrupt(run: _Run) -> TrainingInterrupted:
  """Saves what can be saved after an interrupt; the error that says where
  the run stopped and how to resume it."""
  done = int(jax.device_get(run.state.step))  # the last completed step
  saved = None
  if run.ckpt:
    try:
      run.ckpt.save(run.state)
      saved = run.ckpt.latest_step()
    except BaseException:  # a second Ctrl-C while saving: report what is on disk
      saved = run.ckpt.latest_step()
  return TrainingInterrupted(
      f"interrupted at step {done}; "
      + (f"the last checkpoint is step {saved}; rerun the same command to resume"
         if saved is not None else "no checkpoint was written (no workdir)"),
      done, saved)


def fit(state: TrainState, train_ds: data_lib.Dataset, *, train_step: Callable,
        config: FitConfig | None = None, eval_ds: data_lib.Dataset | None = None,
        callbacks=(), mesh: Mesh | None = None, **settings) -> tuple[TrainState, History]:
  """Trains ``state`` for ``config.epochs`` passes over ``train_ds``.

  Deterministic given the seed: epoch ``e`` visits the examples in the
  order ``epoch_permutation(n, seed, e)`` (with ``shuffle=False``: the data
  set's own order every epoch, as the fixed slices of Ross et al.'s code);
  the last partial batch is dropped unless ``drop_remainder=False``, which
  pads it and masks the padding out of the loss; and step ``t`` draws its
  randomness from ``fold_in(key, t)``. With a ``workdir``, checkpoints are
  written every ``checkpoint_every`` steps and at the end, metrics go to
  ``workdir/metrics.jsonl``, the run's identity to ``workdir/run.json``, and
  a rerun resumes from the newest checkpoint (ending with the same parameters
  as an uninterrupted run) after checking that it is the same run.

  Args:
    state: the training state (:func:`create_train_state`).
    train_ds: the training set (a :class:`~explicable_jax.data.Dataset`).
    train_step: ``step(state, batch) -> (state, metrics)``
      (:func:`make_train_step`).
    config: a :class:`FitConfig`; or give its fields as keywords
      (``epochs=2, batch_size=64``), which also override ``config``'s.
    eval_ds: evaluated every ``eval_every`` epochs and at the end.
    callbacks: :class:`Callback` s that see every log and evaluation record
      (on process 0 only; ``metrics.jsonl``'s writer is one of them).
    mesh: the device mesh (default: every local device on a ``"data"`` axis).

  Returns:
    ``(state, history)``: the trained state and the :class:`History` of
    what was logged.

  Raises:
    NonFiniteLossError: a step produced a NaN/inf loss or gradient; the last
      checkpoint is the last good state.
    TrainingInterrupted: Ctrl-C or SIGINT; the state was checkpointed.
    ResumeMismatchError: ``workdir`` holds a different run.

  Example:
    >>> import jax, optax
    >>> from explicable_jax import data, losses, models, training
    >>> ds = data.load("digits", "train")
    >>> clf = models.classifier(jax.random.key(0), "mlp", input_shape=ds.input_shape,
    ...                         num_classes=10)
    >>> opt = optax.adam(1e-2)
    >>> state, history = training.fit(
    ...     training.create_train_state(jax.random.key(1), clf, opt), ds,
    ...     train_step=training.make_train_step(losses.cross_entropy_loss, opt),
    ...     epochs=1, batch_size=64, progress=False)
    >>> int(state.step)
    21
  """
  from tqdm.auto import tqdm  # Host-side only.
  cfg = _fit_config(config, settings)
  _check_ignored_settings(cfg, eval_ds)
  _check_fit_args(state, train_ds, train_step, cfg, eval_ds)
  callbacks = _check_callbacks(callbacks)
  mesh = data_mesh() if mesh is None else mesh
  # Several processes: each gathers only the rows of every batch that its
  # devices hold (a bad batch size gets shard_batch's error instead).
  local_rows = global_size = None
  if jax.process_count() > 1 and cfg.batch_size % mesh.devices.size == 0:
    local_rows, global_size = process_rows(mesh, cfg.batch_size), cfg.batch_size
  steps_per_epoch = data_lib.num_batches(len(train_ds), cfg.batch_size, cfg.drop_remainder)
  total = steps_per_epoch * cfg.epochs
  main = jax.process_index() == 0
  state, ckpt, writer = _open_run(state, train_ds, train_step, cfg, main)
  callbacks = ([writer] if writer else []) + callbacks if main else []
  run = _Run(state, mesh, callbacks, History(), ckpt)
  if run.start > total and main:
    where = (f"workdir {str(cfg.workdir)!r} holds a run" if cfg.workdir is not None
             else "state is")
    warnings.warn(
        f"{where} already trained for {run.start / steps_per_epoch:g} epochs (step "
        f"{run.start}), more than epochs={cfg.epochs} asks for ({total} steps): nothing was "
        "trained, and the returned state is that longer run's. Choose an empty workdir (or a "
        f"fresh state) to train for {cfg.epochs} epochs.", UserWarning, stacklevel=_validation.user_stacklevel())
  step_fn = data_parallel(_guarded(train_step), mesh)
  for cb in callbacks:
    cb.on_train_begin(run.start)
  bar = tqdm(total=total, initial=run.start, disable=not (cfg.progress and main),
             unit="step", dynamic_ncols=True)
  interrupt = contextlib.ExitStack()
  try:
    stop_requested = interrupt.enter_context(_deferred_sigint())

    def check_interrupt():
      if stop_requested.is_set():
        raise KeyboardInterrupt
    for epoch in range(run.start // steps_per_epoch, cfg.epochs):
      _run_epoch(run, step_fn, train_ds, epoch, cfg, total=total,
                 steps_per_epoch=steps_per_epoch, mesh=mesh, local_rows=local_rows,
                 global_size=global_size, bar=bar, check_interrupt=check_interrupt)
      _evaluate_epoch(run, eval_ds, epoch, cfg, main=main, bar=bar)
      check_interrupt()
    if ckpt:
      ckpt.save(run.state)
  except KeyboardInterrupt as e:
    if isinstance(e, TrainingInterrupted):
      raise
    raise _stop_on_interrupt(run) from None
  finally:
    interrupt.close()
    bar.close()
    if ckpt:
      ckpt.close()
    last = int(jax.device_get(run.state.step))
    for cb in callbacks:
      cb.on_train_end(last)
  return run.state, run.history
