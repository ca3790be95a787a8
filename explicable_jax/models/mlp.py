"""Multi-layer perceptron with configurable widths."""
from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from explicable_jax import _validation
from explicable_jax.models.base import StagedModel, check_widths, he_normal

__all__ = [
    "MLP",
]


class MLP(StagedModel):
  """``Dense -> ReLU (-> Dropout)`` per hidden width, then a linear read-out.

  Inputs of any shape ``(batch, *dims)`` are flattened. Stages are named
  ``dense_0 .. dense_{k-1}`` (post-activation) and ``logits``.

  Args:
    in_features: size of one flattened input.
    hidden: widths of the hidden layers, e.g. ``(50, 30)`` (Ross et al.); an
      int is one layer (``8`` is ``(8,)``), ``()`` a linear model.
    num_classes: number of outputs.
    dropout_rate: dropout after each hidden layer (needs ``rngs`` with a
      ``dropout`` stream when training).
    init: ``"he"`` (default: He-normal kernels, zero biases, Flax's default
      read-out) or ``"normal"``: every kernel and bias drawn from
      :math:`N(0, sigma^2)` with ``sigma = init_stddev``, as Ross et
      al.'s ``init_random_params(0.1, ...)`` (dtak/rrr).
    init_stddev: ``sigma`` of ``init="normal"``.
    rngs: initialisation keys.
  """

  INITS = ("he", "normal")

  def __init__(self, in_features: int, hidden: Sequence[int] | int, num_classes: int,
               *, dropout_rate: float = 0.0, init: str = "he", init_stddev: float = 0.1,
               rngs: nnx.Rngs):
    _validation.check_choice("init", init, self.INITS)
    _validation.check_positive("init_stddev", init_stddev)
    hidden = check_widths("hidden", hidden)
    _validation.check_fraction("dropout_rate", dropout_rate)
    if dropout_rate == 1:
      raise ValueError(f"dropout_rate must be below 1 (1 drops every unit); got {dropout_rate!r}.")
    widths = [in_features, *hidden]
    self.in_features = in_features
    self.num_classes = num_classes
    if init == "normal":
      normal = nnx.initializers.normal(init_stddev)
      inits = {"kernel_init": normal, "bias_init": normal}
      out_inits = inits
    else:
      inits, out_inits = {"kernel_init": he_normal}, {}
    self.hidden_layers = nnx.List([
        nnx.Linear(a, b, rngs=rngs, **inits)
        for a, b in zip(widths[:-1], widths[1:])
    ])
    self.dropout = nnx.Dropout(dropout_rate) if dropout_rate > 0 else None
    self.out = nnx.Linear(widths[-1], num_classes, rngs=rngs, **out_inits)

  def stages(self):
    def flatten_dense(layer, first):
      def fn(x, rngs):
        if first:
          if x.ndim < 2 or x[0].size != self.in_features:
            raise ValueError(
                f"x must be a batch of inputs with {self.in_features} "
                f"features each; got shape {tuple(x.shape)}.")
          x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(layer(x))
        if self.dropout is not None:
          x = self.dropout(x, rngs=rngs)
        return x
      return fn

    stages = [(f"dense_{i}", flatten_dense(layer, i == 0))
              for i, layer in enumerate(self.hidden_layers)]

    def logits(x, rngs):
      if not stages:
        x = x.reshape(x.shape[0], -1)
      return self.out(x)
    return [*stages, ("logits", logits)]

