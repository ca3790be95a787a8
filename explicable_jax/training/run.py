"""A training run from a :class:`TrainConfig`: build, fit, evaluate, export."""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import jax

from explicable_jax import _paths, conventions
from explicable_jax import data as data_lib
from explicable_jax import losses as losses_lib
from explicable_jax import models as models_lib
from explicable_jax.training.config import TrainConfig, make_optimizer, make_schedule
from explicable_jax.training.loop import check_model_input, evaluate, fit
from explicable_jax.training.state import TrainState, create_train_state
from explicable_jax.training.step import make_train_step

__all__ = [
    "build", "default_augment", "load_model", "save_model", "train_and_evaluate",
]


def default_augment(config: TrainConfig, ds: data_lib.Dataset) -> Callable | None:
  """Crop-and-flip for 32x32 colour images under ``augment="auto"``.

  ``augment="crop_flip"`` is He et al.'s CIFAR recipe (zero-pad by 4 pixels,
  crop back, flip left-right): it is refused for inputs that are not images
  of at least 32x32 (on 8x8 digits a 4-pixel shift is half the image; flat
  features have no pixels to shift).
  """
  shape = tuple(ds.input_shape)
  if config.augment == "crop_flip" and (len(shape) != 3 or min(shape[:2]) < 32):
    raise ValueError(
        f"augment='crop_flip' (zero-pad by 4 pixels, crop back, flip) is meant for images of "
        f"at least 32x32; dataset {config.dataset!r} has inputs of shape {shape}. Use "
        "augment='none', or 'auto' (crop-and-flip for 32x32 colour images only).")
  if config.augment == "crop_flip" or (
      config.augment == "auto" and ds.input_shape[-1:] == (3,)
      and ds.input_shape[:2] == (32, 32)):
    return data_lib.augment_cifar
  return None


def _check_config(config) -> None:
  if not isinstance(config, TrainConfig):
    raise TypeError(f"config must be the run's TrainConfig (training.TrainConfig(dataset=..., "
                    f"...)); got {type(config).__name__}"
                    + (": TrainConfig(**d) builds one from a dict" if isinstance(config, dict)
                       else "") + ".")


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
  _check_config(config)
  config.validate()
  clf = models_lib.classifier(
      jax.random.key(config.seed), config.model, input_shape=train_ds.input_shape,
      num_classes=train_ds.num_classes, class_names=train_ds.class_names,
      **config.model_kwargs)
  if config.init_from:
    clf = _initial_weights(config, clf)
  check_model_input(clf, train_ds)
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
  loss_fn = losses_lib.make_loss(config.loss, **config.loss_kwargs)
  state = create_train_state(jax.random.fold_in(jax.random.key(config.seed), 1), clf, optimizer)
  step = make_train_step(loss_fn, optimizer,
                         augment=default_augment(config, train_ds),
                         compute_dtype=config.compute_dtype)
  return state, step


def _initial_weights(config: TrainConfig, clf: models_lib.Classifier):
  """The weights of ``config.init_from`` (fine-tuning) in ``clf``'s structure,
  checked against ``config``."""
  path = models_lib.model_folder(config.init_from, name="init_from")
  meta = models_lib.read_meta(path)
  want = (config.model, dict(config.model_kwargs))
  got = (meta.get("model"), dict(meta.get("model_kwargs", {})))
  if want != got:
    raise ValueError(
        f"init_from must hold the model being trained, {want[0]} {want[1]}; "
        f"{config.init_from!r} holds {got[0]} {got[1]}.")
  if (list(meta["input_shape"]) != list(clf.input_shape)
      or meta["num_classes"] != clf.num_classes):
    raise ValueError(
        f"init_from must match this dataset's input shape and classes; "
        f"{config.init_from!r} was trained with input_shape {meta['input_shape']} "
        f"and {meta['num_classes']} classes.")
  return models_lib.load(path, like=clf)


@conventions.boundary()
def train_and_evaluate(config: TrainConfig, workdir: str | None, *,
                       resume: bool | str = True, progress: bool = True) -> dict:
  """Trains as ``config`` says, evaluates, and exports the model to
  ``workdir/model``. Returns the final metrics (also in ``workdir/result.json``)."""
  _check_config(config)
  config.validate()
  if workdir:
    _paths.check_folder("workdir", workdir)
  train, val, test = _datasets(config)
  state, step = build(config, train)
  main = jax.process_index() == 0  # plain files have one writer in a multi-process run
  if workdir:
    workdir = _paths.resolve(workdir)  # local (made absolute) or gs://, s3://
    workdir.mkdir(parents=True, exist_ok=True)
  # What defines the run beyond what fit sees (it records and checks it on
  # resume); epochs may grow, and the cadence settings may change.
  run_info = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in ("epochs", "checkpoint_every", "keep_checkpoints", "log_every",
                           "data_dir")}
  t0 = time.time()
  run_folder = (dict(workdir=workdir, checkpoint_every=config.checkpoint_every,
                     keep_checkpoints=config.keep_checkpoints, resume=resume)
                if workdir is not None else {})
  state, _ = fit(state, train, train_step=step, epochs=config.epochs,
                 batch_size=config.batch_size, seed=config.seed, eval_ds=val,
                 log_every=config.log_every, progress=progress, run_info=run_info,
                 **run_folder)
  if workdir and main:  # After fit: a refused resume leaves the folder's record as it was.
    _paths.write_text(workdir / "config.json", json.dumps(dataclasses.asdict(config), indent=2))
  result = {"dataset": config.dataset, "model": config.model,
            "train_seconds": time.time() - t0,
            "train": evaluate(state, train, across_processes=True),
            "test": evaluate(state, test, across_processes=True),
            "num_params": models_lib.count_params(state.params),
            "note": train.note}
  if val is not None and config.validation == "paper":
    result["validation"] = evaluate(state, val, across_processes=True)
  if workdir:
    save_model(workdir / "model", state, config, train)
    if main:
      _paths.write_text(workdir / "result.json", json.dumps(result, indent=2))
  return result


def save_model(path: str, state: TrainState, config: TrainConfig,
               ds: data_lib.Dataset) -> None:
  """Exports the trained weights and model state (no optimiser state) with
  :func:`explicable_jax.models.save`, recording the dataset and step."""
  _check_config(config)
  if not isinstance(state, TrainState):
    raise TypeError(f"state must be the run's TrainState (fit's first result); got "
                    f"{type(state).__name__}" + (": a bare model is saved with models.save(path, "
                                                 "clf)" if hasattr(state, "logits") else "") + ".")
  data_lib.check_dataset("ds", ds)
  recipe = json.loads(state.classifier.spec.recipe) if state.classifier.spec.recipe else {}
  if recipe.get("model") not in (None, config.model):
    raise ValueError(
        f"config must be the TrainConfig of the run that trained state: config.model is "
        f"{config.model!r} but the state holds a {recipe['model']!r} model.")
  models_lib.save(path, state.classifier,
                  meta={"model": config.model, "model_kwargs": config.model_kwargs,
                        "dataset": ds.name,
                        "step": int(jax.device_get(state.step))})


def load_model(path: str):
  """``(model, meta)``: the live NNX module saved by :func:`save_model` (or
  :func:`explicable_jax.models.save`) and its ``model.json``. Use
  :func:`explicable_jax.models.load` for a Classifier."""
  clf = models_lib.load(path)
  return clf.module(), models_lib.read_meta(path)
