"""Properties of the maps alone: complexity (sparseness, entropy) and
localisation against a ground-truth mask (relevance mass and rank accuracy,
pointing game)."""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import _validation, conventions
from explicable_jax.attribution.evaluation import _shared

__all__ = [
    "pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy",
]


def _rows(name: str, attributions) -> jax.Array:
  a = jnp.asarray(attributions)
  if a.ndim < 2 or not jnp.issubdtype(a.dtype, jnp.floating):
    raise ValueError(f"{name} must be a float batch of maps (N, ...); got shape "
                     f"{tuple(a.shape)}, dtype {a.dtype}.")
  return a.reshape(a.shape[0], -1)


def _explain_nan(name: str, scores, why: str):
  """``scores`` as they are, with a warning naming the examples whose score
  is undefined (NaN) and why: an undefined score is never silent."""
  if isinstance(scores, jax.core.Tracer):
    return scores
  bad = np.flatnonzero(np.isnan(np.asarray(scores)))
  if bad.size:
    shown = ", ".join(map(str, bad[:10])) + (" ..." if bad.size > 10 else "")
    warnings.warn(f"{name}: {bad.size} of {np.size(scores)} examples ({shown}) have no "
                  f"defined score ({why}), returned as NaN: drop them (np.nanmean) or fix "
                  "their inputs.", UserWarning, stacklevel=_validation.user_stacklevel())
  return scores


@jax.jit
def _sparseness(attributions: ArrayLike) -> jax.Array:
  a = jnp.sort(jnp.abs(_rows("attributions", attributions)), axis=1)
  d = a.shape[1]
  k = jnp.arange(1, d + 1, dtype=a.dtype)
  return ((2 * k - d - 1) * a).sum(1) / (d * a.sum(1))


@conventions.boundary(attributions="maps")
def sparseness(attributions: ArrayLike) -> jax.Array:
  """Sparseness: the Gini index of the absolute attributions (Chalasani et
  al., ICML 2020; Hurley and Rickard, 2009).

  .. math::

     G(\\phi) = \\frac{\\sum_{k=1}^{D} (2k - D - 1)\\,|\\phi|_{(k)}}
                     {D \\sum_{k=1}^{D} |\\phi|_{(k)}}

  with ``|phi|_(k)`` sorted ascending: 0 for a constant map, ``1 - 1/D`` for
  a map with one non-zero entry; higher is sparser.

  Args:
    attributions: ``(N, ...)`` maps (pass pixel maps to count pixels).

  Returns:
    ``(N,)`` in ``[0, 1 - 1/D]``; NaN for an all-zero map, with a warning naming it.
  """
  return _explain_nan("sparseness", _sparseness(attributions), "an all-zero map")


@jax.jit
def _entropy(attributions: ArrayLike) -> jax.Array:
  a = jnp.abs(_rows("attributions", attributions))
  p = a / a.sum(1, keepdims=True)
  return -jax.scipy.special.xlogy(p, p).sum(1)


@conventions.boundary(attributions="maps")
def entropy(attributions: ArrayLike) -> jax.Array:
  """Complexity: the entropy of the attributions' shares of the total
  (Bhatt, Weller and Moura, IJCAI 2020).

  .. math::

     H(\\phi) = -\\sum_i p_i \\log p_i,\\quad p_i = |\\phi_i| / \\sum_j |\\phi_j|

  0 for one non-zero entry, ``log D`` for a constant map; lower is simpler.

  Args:
    attributions: ``(N, ...)`` maps.

  Returns:
    ``(N,)`` entropies in nats; NaN for an all-zero map, with a warning naming it.
  """
  return _explain_nan("entropy", _entropy(attributions), "an all-zero map")


def _with_mask(attributions, mask) -> tuple[jax.Array, jax.Array]:
  a = jnp.asarray(attributions)
  s = jnp.asarray(mask)
  if a.ndim < 2 or not jnp.issubdtype(a.dtype, jnp.floating):
    raise ValueError(f"attributions must be a float batch of maps (N, ...); got shape "
                     f"{tuple(a.shape)}, dtype {a.dtype}.")
  if s.dtype != jnp.bool_:
    raise ValueError(f"mask must be boolean (True on the ground truth); got dtype {s.dtype}.")
  if s.ndim > a.ndim and s.shape[:a.ndim] == a.shape:  # an input-shaped mask of pixel maps
    s = s.reshape(a.shape + (-1,)).any(-1)
  try:
    s = jnp.broadcast_to(s, a.shape)
  except ValueError:
    raise ValueError(f"mask must broadcast to the attributions' shape {tuple(a.shape)} (or "
                     f"have it as its leading axes); got shape {tuple(s.shape)}.") from None
  n = a.shape[0]
  return a.reshape(n, -1), s.reshape(n, -1)


_MASK_ARGS = """
  Args:
    attributions: ``(N, ...)`` maps; relevance is taken as given, so pass
      ``|phi|`` or ``relu(phi)`` for unsigned relevance.
    mask: boolean ground truth (``True`` inside), of the maps' shape,
      broadcastable to it (``(N, H, W, 1)`` for ``(N, H, W, C)`` maps), or
      with the maps' shape as its leading axes (an input-shaped mask of pixel
      maps: a pixel is inside when any of its channels is).
"""


@jax.jit
def _relevance_mass_accuracy(attributions: ArrayLike, mask: ArrayLike) -> jax.Array:
  a, s = _with_mask(attributions, mask)
  inside = jnp.where(s, a, 0).sum(1)
  return jnp.where(s.any(1), inside / a.sum(1), jnp.nan)


@conventions.boundary(attributions="maps", mask="mask")
def relevance_mass_accuracy(attributions: ArrayLike, mask: ArrayLike) -> jax.Array:
  """Relevance mass accuracy (Arras, Osman and Samek, Information Fusion 2022):
  the share of the relevance that lies inside the ground-truth mask.

  .. math:: \\mathrm{RMA} = \\sum_{i \\in GT} R_i \\Big/ \\sum_i R_i

  Returns:
    ``(N,)``; NaN where the mask is empty or the total relevance is 0, with a
    warning naming them.
  """
  if not isinstance(attributions, jax.core.Tracer) and bool(jnp.any(jnp.asarray(attributions) < 0)):
    warnings.warn(
        "relevance_mass_accuracy: the maps hold negative values, so the share can leave "
        "[0, 1] (a signed map's mass may sum to about 0); pass np.abs(maps) for Arras et "
        "al.'s share of the relevance.", UserWarning, stacklevel=_validation.user_stacklevel())
  return _explain_nan("relevance_mass_accuracy", _relevance_mass_accuracy(attributions, mask),
                      "an empty mask, or a map summing to 0")


@jax.jit
def _relevance_rank_accuracy(attributions: ArrayLike, mask: ArrayLike) -> jax.Array:
  a, s = _with_mask(attributions, mask)
  rank = jnp.argsort(jnp.argsort(-a, axis=1, stable=True), axis=1)
  k = s.sum(1, keepdims=True)
  hits = (s & (rank < k)).sum(1)
  return jnp.where(k[:, 0] > 0, hits / jnp.maximum(k[:, 0], 1), jnp.nan)


@conventions.boundary(attributions="maps", mask="mask")
def relevance_rank_accuracy(attributions: ArrayLike, mask: ArrayLike) -> jax.Array:
  """Relevance rank accuracy (Arras, Osman and Samek, Information Fusion 2022):
  of the ``K = |GT|`` most relevant entries, the fraction inside the mask.

  .. math:: \\mathrm{RRA} = |P_{\\mathrm{top}\\text{-}K} \\cap GT| \\,/\\, |GT|

  Ties are broken by index (as Quantus' ``argsort``).

  Returns:
    ``(N,)`` in ``[0, 1]``; NaN where the mask is empty, with a warning naming them.
  """
  return _explain_nan("relevance_rank_accuracy", _relevance_rank_accuracy(attributions, mask), "an empty mask")


@jax.jit
def _pointing_game(attributions: ArrayLike, mask: ArrayLike) -> jax.Array:
  a, s = _with_mask(attributions, mask)
  top = a == a.max(1, keepdims=True)
  return jnp.where(s.any(1), (top & s).any(1).astype(a.dtype), jnp.nan)


@conventions.boundary(attributions="maps", mask="mask")
def pointing_game(attributions: ArrayLike, mask: ArrayLike) -> jax.Array:
  """Pointing game (Zhang et al., ECCV 2016 / IJCV 2018): a hit when the
  map's maximum lies inside the ground-truth mask (any of tied maxima, as
  Quantus' ``PointingGame``).

  .. math:: \\mathrm{hit} = \\mathbb 1\\big[\\arg\\max_i R_i \\in GT\\big]

  Returns:
    ``(N,)`` of 1.0 (hit) or 0.0; NaN where the mask is empty, with a warning naming them.
    A constant map (all-zero, say) ties every pixel, so it hits any
    non-empty mask: counted as such, with a warning naming it.
  """
  _shared.warn_constant_maps("pointing_game", attributions, "every pixel is a maximum and "
                             "they hit any non-empty mask")
  return _explain_nan("pointing_game", _pointing_game(attributions, mask), "an empty mask")


for _f in (relevance_mass_accuracy, relevance_rank_accuracy, pointing_game):
  head, _, tail = _f.__doc__.partition("\n  Returns:")
  _f.__doc__ = head.rstrip() + "\n" + _MASK_ARGS + "\n  Returns:" + tail
del _f
