"""Second-order (gradient-Hessian) layer attribution of Wang and Vasconcelos."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax.attribution import _common
from explicable_jax.attribution.layer import BatchFn, _accepts_tuples, _setup

__all__ = [
    "SecondOrderTerms", "second_order_attribution",
]


class SecondOrderTerms(NamedTuple):
  """The two Taylor terms of :func:`second_order_attribution`, each ``(N, *positions)``."""
  first: jax.Array
  second: jax.Array


@conventions.boundary(x="batch")
@_accepts_tuples(tuple_layers=False)
def second_order_attribution(features_fn: BatchFn, head_fn: BatchFn, x: _common.InputsLike,
                             *, target: _common.Target, internal_batch_size: int | None = None,
                             return_terms: bool = False, per_channel: bool = False):
  """Second-order Taylor attribution of a class score to each position of a layer.

  Wang and Vasconcelos, "Deliberative Explanations: visualizing network
  insecurities" (NeurIPS 2019), equation 7: with ``a(i,j)`` the feature
  vector (all channels) at position ``(i, j)``, ``g(i,j)`` the gradient of the
  score ``F`` with respect to it and ``H(i,j)`` the Hessian block of ``F``
  with respect to it,

  .. math::

     m(i,j) = g(i,j)^\\top a(i,j) + \\tfrac12\\, a(i,j)^\\top H(i,j)\\, a(i,j).

  The quadratic term uses Hessian-vector products (forward-over-reverse,
  ``jax.linearize`` of the gradient, linearised once and applied to one
  tangent per position), never the Hessian itself: the tangent for position
  ``p`` is ``a`` masked to ``p``, so ``a(p)^T [H v_p](p) = a(p)^T H(p) a(p)``.
  All positions of the batch are one vmapped (chunked) call: ``H*W`` HVPs,
  each over the whole batch, since examples do not interact.

  Every axis between the batch and the last (channel) axis is a position
  axis; a flat ``(N, D)`` layer has one position, the whole vector.

  Args:
    features_fn, head_fn, x, target: as in
      :func:`explicable_jax.attribution.layer_conductance`.
    internal_batch_size: at most this many positions' HVPs at once (the
      chunks run one after another); ``None``: all at once. Memory: up to
      ``MAX_UNROLLED_CHUNKS`` (16) chunks are unrolled for speed on CPU, and
      XLA may keep every unrolled chunk's intermediates at once; with more
      chunks the loop is a ``lax.scan`` that holds one chunk. For a large
      layer (e.g. batch 32 at 14x14x512 with a VGG head) pick a size that
      gives more than 16 chunks.
    return_terms: return the first- and second-order terms separately
      (:class:`SecondOrderTerms`, the second without the factor 1/2).
    per_channel: keep the channel axis: channel ``c`` of position ``p``
      gets ``g_c a_c + 1/2 a_c [H(p) a(p)]_c``; summing over channels gives
      ``m``. (Wang and Vasconcelos clip such per-channel contributions of
      the difficulty score at zero before summing.)

  Returns:
    ``m`` of shape ``(N, *positions)``, e.g. ``(N, H, W)``, or
    ``(N, *positions, C)`` with ``per_channel``.
  """
  x, t, layer, activations = _setup(features_fn, head_fn, x, target)
  layer_shape = layer.shape
  if len(layer_shape) < 2:
    raise ValueError(
        "second_order_attribution needs activations with a batch and a channel "
        f"axis; features_fn returns shape {tuple(layer_shape)}.")
  positions = layer_shape[1:-1]
  num_positions = int(np.prod(positions)) if positions else 1
  chunk = _common.check_chunk(internal_batch_size, num_positions)

  a = activations()
  grad_fn = jax.grad(lambda h: _common.target_score(head_fn(h), t))
  g, hvp = jax.linearize(grad_fn, a)
  first = g * a if per_channel else (g * a).sum(axis=-1)

  flat_a = a.reshape(a.shape[0], num_positions, a.shape[-1])

  def quadratic_at(p):
    mask = jax.nn.one_hot(p, num_positions, dtype=a.dtype)[None, :, None]
    masked = (flat_a * mask).reshape(a.shape)
    hv = hvp(masked).reshape(flat_a.shape)
    per_c = (masked.reshape(flat_a.shape) * hv).sum(axis=1)  # (N, C): only p is nonzero
    return per_c if per_channel else per_c.sum(axis=-1)

  # Padding positions repeat the last one; their rows are dropped below.
  index = _common.pad_to_chunks(np.arange(num_positions), chunk)
  n_chunks = len(index)
  _, second = _common.scan_chunks(
      lambda carry, p: (carry, jax.vmap(quadratic_at)(p)), None, jnp.asarray(index))
  second = second.reshape(n_chunks * chunk, *second.shape[2:])[:num_positions]
  second = jnp.moveaxis(second, 0, 1).reshape(first.shape)
  if return_terms:
    return SecondOrderTerms(first, second)
  return first + 0.5 * second

