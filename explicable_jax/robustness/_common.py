"""Private helpers shared by the attacks and the corruptions: argument
checks, clipping, the loss gradient and how a model crosses ``jax.jit``."""
from __future__ import annotations

import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import _validation
from explicable_jax import _class_index

__all__ = [
    "LogitsFn", "check_targets_differ",
]

LogitsFn = Callable[[jax.Array], jax.Array]


def _check_images(name: str, x) -> None:
  shape = tuple(np.shape(x))
  if len(shape) != 4:
    raise ValueError(f"{name} must be a batch of NHWC images (rank 4); got shape {shape}.")


def _check_labels(labels, n: int, logits_fn=None, x=None) -> None:
  """``labels`` must be ``(n,)``; with the model, also in ``[0, classes)``
  (checked when concrete; traced labels are the caller's to check)."""
  shape = tuple(np.shape(labels))
  if shape != (n,):
    raise ValueError(f"labels must have shape ({n},), one per image; got {shape}.")
  if logits_fn is None or isinstance(labels, jax.core.Tracer):
    return  # traced labels (inside jit/vmap) are the caller's to check
  from explicable_jax.models import Classifier
  if isinstance(logits_fn, Classifier):
    classes = logits_fn.num_classes  # static: no trace
  else:
    classes = int(jax.eval_shape(lambda v: logits_fn(v),
                                 jax.ShapeDtypeStruct(np.shape(x), jnp.float32)).shape[-1])
  _validation.check_labels("labels", labels, classes)


def check_targets_differ(attack: str, logits_fn, x, targets) -> None:
  """A targeted attack's ``labels`` are the classes to reach: when every one
  is already the model's prediction (true labels passed as targets, say),
  nothing is attacked and ``x`` would come back unchanged, so it is refused;
  when some are, a warning counts them. Concrete inputs only."""
  if isinstance(x, jax.core.Tracer) or isinstance(targets, jax.core.Tracer):
    return
  preds = np.asarray(jnp.argmax(logits_fn(jnp.asarray(x)), axis=-1))
  same = preds == np.asarray(targets)
  if same.all():
    raise ValueError(
        f"labels are {attack}'s target classes, and all {len(same)} already are the model's "
        "predictions, so nothing would be attacked (true labels passed as targets?): pass "
        "robustness.random_targets(key, labels, num_classes).")
  if same.any():
    warnings.warn(f"{attack}: {int(same.sum())} of {len(same)} targets already are the model's "
                  "predictions; those images come back unchanged.",
                  UserWarning, stacklevel=_validation.user_stacklevel())


def _check_clip(clip, x=None) -> tuple[float, float] | None:
  """``clip`` as ``(low, high)`` or ``None``: the valid input range, in the
  inputs' units. With a concrete batch ``x``, the range must contain it:
  clipping would otherwise move the clean inputs themselves (a model of
  another scale, ``input_range=None``, with the default ``(0, 1)``)."""
  if clip is None:
    return None
  try:
    lo, hi = (float(c) for c in clip)
  except (TypeError, ValueError):
    raise ValueError(f"clip must be None or a pair (low, high); got {clip!r}.") from None
  if not lo < hi:
    raise ValueError(f"clip must satisfy low < high; got {clip!r}.")
  concrete = x is not None and not isinstance(x, jax.core.Tracer) and np.size(x) > 0
  xlo, xhi = (float(np.min(x)), float(np.max(x))) if concrete else (0.0, 1.0)
  if lo >= 0 and 1.5 < hi <= 255 and xhi <= 1.5:
    # A pixel range (0, 255) on [0, 1] images clips nothing: the attack leaves
    # the valid range unnoticed. (A standardised range has a negative low.)
    raise ValueError(f"clip is the valid range in the images' units, [0, 1]; got {clip!r}, "
                     f"a range in 0..255 pixel units: pass (0.0, 1.0).")
  tol = 1e-4 * (hi - lo)
  if concrete and (xlo < lo - tol or xhi > hi + tol):
    raise ValueError(
        f"clip must contain the inputs (the valid range, in their units); got clip={clip!r} "
        f"for x ranging from {xlo:.4g} to {xhi:.4g}: clipping would move the clean inputs "
        "themselves. Pass the model's valid range, or clip=None for a model of another "
        "scale.")
  return lo, hi


def _clip(x, clip):
  return x if clip is None else jnp.clip(x, clip[0], clip[1])


def _loss_gradient(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array) -> jax.Array:
  """Gradient of each example's own cross-entropy with respect to its input.

  The sum over the batch has the per-example gradients as its gradient
  because examples do not interact in evaluation mode (no batch statistics).
  """
  def total(x):
    logits = logits_fn(x)
    return _class_index.valid(optax.softmax_cross_entropy_with_integer_labels(logits, labels),
                              labels, logits.shape[-1]).sum()
  return jax.grad(total)(x)



def _by_model(static_fn, classifier_fn, model):
  """The jitted attack for ``model``: a Classifier crosses ``jit`` as an
  argument (one compilation for any params, none kept alive in the cache);
  any other ``logits_fn`` is a static argument."""
  from explicable_jax.models import Classifier
  return classifier_fn if isinstance(model, Classifier) else static_fn


def _logits_and_jacobian(logits_fn, x: jax.Array):
  """``(logits, J)``: ``(N, C)`` scores and ``(N, C, *x.shape[1:])`` the
  input gradient of every class score of every example, from one forward
  pass and ``C`` VJPs of the batch (exact because examples do not interact
  in evaluation mode)."""
  logits, vjp = jax.vjp(logits_fn, x)
  eye = jnp.eye(logits.shape[-1], dtype=logits.dtype)
  cotangents = jnp.broadcast_to(eye[:, None, :], (logits.shape[-1], *logits.shape))
  jac = jax.vmap(lambda ct: vjp(ct)[0])(cotangents)
  return logits, jnp.moveaxis(jac, 0, 1)
