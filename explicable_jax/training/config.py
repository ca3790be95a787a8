"""Run configuration: optimisers, schedules and :class:`TrainConfig`."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np
import optax

from explicable_jax import _optax, _validation, conventions
from explicable_jax import data as data_lib
from explicable_jax import losses as losses_lib
from explicable_jax import models as models_lib
from explicable_jax.training.step import COMPUTE_DTYPES

__all__ = [
    "OPTIMIZERS", "SCHEDULES", "TrainConfig", "make_optimizer", "make_schedule",
]

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
  _validation.check_nonnegative("warmup_steps", warmup_steps, integer=True)
  if warmup_steps and name != "cosine":
    raise ValueError(
        f"warmup_steps is read only with schedule='cosine' (linear warm-up, then cosine "
        f"decay); got warmup_steps={warmup_steps} with schedule={name!r}, which ignores it: "
        "drop warmup_steps, or pass 'cosine'.")
  if name == "constant":
    schedule = optax.constant_schedule(learning_rate)
  elif name == "cosine":
    _validation.check_nonnegative("warmup_steps", warmup_steps, integer=True)
    if warmup_steps >= total_steps:
      raise ValueError(f"warmup_steps must be below total_steps={total_steps} (the cosine "
                       f"decay follows the warmup); got {warmup_steps}.")
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, min(warmup_steps, total_steps - 1), total_steps)
  elif name == "one_cycle":
    schedule = optax.cosine_onecycle_schedule(total_steps, learning_rate)
  else:
    schedule = optax.piecewise_constant_schedule(
        learning_rate, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1})
  return _optax.schedule(schedule)


def _check_momentum(momentum) -> None:
  """Momentum ``beta`` of ``v <- beta v + g`` must lie in ``[0, 1)``: at 1 the
  velocity never forgets, above 1 (or below 0) the updates diverge or flip."""
  _validation.check_concrete("momentum", momentum)
  ok = (isinstance(momentum, (int, float, np.integer, np.floating))
        and not isinstance(momentum, bool) and np.isfinite(momentum) and 0 <= momentum < 1)
  if not ok:
    raise ValueError(
        f"momentum must be a number in [0, 1) (0 for plain SGD; 0.9 is usual); got "
        f"{momentum!r}.")


def _check_sgd_only(optimizer: str, *, momentum, nesterov) -> None:
  """``momentum`` and ``nesterov`` are SGD's: with Adam they would be ignored
  (Adam's own first-moment decay, ``b1 = 0.9``, is fixed here), so a value
  other than the default is refused rather than dropped."""
  if optimizer == "sgd":
    return
  for name, value, default in (("momentum", momentum, 0.9), ("nesterov", nesterov, True)):
    if isinstance(value, bool) is isinstance(default, bool) and value == default:
      continue
    raise ValueError(
        f"{name} applies only to optimizer='sgd' (Adam's first-moment decay is fixed at "
        f"b1 = 0.9); got {name}={value!r} with optimizer={optimizer!r}. Leave {name} at its "
        f"default ({default!r}) or use optimizer='sgd'.")


@conventions.boundary()
def make_optimizer(name: str, schedule: optax.Schedule, *,
                   momentum: float = 0.9, nesterov: bool = True,
                   weight_decay: float = 0.0) -> optax.GradientTransformation:
  """``sgd`` (with coupled L2 weight decay, as torch's SGD), ``adam``, ``adamw``."""
  _validation.check_choice("optimizer", name, OPTIMIZERS)
  if not callable(schedule):
    _validation.check_positive("schedule", schedule)  # a constant learning rate
  _validation.check_nonnegative("weight_decay", weight_decay)
  _check_sgd_only(name, momentum=momentum, nesterov=nesterov)
  if name == "sgd":
    _check_momentum(momentum)
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=momentum or None,
                                 nesterov=nesterov and bool(momentum)))
  if name == "adam":
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.adam(schedule))
  return optax.adamw(schedule, weight_decay=weight_decay)



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
  compute_dtype: str = "float32"

  def __post_init__(self):
    self._check_settings()  # when built; validate() adds the files and rechecks changes

  def validate(self) -> None:
    """Checks every setting and that a weighted loss's matrix file exists."""
    self._check_settings()
    weights = self.loss_kwargs.get("weights") if self.loss == "weighted" else None
    if isinstance(weights, (str, os.PathLike)) and "://" not in os.fspath(weights) \
        and not os.path.isfile(weights):
      raise FileNotFoundError(
          f"loss_kwargs['weights'] (--loss weighted) must be a .npy similarity matrix; "
          f"{os.fspath(weights)!r} {'is a folder' if os.path.isdir(weights) else 'does not exist'}.")

  def _check_settings(self) -> None:
    _validation.lookup("dataset", self.dataset, data_lib.DATASETS)
    _validation.lookup("model", self.model, models_lib.MODELS)
    _validation.lookup("loss", self.loss, losses_lib.LOSSES)
    _validation.check_positive("epochs", self.epochs, integer=True)
    _validation.check_seed("seed", self.seed)
    _validation.check_positive("batch_size", self.batch_size, integer=True)
    _validation.check_positive("learning_rate", self.learning_rate)
    _check_momentum(self.momentum)
    _check_sgd_only(self.optimizer, momentum=self.momentum, nesterov=self.nesterov)
    conventions.check_flag("nesterov", self.nesterov)
    _validation.check_nonnegative("weight_decay", self.weight_decay)
    for name in ("model_kwargs", "loss_kwargs"):
      if not isinstance(getattr(self, name), Mapping):
        raise TypeError(f"{name} must be a dict of keyword arguments; got "
                        f"{type(getattr(self, name)).__name__} {getattr(self, name)!r}.")
    fixed = sorted({"input_shape", "num_classes"} & set(self.model_kwargs))
    if fixed:
      raise ValueError(f"model_kwargs may not set {', '.join(fixed)}: the dataset fixes "
                       f"{'it' if len(fixed) == 1 else 'them'} (dataset={self.dataset!r}).")
    _validation.check_positive("checkpoint_every", self.checkpoint_every, integer=True)
    _validation.check_positive("keep_checkpoints", self.keep_checkpoints, integer=True)
    _validation.check_positive("log_every", self.log_every, integer=True)
    _validation.check_nonnegative("warmup_epochs", self.warmup_epochs)
    if self.warmup_epochs and self.schedule != "cosine":
      raise ValueError(
          f"warmup_epochs is read only with schedule='cosine'; got warmup_epochs="
          f"{self.warmup_epochs} with schedule={self.schedule!r}, which ignores it.")
    if self.warmup_epochs >= self.epochs:
      raise ValueError(
          f"warmup_epochs must be less than epochs ({self.epochs}): the schedule would "
          f"never leave its warmup; got {self.warmup_epochs}.")
    _validation.check_choice("schedule", self.schedule, SCHEDULES)
    _validation.check_choice("optimizer", self.optimizer, OPTIMIZERS)
    _validation.check_choice("augment", self.augment, ("auto", "none", "crop_flip"))
    _validation.check_choice("validation", self.validation,
                             ("test", "paper", "none"))
    _validation.check_choice("compute_dtype", self.compute_dtype, COMPUTE_DTYPES)

