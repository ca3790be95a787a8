"""Training: pure jitted steps, data-parallel sharding, checkpoints, fit loop.

A package by job, from the bottom up:

* :mod:`~explicable_jax.training.state`: :class:`TrainState`, one pytree of
  everything a run updates (step, the classifier's params and state, the
  optimiser state, PRNG key data); the classifier's static part is its
  ``spec``.
* :mod:`~explicable_jax.training.step`: :func:`make_train_step` ``(loss_fn,
  optimizer) -> step(state, batch)``, one pure update. ``loss_fn(logits,
  batch, params)`` returns one loss per example (a loss that needs the network
  itself, such as an input-gradient penalty, declares a ``model_fn`` keyword
  and receives ``model_fn(x) -> logits``).
* :mod:`~explicable_jax.training.parallel`: :func:`data_parallel`, a step
  jitted over all devices with a ``"data"`` mesh.
* :mod:`~explicable_jax.training.checkpoint`: :class:`Checkpointer`, orbax
  checkpoints; :func:`fit` resumes a killed run from the newest one.
* :mod:`~explicable_jax.training.config`: :class:`TrainConfig`, optimisers
  and schedules by name.
* :mod:`~explicable_jax.training.resume`: what defines a run (``run.json``)
  and the check that a resume continues it.
* :mod:`~explicable_jax.training.callbacks`: the hooks :func:`fit` reports
  to, the metrics writers, :class:`History`.
* :mod:`~explicable_jax.training.loop`: :func:`fit` (:class:`FitConfig`), :func:`evaluate`,
  :func:`predict`; :mod:`~explicable_jax.training.run`: a run from a config
  (:func:`train_and_evaluate`) and model export.

(The package is called ``training`` rather than ``train`` so that the usual
``train = data.load(..., "train")`` in a user's script does not shadow it.)
"""
from explicable_jax.training.checkpoint import Checkpointer
from explicable_jax.training.config import (OPTIMIZERS, SCHEDULES, TrainConfig,
                                            make_optimizer, make_schedule)
from explicable_jax.training.callbacks import (Callback, History, JsonlLogger, MetricsWriter,
                                               TensorBoardWriter)
from explicable_jax.training.loop import (FitConfig, NonFiniteLossError, TrainingInterrupted,
                                          check_model_input, evaluate, fit, predict)
from explicable_jax.training.resume import ResumeMismatchError
from explicable_jax.training.parallel import (data_mesh, data_parallel,
                                              replicate, shard_batch)
from explicable_jax.training.run import (build, default_augment, load_model,
                                         save_model, train_and_evaluate)
from explicable_jax.training.state import TrainState, create_train_state
from explicable_jax.training.step import (COMPUTE_DTYPES, eval_batch, logits_batch,
                                          make_eval_step, make_train_step,
                                          to_float)

__all__ = [
    "TrainState", "create_train_state", "make_train_step", "COMPUTE_DTYPES", "make_eval_step",
    "eval_batch", "logits_batch", "to_float", "data_mesh", "data_parallel",
    "shard_batch", "replicate", "Checkpointer", "SCHEDULES", "OPTIMIZERS",
    "make_schedule", "make_optimizer", "TrainConfig", "NonFiniteLossError", "TrainingInterrupted",
    "JsonlLogger", "Callback", "MetricsWriter", "TensorBoardWriter", "History",
    "evaluate", "predict", "check_model_input", "fit", "FitConfig", "ResumeMismatchError",
    "default_augment", "build", "train_and_evaluate", "save_model", "load_model",
]
