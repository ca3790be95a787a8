"""The training state: one pytree of everything a run updates."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from explicable_jax import _validation, conventions
from explicable_jax import models as models_lib
from explicable_jax.models import Classifier, Spec

__all__ = [
    "TrainState", "create_train_state",
]


@struct.dataclass
class TrainState:
  """Everything a training run updates, as one pytree.

  Attributes:
    step: number of updates applied so far.
    params: trainable weights (the classifier's ``params``).
    model_state: non-trainable model state, e.g. batch-norm statistics.
    opt_state: optimiser state.
    key_data: raw PRNG key data; step ``t`` draws from ``fold_in(key, t)``, so
      a resumed run draws the same numbers as an uninterrupted one.
    spec: the classifier's static part (backend, classes, split points).
  """
  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  key_data: jax.Array
  spec: Spec = struct.field(pytree_node=False)

  @property
  def key(self) -> jax.Array:
    return jax.random.wrap_key_data(self.key_data)

  @property
  def classifier(self) -> Classifier:
    """The model being trained, as a :class:`~explicable_jax.models.Classifier`."""
    return Classifier(self.params, self.model_state, self.spec)

  @property
  def num_classes(self) -> int:
    return self.classifier.num_classes

  @property
  def graphdef(self):
    """The NNX graphdef (NNX classifiers only)."""
    return self.spec.backend.graphdef

  def apply(self, x: jax.Array, *, train: bool = False,
            key: jax.Array | None = None):
    """``(logits, new_model_state)`` of the model held by this state."""
    return self.classifier.apply(x, train=train, key=key)

  def model(self):
    """A live copy of an NNX model (for interactive use, not inside ``jit``).

    Its arrays are copies, so it stays usable after ``fit`` donates this
    state's buffers."""
    params, model_state = jax.tree.map(jnp.copy, (self.params, self.model_state))
    return Classifier(params, model_state, self.spec).module()

  def checkpoint_tree(self) -> dict:
    """The arrays that a checkpoint holds (everything but ``spec``)."""
    return {"step": self.step, "params": self.params,
            "model_state": self.model_state, "opt_state": self.opt_state,
            "key_data": self.key_data}

  def with_checkpoint_tree(self, tree: Mapping) -> TrainState:
    return self.replace(**tree)


def check_optimizer(optimizer) -> None:
  """Raises ``TypeError`` unless ``optimizer`` is an optax transformation
  (``make_train_step`` and ``create_train_state`` both take one)."""
  if not isinstance(optimizer, optax.GradientTransformation):
    raise TypeError(f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)); "
                    f"got {type(optimizer).__name__}.")


@conventions.key_first
def create_train_state(key: jax.Array, model,
                       optimizer: optax.GradientTransformation) -> TrainState:
  """A fresh :class:`TrainState` for ``model`` (its current weights); step
  ``t`` of training draws its randomness from ``fold_in(key, t)``.

  ``model`` is a :class:`~explicable_jax.models.Classifier` or an
  ``nnx.Module`` (adapted with :func:`~explicable_jax.models.from_nnx`). The
  state holds copies of the model's arrays: the jitted step donates the
  state's buffers, and the model (or another state made from it) must stay
  usable."""
  key = _validation.check_key("key", key, call="create_train_state(key, model, optimizer)")
  clf = models_lib.as_classifier("model", model)
  check_optimizer(optimizer)
  params, model_state = jax.tree.map(jnp.copy, (clf.params, clf.state))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    model_state=model_state, opt_state=optimizer.init(params),
                    key_data=jax.random.key_data(key), spec=clf.spec)
