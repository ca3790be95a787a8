"""The library's conventions, written once, each with the one helper that checks it.

Every public function that takes one of these kinds of argument declares it
with :func:`boundary`; the declaration runs the kind's check (and its one
conversion) before the function's body, so a mistaken call gets the same clear
error from every entry point, and a function added tomorrow is covered by the
same test (``tests/test_conventions.py`` walks the public API).

=================  ===========================================================
kind               convention
=================  ===========================================================
``images``         a batch ``(N, H, W, C)``, channel last (NHWC); ``float`` in
                   ``[0, 1]``, or integers in ``0..255`` (``uint8`` usually),
                   converted to ``float32 / 255`` by :func:`to_unit_float`.
                   Float images in ``0..255`` are refused, not guessed.
``inputs``         what a classifier takes: an image batch as above, a batch
                   of feature vectors ``(N, D)`` (``float``; ``uint8`` pixels
                   are converted), or integer ids ``(N, T)`` (kept as they
                   are); for image-shaped inputs the images rules hold.
``batch``          what a user's plain function takes (the ``(features_fn,
                   head_fn)`` pair of the layer methods): numbers with a
                   leading batch axis, finite; dtype and scale as given.
                   When a classifier is among the arguments (a function
                   taking a Classifier or a ``logits_fn``), the batch is
                   that classifier's input and the ``inputs`` rules hold.
``labels``         integer class indices ``(N,)`` in ``[0, C)``; ``(N, 1)``,
                   one-hot ``(N, C)``, fractional or bool labels are refused.
``mask``           boolean, or numbers in ``{0, 1}`` (``0/255`` is refused).
``logits``         class scores ``(N, C)``: unnormalised (log-probabilities
                   are logits); a batch of probabilities (every row in
                   ``[0, 1]`` summing to 1) or one-hot rows is refused.
``class_scores``   ``(N, C)`` scores read only through their order (an
                   argmax): logits or probabilities.
``scores``         one score per example ``(N,)`` (detection scores, errors).
``perturbation``   a size in the images' units (``[0, 1]``): ``epsilon=8``
                   on ``[0, 1]`` images is refused (``8 / 255`` was meant);
                   noise stddevs too (``stdevs=25.5`` -> ``0.1``). Not
                   checked for a model adapted with ``input_range=None``.
``baseline``       a reference input in the images' units: a scalar in
                   ``[0, 1]`` (``255.`` is refused), or an array on the
                   inputs' scale, finite.
``maps``           attribution maps ``(N, ...)``: numbers, finite when
                   concrete; no scale rule, no conversion.
``number``         a finite real number (a threshold): NaN, inf, a bool
                   or a string is refused.
``probability``    a number in ``[0, 1]`` (a p-value, a level ``alpha``).
``flag``           a bool option (``absolute=True``): ``True``/``False``
                   (or 0/1); ``'no'`` is refused, not read as truthy.
=================  ===========================================================

Non-finite values: a concrete argument (outside ``jax.jit``) holding NaN or
inf raises ``ValueError`` naming the argument and the examples; under tracing
values are not checked (only shapes and dtypes) and the caller checks on the
host. The batched attribution methods add ``check_finite=False`` to opt out.

Every error is a :class:`ConventionError` (a ``ValueError``) whose message
names the argument, what was given and what was expected, with the fix.

One module, not a package (over 500 lines): it is the one place where the
conventions are written and checked (the house rule that makes every entry
point give the same error), and most of it is the table above and one short
check per kind.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _validation

__all__ = [
    "ConventionError", "KINDS", "boundary", "declared", "to_unit_float", "inputs_to_float",
    "check_images", "check_inputs", "check_model_inputs", "check_batch", "check_labels",
    "check_mask", "check_logits", "check_scores", "check_perturbation", "check_finite",
    "check_input_shape", "bool_parameters",
    "check_same_length", "check_flag", "check_baseline", "check_maps", "check_number",
    "check_probability", "check_model_output", "MODEL_FN_PARAMETERS", "classifier_of",
    "check_inputs_of", "image_scale_codes", "check_graphdef",
]

# A float image may stray this far outside [0, 1] (noise, an attack's
# overshoot before clipping, interpolation) and still be a [0, 1] image;
# beyond it, it is on another scale.
_UNIT_SLACK = 0.5
# A batch of [0, 1] images with noise has a mean of at least about 0; one
# whose mean is below minus this (with negative values) is centred data.
_CENTRED_MEAN = 0.05
# Signed values about 0 (an attribution map, centred data): a batch mean
# below this with more than this share of negative values among the non-zero
# ones (maps hold many zeros). Noise about real
# [0, 1] images keeps the batch's mean near the images' own (above 0.02).
_SIGNED_MEAN, _SIGNED_SHARE = 0.02, 0.25
# Images a user's perturbation returns (noise left unclipped, say) may stray
# further; beyond this they are on another scale (0..255).
_PERTURBED_SLACK = 4.0


class ConventionError(ValueError):
  """A public argument breaks one of the library's conventions."""


def _is_traced(x) -> bool:
  return isinstance(x, jax.core.Tracer)


def _describe(x) -> str:
  if hasattr(x, "shape") and hasattr(x, "dtype"):
    return f"shape {tuple(x.shape)}, dtype {x.dtype}"
  return type(x).__name__


def _as_array(name: str, x, what: str):
  """``x`` as a numpy array (concrete) or a jax array (traced)."""
  if _is_traced(x):
    return x
  if isinstance(x, (str, bytes, dict)) or x is None:
    raise ConventionError(f"{name} must be {what}; got {type(x).__name__}.")
  if type(x).__name__ == "Dataset" and hasattr(x, "x") and hasattr(x, "y"):
    raise ConventionError(
        f"{name} must be {what}; got a Dataset: pass ds.x (and ds.y where labels are "
        "taken).")
  try:
    arr = np.asarray(x)
  except Exception:
    raise ConventionError(f"{name} must be {what}; got {type(x).__name__}.") from None
  if arr.dtype != object and arr.dtype.kind == "V" and jnp.issubdtype(arr.dtype, jnp.floating):
    arr = arr.astype(np.float32)  # bfloat16 (ml_dtypes): numbers, read as float32
  if arr.dtype == object and arr.ndim == 0:  # an object, not an array (a model?)
    from explicable_jax.models.classifier import Classifier
    swapped = (" (the arguments swapped? a classifier goes in the model's place)"
               if isinstance(classifier_of(x) or x, Classifier) or callable(x) else "")
    raise ConventionError(f"{name} must be {what}; got {type(x).__name__}{swapped}.")
  if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
    raise ConventionError(f"{name} must be {what} of numbers; got {_describe(arr)}.")
  return arr


def _keep_kind(original, arr):
  """``arr`` as a jax array when ``original`` was one (results stay on device)."""
  if isinstance(original, jax.Array) and not isinstance(arr, jax.Array):
    return jnp.asarray(arr)
  return arr


def to_unit_float(x):
  """The one conversion of images to ``float32`` in ``[0, 1]``.

  .. math:: x \\mapsto x / 255 \\text{ for integer pixels}, \\quad x
     \\text{ unchanged for floats}

  Works on numpy and (traced) jax arrays. A concrete float batch off the
  ``[0, 1]`` scale (0..255 floats, standardised values) is refused, since
  nothing would convert it (see :func:`check_images` for the whole check);
  traced arrays are not checked.

  Args:
    x: images, integer pixels in ``0..255`` or floats in ``[0, 1]``.

  Returns:
    ``float32`` images in ``[0, 1]``.

  Example:
    >>> import numpy as np
    >>> to_unit_float(np.array([0, 51, 255], np.uint8)).tolist()
    [0.0, 0.20000000298023224, 1.0]
  """
  if not _is_traced(x):
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating):
      _unit_range("x", arr, strict=False)
    elif np.issubdtype(arr.dtype, np.integer):
      _pixels("x", arr)
  return _unit_float(x)


def _unit_float(x):
  """:func:`to_unit_float` without the check (for batches already checked,
  and features of any scale)."""
  xp = jnp if isinstance(x, jax.Array) else np
  x = xp.asarray(x)
  if xp.issubdtype(x.dtype, xp.integer) or x.dtype == bool:
    if x.dtype == bool:
      return x.astype(xp.float32)
    return x.astype(xp.float32) / xp.float32(255.0)
  if xp.issubdtype(x.dtype, xp.floating):
    return x if x.dtype == xp.float32 else x.astype(xp.float32)
  return x.astype(xp.float32)


def _integer_pixels(x) -> bool:
  """Whether an integer batch is pixels (image-shaped, or ``uint8``) rather
  than token ids or counts (the ``inputs`` rule)."""
  return x.dtype == np.uint8 or x.ndim >= 3


def inputs_to_float(x):
  """The one conversion of a classifier's input batch (the ``inputs`` rule):
  integer pixels (image-shaped integer batches, and ``uint8`` ones) become
  ``float32 / 255`` by :func:`to_unit_float`; integer ids ``(N, T)`` and
  floats are kept. Works on numpy and (traced) jax arrays; checks nothing.

  Example:
    >>> import numpy as np
    >>> inputs_to_float(np.full((1, 2, 2, 1), 255, np.int32)).max()
    np.float32(1.0)
    >>> inputs_to_float(np.array([[3, 700]])).tolist()
    [[3, 700]]
  """
  dtype = getattr(x, "dtype", None)
  if dtype is None or not (np.issubdtype(dtype, np.integer) and _integer_pixels(x)):
    return x
  return _unit_float(x)


def _nonfinite(name: str, arr) -> None:
  if _is_traced(arr) or not np.issubdtype(arr.dtype, np.inexact):
    return
  finite = np.isfinite(arr)
  if finite.all():
    return
  if arr.ndim >= 1:
    bad = np.flatnonzero(~finite.reshape(arr.shape[0], -1).all(axis=1))
    where = (f" in {bad.size} example(s), indices {', '.join(map(str, bad[:10]))}"
             f"{' ...' if bad.size > 10 else ''}")
  else:
    where = ""
  raise ConventionError(
      f"{name} holds NaN or inf{where}; the library refuses non-finite values "
      "outside jit: drop or repair those rows first.")


@_validation.named_check
def check_finite(name: str, x) -> None:
  """Raises :class:`ConventionError` when concrete ``x`` holds NaN or inf,
  naming the examples (first axis); tracers are not checked."""
  for i, leaf in enumerate(jax.tree.leaves(x)):
    if _is_traced(leaf):
      continue
    arr = np.asarray(leaf)
    _nonfinite(name if len(jax.tree.leaves(x)) == 1 else f"{name}[{i}]", arr)


_CHANNELS = (1, 2, 3, 4)


def _check_layout(name: str, shape: tuple[int, ...], expected: tuple[int, ...] | None) -> None:
  """NHWC: refuses a channel-first batch, and a shape other than ``expected``."""
  if expected is not None:
    if tuple(shape[1:]) != tuple(expected):
      hint = ""
      if (len(shape) == 4 and len(expected) == 3
          and (shape[2], shape[3], shape[1]) == tuple(expected)):
        hint = " It is channel-first (N, C, H, W): pass x.transpose(0, 2, 3, 1)."
      elif tuple(shape) == tuple(expected):
        hint = (" It is one example: add the batch axis, x[None]" + (
            f"; or input_shape holds a batch axis: build the model with input_shape="
            f"{tuple(expected[1:])}" if len(expected) == 4 else "") + ".")
      what = " (H, W, C)" if len(expected) == 3 else ""
      raise ConventionError(
          f"{name} must be a batch of examples of the shape the model was built for: it "
          f"expects{what} {tuple(expected)} (its input_shape); got a batch of shape "
          f"{tuple(shape)}.{hint}")
    return
  if len(shape) == 4 and shape[1] in _CHANNELS and shape[3] not in _CHANNELS:
    raise ConventionError(
        f"{name} must be channel-last (N, H, W, C); got shape {tuple(shape)}, which "
        "looks channel-first (N, C, H, W): pass x.transpose(0, 2, 3, 1).")


def _unit_range(name: str, arr, *, strict: bool) -> None:
  """Float images must be on the ``[0, 1]`` scale."""
  if _is_traced(arr) or arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
    return
  lo, hi = float(np.min(arr)), float(np.max(arr))
  slack = 1e-4 if strict else _UNIT_SLACK
  if lo >= -slack and hi <= 1 + slack:
    # The mean costs one more pass: read only when values are negative.
    mean = float(np.mean(arr)) if lo < 0 else 1.0
    # the share of negatives among the non-zero values (maps hold many zeros)
    negative = (float(np.sum(arr < 0)) / max(int(np.count_nonzero(arr)), 1)
                if mean < _SIGNED_MEAN else 0.0)
    signed = negative > _SIGNED_SHARE
    if mean >= -_CENTRED_MEAN and not signed:
      return
    # inside the slack, but centred on 0
    raise ConventionError(
        f"{name} must be float images in [0, 1] (or integer pixels in 0..255); got values "
        f"from {lo:.4g} to {hi:.4g} with mean {mean:.4g}"
        + (f" and {negative:.0%} of the non-zero ones negative" if signed else "")
        + ": it looks centred (x - 0.5, or x minus the mean) or like signed maps "
        "(attributions: the arguments swapped?), which noise about [0, 1] images does not "
        "make; pass the [0, 1] images and standardise inside the model "
        "(input_mean/input_std), or adapt a model of yours that takes this scale with "
        "input_range=None.")
  if lo >= 0 and hi <= 255:
    hint = ("it looks like 0..255 pixels stored as floats: pass x / 255, or the "
            "uint8 images themselves")
  else:
    hint = ("it looks standardised or on another scale: the library's models take "
            "[0, 1] images and standardise inside the model (input_mean/input_std); a "
            "model of yours that takes this scale is adapted with input_range=None")
  raise ConventionError(
      f"{name} must be float images in [0, 1] (or integer pixels in 0..255); got "
      f"values from {lo:.4g} to {hi:.4g}: {hint}.")


def image_scale_codes(x, *, unit: bool = True, perturbed: bool = False) -> jax.Array:
  """Per image of a batch ``(N, ...)``, traceable (for checks inside
  ``jit``): 0 for an image that keeps the images convention, 1 for one
  holding NaN or inf, 2 for one off the ``[0, 1]`` scale by more than the
  slack (0.5; 4 for ``perturbed`` images, where unclipped noise strays
  further). ``unit=False`` (a model on another scale) checks finiteness
  only."""
  flat = jnp.reshape(x, (x.shape[0], int(np.prod(x.shape[1:]))))  # 0 rows too
  slack = _PERTURBED_SLACK if perturbed else _UNIT_SLACK
  lo, hi = (-slack, 1.0 + slack) if unit else (-jnp.inf, jnp.inf)
  off = (flat.min(1) < lo) | (flat.max(1) > hi)
  if unit and not perturbed:  # centred images (x - 0.5), as _unit_range
    off = off | ((flat.min(1) < 0) & (flat.mean(1) < -_CENTRED_MEAN))
  return jnp.where(~jnp.isfinite(flat).all(1), 1, jnp.where(off, 2, 0))


def _pixels(name: str, arr) -> None:
  if _is_traced(arr) or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
    return
  lo, hi = int(np.min(arr)), int(np.max(arr))
  if lo < 0 or hi > 255:
    raise ConventionError(
        f"{name} holds integer pixels, which must lie in 0..255; got values from {lo} "
        f"to {hi}.")
  if hi == 1 and arr.size > 1:  # binarised (or all-ones) images, not 0..255 pixels
    warnings.warn(
        f"{name} holds integer pixels that are all 0 or 1: integer pixels are read on the "
        "0..255 scale (x / 255), so these are nearly black. Binary images go in as floats "
        f"({name}.astype(np.float32)) or as 0/255 pixels.", UserWarning, stacklevel=_validation.user_stacklevel())


@_validation.named_check
def check_images(name: str, x, *, input_shape: tuple[int, ...] | None = None,
                 strict_range: bool = True, convert: bool = True):
  """``x`` as ``float32`` images in ``[0, 1]``, NHWC, after the images checks.

  Refuses: anything but numbers; a rank other than 4 (``(N, H, W, C)``); a
  channel-first batch; integer pixels outside ``0..255``; float images off
  the ``[0, 1]`` scale (``0..255`` floats, standardised images); NaN or inf.

  Args:
    name: the argument's name, for the message.
    x: the images.
    input_shape: one example's shape, when a model fixes it.
    strict_range: ``False`` lets floats stray a little outside ``[0, 1]``
      (noisy or perturbed images before clipping).
    convert: ``False`` checks only and returns ``x`` as it is (a dataset
      keeps its compact ``uint8`` storage).

  Returns:
    ``float32`` images (numpy for numpy input, jax for jax input).

  Example:
    >>> import numpy as np
    >>> check_images("x", np.zeros((2, 8, 8, 3), np.uint8)).dtype
    dtype('float32')
  """
  arr = _as_array(name, x, "an image batch (N, H, W, C)")
  if arr.ndim != 4:
    raise ConventionError(
        f"{name} must be an image batch (N, H, W, C); got {_describe(arr)}"
        + (" (one image? add the batch axis: x[None])" if arr.ndim == 3 else "") + ".")
  _check_layout(name, arr.shape, input_shape)
  if arr.dtype == bool:
    raise ConventionError(f"{name} must be images (float or uint8); got {_describe(arr)}.")
  _pixels(name, arr)
  _nonfinite(name, arr)
  _unit_range(name, arr, strict=strict_range)
  if _is_traced(arr) and convert:
    return _off_scale_to_nan(_unit_float(arr))
  return _keep_kind(x, _unit_float(arr)) if convert else x


@_validation.named_check
def check_inputs(name: str, x, *, input_shape: tuple[int, ...] | None = None,
                 convert: bool = True, unit_range: bool = True):
  """``x`` as a classifier's input batch: images as :func:`check_images`
  (relaxed range), feature vectors ``(N, D)``, or integer ids.

  Integer inputs: image-shaped ones (rank >= 3) and ``uint8`` ones are
  pixels (``0..255``, divided by 255); other integer vectors ``(N, T)`` are
  token ids or counts and go to the model as they are (flattened pixels:
  pass ``uint8``). Float inputs of image shape (``(N, H, W, C)`` with ``C``
  in 1..4) must be on the ``[0, 1]`` scale; a channel-first batch, or one
  that does not match the model's ``input_shape``, is refused.

  Args:
    name: the argument's name, for the message.
    x: the batch (leading axis: examples).
    input_shape: one example's shape, when the model fixes it.
    convert: ``False`` checks only and returns ``x`` as it is.
    unit_range: ``False`` for a model declared to take another scale
      (``input_range=None`` in the adapters): no range check.

  Returns:
    The batch, ``float32`` (integer ids unchanged); numpy for numpy input,
    jax for jax input.
  """
  arr = _as_array(name, x, "a batch of inputs (leading axis: examples)")
  if arr.ndim < 1:
    raise ConventionError(
        f"{name} must be a batch (leading axis: examples); got a scalar.")
  if input_shape is not None and tuple(arr.shape[1:]) != tuple(input_shape):
    _check_layout(name, arr.shape, input_shape)
  if input_shape is None and arr.ndim == 4:
    _check_layout(name, arr.shape, None)
  ids = False
  if np.issubdtype(arr.dtype, np.integer):
    if not _integer_pixels(arr):
      ids = True
    else:
      _pixels(name, arr)
  elif arr.dtype != bool:
    _nonfinite(name, arr)
    if unit_range and arr.ndim == 4 and arr.shape[-1] in _CHANNELS:
      _unit_range(name, arr, strict=False)
      if _is_traced(arr) and convert:
        return _off_scale_to_nan(_unit_float(arr))
  if not convert or ids:
    return x if not convert else _keep_kind(x, arr)
  return _keep_kind(x, _unit_float(arr))


def _off_scale_to_nan(x):
  """Traced float images (inside ``jit``, where they cannot be refused): the
  rows far off the ``[0, 1]`` scale (beyond the perturbed-images slack, so
  0..255 floats, never noise) become NaN, in the value and its gradient, so
  the answer shows NaN instead of a plausible number (the twenty-third
  trial's integrated gradients of 0..255 images under ``jit``)."""
  return off_scale_rows_to_nan(x, x)


def off_scale_rows_to_nan(x, out):
  """``out`` (one row per image of ``x``) with NaN rows, value and gradient,
  where traced float images ``x`` lie far off the ``[0, 1]`` scale (see
  :func:`_off_scale_to_nan`); ``out`` as it is for anything else. The
  classifier applies it to its logits too: a max-pooling network can drop a
  NaN input on the way (XLA's max of NaN and a padding value)."""
  if not (_is_traced(x) and jnp.issubdtype(x.dtype, jnp.floating) and x.ndim == 4
          and x.shape[-1] in _CHANNELS):
    return out
  from explicable_jax import _class_index
  ok = image_scale_codes(x, perturbed=True) == 0
  return _class_index.poison(out, ok.reshape(ok.shape + (1,) * (jnp.ndim(out) - 1)))


@_validation.named_check
def check_model_inputs(name: str, x, model, *, convert: bool = True):
  """``x`` as the input batch of ``model`` (a Classifier, or anything with a
  ``classifier``): :func:`check_inputs` against the model's ``input_shape``
  and, unless the model was adapted with ``input_range=None``, the ``[0, 1]``
  scale of image-shaped floats. The check every public entry that takes a
  model's inputs shares (:func:`boundary` with ``x="inputs"``, the
  :class:`~explicable_jax.models.Classifier` methods, ``fit`` and
  ``evaluate`` on a data set's first examples). A Captum-style tuple of
  inputs is checked member by member; a mapping is left to the model.
  """
  if classifier_of(model) is None:
    raise TypeError(
        f"model must be a Classifier (or hold one: a training state, clf.logits); got "
        f"{type(model).__name__}" + (f" {model!r}" if isinstance(model, str) else "") + ".")
  _, input_shape, unit_range = _model_facts({"model": model})
  if isinstance(x, Mapping):
    check_finite(name, x)
    return x
  if isinstance(x, tuple):
    if input_shape is not None:  # the model takes one array of that shape
      raise ConventionError(
          f"{name} must be one batch of shape (N, {', '.join(map(str, input_shape))}) for this "
          f"model; got a tuple of {len(x)} (inputs and labels? pass the inputs alone).")
    return tuple(check_inputs(f"{name}[{i}]", v, unit_range=unit_range, convert=convert)
                 for i, v in enumerate(x))
  return check_inputs(name, x, input_shape=input_shape, unit_range=unit_range,
                      convert=convert)


@_validation.named_check
def check_inputs_of(name: str, model_fn, x):
  """``x`` under the ``inputs`` rules of the classifier behind ``model_fn``
  (a Classifier, one of its bound methods, or a training state; see
  :func:`classifier_of`): its shape and scale, integer pixels converted. A
  plain function's ``x`` is its own and is returned as given."""
  clf = classifier_of(model_fn)
  if clf is None or not hasattr(x, "shape"):
    return x
  return check_model_inputs(name, x, clf)


@_validation.named_check
def check_batch(name: str, x):
  """``x`` as a batch for a user's function: numbers (an array, or Captum's
  tuple of arrays) with a leading batch axis, finite when concrete; no
  conversion and no scale rule (the function defines its inputs)."""
  if isinstance(x, (tuple, list)):
    return _input_tuple(name, x)
  arr = _as_array(name, x, "a batch (leading axis: examples)")
  if arr.ndim < 1:
    raise ConventionError(f"{name} must be a batch (leading axis: examples); got a scalar.")
  _nonfinite(name, arr)
  return x if isinstance(x, jax.Array) or _is_traced(x) else arr


def _input_tuple(name: str, x):
  """Captum's tuple of inputs: a plain tuple (or list) of arrays that share
  the leading batch axis, each checked by :func:`_check_member`. A named
  tuple (a fitted statistic, say) is not a batch."""
  if hasattr(x, "_fields"):
    raise ConventionError(
        f"{name} must be a batch (an array, or a tuple of inputs); got a "
        f"{type(x).__name__}, a named result (the arguments swapped?).")
  members = tuple(_check_member(f"{name}[{i}]", v) for i, v in enumerate(x))
  lengths = {np.shape(m)[0] for m in members if np.ndim(m) >= 1}
  if len(lengths) > 1:
    raise ConventionError(
        f"{name} as a tuple of inputs must share the batch axis; got leading sizes "
        f"{[np.shape(m)[0] if np.ndim(m) else None for m in members]}.")
  return members


def _check_member(name: str, x):
  """One input of a tuple: finite numbers (a scalar is an extra argument)."""
  arr = _as_array(name, x, "an array of numbers")
  _nonfinite(name, arr)
  return x if isinstance(x, jax.Array) or _is_traced(x) else arr


@_validation.named_check
def check_labels(name: str, labels, num_classes: int | None = None, *,
                 n: int | None = None):
  """``labels`` as ``int32`` class indices ``(N,)`` in ``[0, num_classes)``.

  Refuses ``(N, 1)`` and one-hot ``(N, C)`` labels (with the fix), bool and
  fractional or non-finite values, values outside ``[0, num_classes)`` and,
  with ``n``, a length other than ``n``. Integral floats (``3.0``) are
  accepted. Tracers: only the shape is checked.

  Returns:
    ``int32`` labels (numpy for numpy input, jax for jax input).

  Example:
    >>> check_labels("labels", [0, 2, 1], num_classes=3).tolist()
    [0, 2, 1]
  """
  arr = _as_array(name, labels, "integer class indices (N,)")
  if arr.ndim == 2 and arr.shape[1] == 1:
    raise ConventionError(
        f"{name} must be class indices of shape (N,); got shape {tuple(arr.shape)}: "
        "pass labels.ravel().")
  if arr.ndim == 2:
    raise ConventionError(
        f"{name} must be class indices of shape (N,); got shape {tuple(arr.shape)}, "
        "which looks one-hot or soft: pass labels.argmax(-1) (hard labels).")
  if arr.ndim != 1:
    raise ConventionError(
        f"{name} must be class indices of shape (N,); got {_describe(arr)}.")
  if n is not None and arr.shape[0] != n:
    raise ConventionError(
        f"{name} must hold one label per example ({n}); got {arr.shape[0]}.")
  if arr.dtype == bool:
    raise ConventionError(f"{name} must be integer class indices; got dtype bool.")
  if _is_traced(arr):
    if not jnp.issubdtype(arr.dtype, jnp.integer):
      raise ConventionError(f"{name} must be integer class indices; got dtype {arr.dtype}.")
    return arr
  if np.issubdtype(arr.dtype, np.floating):
    if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
      raise ConventionError(
          f"{name} must be integer class indices; got {arr.dtype} values that are not "
          "whole numbers (NaN or fractional): soft labels belong elsewhere.")
  if num_classes is not None and arr.size:
    lo, hi = int(np.min(arr)), int(np.max(arr))
    if lo < 0 or hi >= num_classes:
      raise ConventionError(
          f"{name} must lie in [0, {num_classes}) for {num_classes} classes; got values "
          f"from {lo} to {hi}.")
  elif arr.size and int(np.min(arr)) < 0:
    raise ConventionError(
        f"{name} must be non-negative class indices; got a minimum of {int(np.min(arr))}.")
  return _keep_kind(labels, arr.astype(np.int32))


@_validation.named_check
def check_input_shape(name: str, shape, *, model=None) -> tuple[int, ...]:
  """One example's shape: positive ints; an image shape is channel-last
  ``(H, W, C)``, so ``(3, 32, 32)`` (``C`` first, ``C`` in 1..4 and the last
  axis not) is refused with the transposed shape to pass. With ``model`` (a
  classifier that declares its ``input_shape``), the shape must be that one."""
  try:
    out = tuple(int(d) for d in shape)
    ok = not isinstance(shape, str) and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape)
  except (TypeError, ValueError):
    out, ok = (), False
  if not ok or not out or any(d <= 0 for d in out):
    raise ConventionError(
        f"{name} must be one example's shape, positive ints such as (32, 32, 3) or (64,); "
        f"got {shape!r}.")
  if len(out) == 3 and out[0] in _CHANNELS and out[-1] not in _CHANNELS:
    raise ConventionError(
        f"{name} must be channel-last (H, W, C); got {out}, which looks channel-first "
        f"(C, H, W): pass {(out[1], out[2], out[0])}.")
  if len(out) == 4 and out[0] == 1:
    raise ConventionError(
        f"{name} is one example's shape, without the batch axis; got {out}: pass {out[1:]}.")
  declared_shape = getattr(classifier_of(model), "input_shape", None) if model is not None else None
  if declared_shape is not None and tuple(declared_shape) != out:
    raise ConventionError(
        f"{name} must be the model's input_shape {tuple(declared_shape)}; got {out}"
        + (" (a batch's shape? drop the batch axis)" if out[1:] == tuple(declared_shape)
           else "") + " -- or pass None to use the model's.")
  return out


@_validation.named_check
def check_mask(name: str, mask, *, shape: tuple[int, ...] | None = None):
  """``mask`` as a boolean array: bool, or numbers in ``{0, 1}``.

  Refuses ``0/255`` masks (pass ``mask > 0``), other values, NaN, and a shape
  other than ``shape`` (broadcasting is not guessed).

  Example:
    >>> check_mask("mask", [0, 1, 1]).tolist()
    [False, True, True]
  """
  arr = _as_array(name, mask, "a mask (bool or 0/1)")
  if shape is not None and tuple(arr.shape) != tuple(shape):
    raise ConventionError(
        f"{name} must have shape {tuple(shape)}; got {tuple(arr.shape)}.")
  if _is_traced(arr):
    return arr if arr.dtype == bool else arr != 0
  if arr.dtype != bool:
    values = np.unique(arr)
    if not np.all(np.isin(values, (0, 1))):
      shown = ", ".join(f"{v:g}" for v in values[:6]) + (" ..." if values.size > 6 else "")
      raise ConventionError(
          f"{name} must be boolean or hold only 0 and 1; got values {shown}"
          + (": pass mask > 0" if np.all(values >= 0) and np.all(np.isfinite(values)) else "")
          + ".")
  return _keep_kind(mask, arr.astype(bool))


def _probability_rows(arr) -> bool:
  """Whether a concrete ``(N, C)`` batch is almost surely probabilities: at
  least 2 rows and 2 classes, every entry in ``[0, 1]`` and every row summing
  to 1 (to ``1e-2``, so that a softmax mixed with a little uniform mass
  counts too, or the dtype's rounding over ``C`` terms). Logits of a real
  model practically never meet that on every row."""
  if _is_traced(arr) or arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
    return False
  if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
    return False
  if arr.min() < 0 or arr.max() > 1:
    return False
  tol = max(1e-2, 2 * np.sqrt(arr.shape[1]) * float(np.finfo(arr.dtype).eps))
  return bool(np.all(np.abs(arr.sum(axis=1, dtype=np.float64) - 1) <= tol))


@_validation.named_check
def check_logits(name: str, logits, *, num_classes: int | None = None,
                 probabilities: bool = False):
  """``logits`` as class scores ``(N, C)`` (float), finite when concrete.

  Refuses a concrete batch of probabilities (or one-hot rows): at least 2
  rows of at least 2 classes, every entry in ``[0, 1]``, every row summing
  to 1. The losses and scores take logits and apply the softmax themselves,
  so probabilities would be squashed a second time (a silently wrong
  number); ``log(p)`` is a valid logit. ``probabilities=True`` accepts them
  (the ``class_scores`` kind: functions that only take an argmax).

  Example:
    >>> check_logits("logits", [[2.0, -1.0], [0.5, 0.3]]).shape
    (2, 2)
  """
  arr = _as_array(name, logits, "class scores (N, C)")
  if arr.ndim != 2:
    hint = (" (one score per example is not a classifier's output; a binary model "
            "returns (N, 2))" if arr.ndim == 1 else "")
    raise ConventionError(
        f"{name} must be class scores of shape (N, C); got {_describe(arr)}{hint}.")
  if arr.shape[1] < 2:
    raise ConventionError(
        f"{name} must be class scores of shape (N, C) with C >= 2; got {_describe(arr)}, one "
        "score per example (a binary model returns both classes' logits, "
        "jnp.concatenate([jnp.zeros_like(z), z], -1) for a logit z of class 1).")
  if num_classes is not None and arr.shape[1] != num_classes:
    raise ConventionError(
        f"{name} must have {num_classes} columns (one per class); got shape "
        f"{tuple(arr.shape)}.")
  if not (np.issubdtype(arr.dtype, np.floating) or
          (_is_traced(arr) and jnp.issubdtype(arr.dtype, jnp.floating))):
    arr = arr.astype(np.float32)
  _nonfinite(name, arr)
  if not probabilities and _probability_rows(arr):
    onehot = bool(np.all((arr == 0) | (arr == 1)))
    raise ConventionError(
        f"{name} must hold logits (unnormalised class scores); got {arr.shape[0]} rows that "
        "all lie in [0, 1] and sum to 1, which are "
        + ("one-hot rows (labels?): pass the model's logits, and class indices as labels "
           "(labels.argmax(-1))" if onehot else
           "probabilities (a softmax output): pass the logits, or jnp.log(probabilities) "
           "(log-probabilities are logits); a model whose last layer is a softmax should "
           "drop it")
        + ".")
  if not probabilities and _unit_interval_rows(arr):
    warnings.warn(
        f"{name}: every one of the {arr.size} class scores lies in [0, 1]; logits of a "
        "real model practically never do. If these are sigmoid outputs (probabilities per "
        "class), pass their logits, jnp.log(p) - jnp.log1p(-p) (the losses and scores apply "
        "a softmax to what they are given).", UserWarning, stacklevel=_validation.user_stacklevel())
  return _keep_kind(logits, arr)


def _unit_interval_rows(arr) -> bool:
  """Whether a concrete ``(N, C)`` batch of at least 2 rows and 16 entries
  lies wholly in ``[0, 1]`` with some entries strictly inside (sigmoid
  outputs: per-class probabilities that do not sum to 1)."""
  if _is_traced(arr) or arr.ndim != 2 or arr.shape[0] < 2 or arr.size < 16:
    return False
  if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
    return False
  return bool(arr.min() >= 0 and arr.max() <= 1 and np.any((arr > 0) & (arr < 1)))


MODEL_FN_PARAMETERS = ("logits_fn", "model_fn")
"""Parameters that take a user's ``x -> logits`` function: at the boundary
its output on a few rows of the concrete batch beside it is checked as
logits (:func:`check_model_output`)."""


@_validation.named_check
def check_model_output(name: str, model, x, *, rows: int = 8) -> None:
  """The logits convention for what a model returns: ``model(x[:rows])``,
  on a concrete batch, must be ``(rows, C)`` logits, not probabilities or
  one-hot rows (refused by :func:`check_logits`). A classifier is not
  checked here (its adapter checked its output when it was built); a plain
  function is checked at every call (one forward pass on ``rows``
  examples). A function that fails on the rows, or returns something else
  than a ``(rows, C)`` array, is left to the call itself (its own error). Traced batches are not checked."""
  if (_is_traced(x) or not hasattr(x, "shape") or np.ndim(x) < 2 or len(x) < 2
      or classifier_of(model) is not None):
    return
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      out = model(x[:rows])
  except Exception:  # the call itself reports it
    return
  n = min(rows, len(x))
  if _is_traced(out) or not hasattr(out, "shape"):
    return
  if np.shape(out) in ((n,), (n, 1)):
    raise ConventionError(
        f"{name}(x) must return class scores (N, C) with C >= 2; it returns shape "
        f"{tuple(np.shape(out))} for {n} examples (one score per example: a binary "
        "model returns both classes' logits, jnp.stack([-z, z], -1) / 2 or "
        "jnp.stack([jnp.zeros_like(z), z], -1)).")
  if np.ndim(out) != 2 or np.shape(out)[0] != n:
    return
  out = np.asarray(out)
  if not np.isfinite(out).all():  # non-finite outputs are the caller's check (check_finite)
    return
  check_logits(f"{name}(x) (the model's output on x[:{rows}])", out)


def _probe_models(args_: dict, kinds: dict[str, str]) -> None:
  """:func:`check_model_output` for the model among a call's arguments (a
  ``logits_fn``/``model_fn``, or any classifier) on its declared batch."""
  from explicable_jax.models.classifier import Classifier
  batch = next((args_[p] for p, k in kinds.items() if k in ("images", "inputs", "batch")
                and args_.get(p) is not None and not isinstance(args_.get(p), (tuple, list))),
               None)
  if batch is None:
    return
  for param, value in args_.items():
    # A classifier's output was checked when it was adapted (the adapters
    # refuse a model ending in a softmax on their dummy batch).
    if param in MODEL_FN_PARAMETERS and callable(value) and not isinstance(value, Classifier):
      _validation.check_signature(param, value, 1, "x -> (N, C) logits of a batch (a "
                                  "function of params too? close over them: "
                                  "lambda x: f(params, x))")
      check_model_output(param, value, batch)
      return


@_validation.named_check
def check_scores(name: str, scores):
  """``scores`` as one float score per example ``(N,)``, finite when concrete."""
  arr = _as_array(name, scores, "one score per example (N,)")
  if arr.ndim != 1:
    raise ConventionError(
        f"{name} must hold one score per example, shape (N,); got {_describe(arr)}.")
  if arr.dtype == bool:
    raise ConventionError(f"{name} must be numeric scores; got dtype bool.")
  if arr.shape[0] == 0:
    raise ConventionError(f"{name} must hold at least one score; got an empty array.")
  if not _is_traced(arr) and not np.issubdtype(arr.dtype, np.floating):
    arr = arr.astype(np.float64)
  _nonfinite(name, arr)
  return _keep_kind(scores, arr)


@_validation.named_check
def check_perturbation(name: str, value, *, allow_zero: bool = True,
                       unit_scale: bool = True) -> float:
  """A perturbation size in the images' units: a finite number in ``[0, 1]``.

  ``epsilon=8`` on ``[0, 1]`` images would saturate every pixel; ``8 / 255``
  was meant, and the message says so. The same holds for noise stddevs
  (``stdevs=25.5`` -> ``0.1``). ``unit_scale=False`` (inputs of another
  scale) checks only that it is a finite, non-negative number.
  """
  if _is_traced(value):
    return value
  value = _python_scalar(value)
  ok = (isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool) and np.isfinite(value))
  if not ok or value < 0 or (value == 0 and not allow_zero):
    scalar = "" if ok or np.ndim(value) == 0 else (
        " (one number: a sequence or array of sizes is not a size)")
    raise ConventionError(
        f"{name} must be a {'non-negative' if allow_zero else 'positive'} number in the "
        f"images' units ([0, 1], e.g. 0.1); got {value!r}{scalar}.")
  if value > 1 and unit_scale:
    raise ConventionError(
        f"{name} is in the images' units, [0, 1] (e.g. 0.1); got {value!r}, which would "
        f"move every pixel across its whole range: on the 0..255 scale pass {value!r} / 255 "
        f"= {value / 255:.4g}.")
  return float(value)


@_validation.named_check
def check_baseline(name: str, value, *, image_scale: bool = True):
  """A reference input (integrated gradients' ``x'``) in the images' units.

  A scalar must lie in ``[0, 1]`` (``baselines=255.`` on ``[0, 1]`` images
  scales every attribution by 255); an array must be numbers, finite, and,
  when float, on the ``[0, 1]`` scale (with the images' slack). With
  ``image_scale=False`` (a model of another scale, or not images) only the
  finiteness is checked. Tuples (one baseline per input) are checked member
  by member; tracers are not checked.
  """
  if isinstance(value, tuple) or (isinstance(value, list) and value
                                  and not np.isscalar(value[0])):
    return type(value)(check_baseline(f"{name}[{i}]", v, image_scale=image_scale)
                       for i, v in enumerate(value))
  if _is_traced(value):
    return value
  arr = _as_array(name, value, "a baseline (a number or an array of the inputs' shape)")
  _nonfinite(name, arr)
  if image_scale and arr.ndim >= 1 and np.issubdtype(arr.dtype, np.integer):
    _pixels(name, arr)  # integer pixels, as the images convert: x / 255
    return _keep_kind(value, _unit_float(arr))
  if not image_scale or arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
    return value
  lo, hi = float(np.min(arr)), float(np.max(arr))
  slack = 0.0 if arr.ndim == 0 else _UNIT_SLACK
  if lo < -slack or hi > 1 + slack:
    what = f"{lo:g}" if arr.ndim == 0 else f"values from {lo:.4g} to {hi:.4g}"
    fix = (f": on the 0..255 scale pass {hi:g} / 255 = {hi / 255:.4g}" if 1 < hi <= 255
           and lo >= 0 else "")
    raise ConventionError(
        f"{name} must be in the images' units, [0, 1] (e.g. 0 for black); got {what}"
        f"{fix}.")
  return value


def _list_of_arrays(value) -> bool:
  """A list whose members are arrays (maps per input or per example), not
  nested lists of numbers (one array-like)."""
  return isinstance(value, list) and bool(value) and hasattr(value[0], "shape")


def _one_map_array(name: str, maps) -> None:
  """Refuses a tuple (or list) of map arrays where one array ``(N, ...)`` is
  scored per example: stacked, its members became the rows (the twentieth
  trial's ``sparseness((a, b))`` scored 2 "examples" of a batch of 5)."""
  if hasattr(maps, "_fields"):
    check_maps(name, maps)  # names the named result
  if isinstance(maps, tuple) or _list_of_arrays(maps):
    what = f"a {type(maps).__name__} of {len(maps)} arrays"
    raise ConventionError(
        f"{name} must be one array of maps (N, ...), one map per example; got {what}. A "
        "tuple of maps (one per input, Captum's form) is scored by the metrics that take "
        "the inputs too; here, score each input's maps on its own, or join them per example "
        "(np.concatenate([m.reshape(len(m), -1) for m in maps], axis=1)); a list of "
        "per-example maps is np.stack(maps).")


@_validation.named_check
def check_maps(name: str, maps):
  """Attribution maps ``(N, ...)``: numbers with a batch axis, finite when
  concrete (a NaN map gives a NaN score, not an error, otherwise); returned
  as given (Captum's tuple of maps: each member checked)."""
  if hasattr(maps, "_fields"):  # a named result (a Curve, a fit), not maps
    raise ConventionError(
        f"{name} must be attribution maps (N, ...); got a {type(maps).__name__}, a named "
        "result (the arguments swapped, or another function's output?).")
  if isinstance(maps, tuple) or _list_of_arrays(maps):
    return type(maps)(check_maps(f"{name}[{i}]", m) for i, m in enumerate(maps))
  arr = _as_array(name, maps, "attribution maps (N, ...)")
  if arr.ndim < 1:
    raise ConventionError(f"{name} must be attribution maps (N, ...); got a scalar.")
  if arr.ndim == 3 and arr.shape[0] == arr.shape[1] >= 4 and arr.shape[2] in (1, 3):
    warnings.warn(  # N maps of shape (N, 1) or (N, 3): a shape no model's maps have
        f"{name} of shape {arr.shape} are read as {arr.shape[0]} maps of shape "
        f"{arr.shape[1:]}; one (H, W, C) map without its batch axis? pass {name}[None].",
        UserWarning, stacklevel=_validation.user_stacklevel())
  _nonfinite(name, arr)
  return maps


def _python_scalar(value):
  """A 0-d numeric array as its Python number (``np.float32(0.1)``,
  ``jnp.array(8)``); anything else as given."""
  if (isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0
      and np.issubdtype(value.dtype, np.number)):
    return value.item()
  return value


@_validation.named_check
def check_number(name: str, value) -> float:
  """A finite real number (a threshold, say): refuses NaN, inf, bools,
  strings and arrays of more than one value; tracers pass unchecked."""
  if _is_traced(value):
    return value
  value = _python_scalar(value)
  ok = (isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_)))
  if not ok or not np.isfinite(value):
    raise ConventionError(f"{name} must be a finite number; got {value!r}.")
  return float(value)


@_validation.named_check
def check_probability(name: str, value) -> float:
  """A probability (a p-value, a significance level): a number in ``[0, 1]``."""
  value = check_number(name, value)
  if not _is_traced(value) and not 0 <= value <= 1:
    raise ConventionError(
        f"{name} must be a probability in [0, 1]; got {value!r}"
        + (" (a percentage? divide by 100)" if 1 < value <= 100 else "") + ".")
  return value


@_validation.named_check
def check_flag(name: str, value) -> bool:
  """A bool option: ``True``/``False`` (``numpy`` bools, and the ints 0 and
  1, are accepted); a string such as ``'no'`` (truthy!) is refused."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)) and value in (0, 1):
    return bool(value)
  raise ConventionError(
      f"{name} must be True or False; got {value!r} ({type(value).__name__}).")


def check_same_length(names_and_lengths: dict[str, int]) -> None:
  """Raises unless every named batch has the same number of examples."""
  lengths = {k: v for k, v in names_and_lengths.items() if v is not None}
  if len(set(lengths.values())) > 1:
    shown = ", ".join(f"{k} has {v}" for k, v in lengths.items())
    raise ConventionError(f"the batches must have one row per example; {shown}.")


# ---------------------------------------------------------------------------
# Declarations at the boundary.

KINDS = ("images", "inputs", "batch", "labels", "mask", "logits", "class_scores", "scores",
         "perturbation", "baseline", "maps", "flag", "number", "probability", "graphdef")


def classifier_of(value):
  """The :class:`~explicable_jax.models.Classifier` behind ``value``: the
  classifier itself, one of its bound methods (``clf.logits``), or an object
  holding one (a training state's ``classifier``); else ``None``."""
  from explicable_jax.models.classifier import Classifier
  for v in (value, getattr(value, "__self__", None), getattr(value, "classifier", None)):
    if isinstance(v, Classifier):
      return v
  return None


def _model_facts(bound: dict):
  """``(num_classes, input_shape, unit_range)`` known without tracing, from
  the first classifier among the arguments (or a ``num_classes`` argument)."""
  from explicable_jax.models.classifier import Classifier
  n = bound.get("num_classes")
  if n is not None and not _is_traced(n):  # before the labels it bounds are read
    return _validation.check_num_classes("num_classes", n), None, True
  for value in bound.values():
    clf = classifier_of(value)
    if isinstance(clf, Classifier):
      n = clf.spec.num_classes
      if n is None and clf.spec.class_names is not None:
        n = len(clf.spec.class_names)
      return n, clf.spec.input_shape, getattr(clf.spec, "input_range", (0.0, 1.0)) is not None
  return None, None, True


def _batch_shape(bound: dict, kinds: dict[str, str]) -> tuple[int, ...] | None:
  """The per-example shape of the first declared input batch (``images``,
  ``inputs`` or ``batch``) given as one array, or ``None``: without a model's
  ``input_shape``, a perturbation size or a baseline follows the images' scale
  rule only when the batch beside it is images (``(N, H, W, C)``), not flat
  feature vectors."""
  for param, kind in kinds.items():
    value = bound.get(param)
    if kind in ("images", "inputs", "batch") and isinstance(value, tuple):
      return ()  # Captum's tuple of inputs: no one image scale to hold sizes to
    if kind in ("images", "inputs", "batch") and value is not None \
        and not isinstance(value, (tuple, list, str)) and np.ndim(value) >= 2:
      return tuple(int(d) for d in np.shape(value)[1:])
  return None


def _classifier_among(bound: dict) -> bool:
  """Whether a classifier (or a training state holding one) is an argument."""
  return any(classifier_of(v) is not None for v in bound.values())


def _length(value) -> int | None:
  shape = getattr(value, "shape", None)
  return int(shape[0]) if shape else None


@_validation.named_check
def check_graphdef(name: str, graphdef):
  """The first of an NNX model's parts, ``(graphdef, params, model_state) =
  models.split_model(module)``; a Classifier or a live module is refused
  with the call that takes it."""
  from flax import nnx

  from explicable_jax.models.classifier import Classifier
  if isinstance(graphdef, nnx.graph.GraphDef):
    return graphdef
  if isinstance(classifier_of(graphdef) or graphdef, Classifier):
    hint = (" a Classifier holds its parts: use its methods (clf.apply, clf.split(layer), "
            "clf.logits)")
  elif isinstance(graphdef, nnx.Module):
    hint = " a live module: split it first, models.split_model(module)"
  elif isinstance(graphdef, nnx.State):
    hint = (" parameters or model state: the parts go in the order split_model returns, "
            "(graphdef, params, model_state, ...)")
  else:
    hint = ""
  raise ConventionError(
      f"{name} must be an NNX GraphDef, the first of (graphdef, params, model_state) = "
      f"models.split_model(module); got {type(graphdef).__name__}" + (f":{hint}." if hint
                                                                    else "."))


def _check_one(param: str, kind: str, value, num_classes, input_shape, unit_range=True):
  """One argument through its kind's check."""
  if kind == "images":
    if not unit_range:  # a model adapted with input_range=None takes its own scale
      return check_inputs(param, value, input_shape=input_shape, unit_range=False)
    return check_images(param, value, input_shape=input_shape)
  if kind == "inputs":
    if isinstance(value, tuple) and input_shape is not None:  # the model takes one array
      raise ConventionError(
          f"{param} must be one batch of shape (N, {', '.join(map(str, input_shape))}) for "
          f"this model; got a tuple of {len(value)} (inputs and labels? pass the inputs "
          "alone).")
    if isinstance(value, tuple):  # Captum's tuple of inputs: each checked.
      _input_tuple(param, value)
      return tuple(check_inputs(f"{param}[{i}]", v, unit_range=unit_range)
                   for i, v in enumerate(value))
    return check_inputs(param, value, input_shape=input_shape, unit_range=unit_range)
  if kind == "batch":
    return check_batch(param, value)
  if kind == "labels":
    if isinstance(value, str) or (np.ndim(value) == 0 and not _is_traced(value)):
      return value  # target="predicted", or one class for every example
    return check_labels(param, value, num_classes)
  if kind == "mask":
    return check_mask(param, value)
  if kind in ("logits", "class_scores"):
    return check_logits(param, value, probabilities=kind == "class_scores")
  if kind == "scores":
    return check_scores(param, value)
  if kind == "maps":
    return check_maps(param, value)
  if kind == "flag":
    return check_flag(param, value)
  if kind == "number":
    return check_number(param, value)
  if kind == "probability":
    return check_probability(param, value)
  if kind == "graphdef":
    return check_graphdef(param, value)
  image_scale = unit_range and (input_shape is None or (
      len(input_shape) == 3 and input_shape[-1] in _CHANNELS))
  if kind == "baseline":
    return check_baseline(param, value, image_scale=image_scale)
  if not image_scale:  # another scale, or not images: only a non-negative number
    return check_perturbation(param, value, unit_scale=False)
  return check_perturbation(param, value)


def bool_parameters(fn: Callable) -> list[str]:
  """The parameters of ``fn`` that are bool options: annotated ``bool`` (a
  string under postponed annotations) with a bool default. A parameter that
  also takes other values (``resume: bool | str``) is not one."""
  try:
    params = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return []
  return [name for name, p in params.items()
          if isinstance(p.default, bool) and p.annotation in (bool, "bool")]


def boundary(**kinds: str) -> Callable[[Callable], Callable]:
  """Declares which arguments of a public function follow which convention.

  The wrapper binds the call, runs each declared argument (when given, not
  ``None``) through its kind's check, passes the converted value on, and
  checks that the declared batches have one row per example. Labels are
  checked against the number of classes, and inputs against the input shape,
  of the first classifier among the arguments (when known without tracing).
  Every parameter annotated ``bool`` (with a bool default) is a ``flag``
  without being named: ``absolute='no'`` is refused, not read as true.

  Args:
    **kinds: ``parameter=kind`` with kind one of :data:`KINDS`, or
      ``kind + "{}"`` for a mapping ``name -> value of that kind`` (a table of
      scores by method, say).

  Example:
    >>> @boundary(x="images")
    ... def brightest(x):
    ...   return x.max()
    >>> import numpy as np
    >>> float(brightest(np.full((1, 2, 2, 3), 255, np.uint8)))
    1.0
  """
  for param, kind in kinds.items():
    if kind.removesuffix("{}") not in KINDS:
      raise ValueError(f"kind of {param!r} must be one of {', '.join(KINDS)} (a mapping "
                       f"name -> that kind with a '{{}}' suffix); got {kind!r}.")

  def decorate(fn: Callable) -> Callable:
    sig = inspect.signature(fn)
    missing = set(kinds) - set(sig.parameters)
    if missing:
      raise TypeError(f"{fn.__qualname__} has no parameter(s) {sorted(missing)}.")
    kinds.update({p: "flag" for p in bool_parameters(fn) if p not in kinds})
    swap_check = _swap_parameters(sig, fn)  # read once, not per call
    key_first = next(iter(sig.parameters), None) == "key"
    # Captum's tuple of maps (one per input) is matched to a tuple of inputs;
    # a function without inputs scores one array of maps per example.
    map_tuples = any(k.removesuffix("{}") in ("images", "inputs", "batch")
                     for k in kinds.values())

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
      try:
        bound = sig.bind(*args, **kwargs)
      except TypeError as e:
        _key_left_out(fn.__name__, sig, args, e)
        if "graphdef" in sig.parameters and args:  # a Classifier passed as the parts
          check_graphdef("graphdef", args[0])
        if ("features_fn" in sig.parameters and args and classifier_of(args[0]) is not None
            and "layer" in kwargs):
          raise TypeError(
              f"{fn.__name__}(features_fn, head_fn, x, ...) takes the model split at the "
              f"layer: {fn.__name__}(*clf.split(layer), x, ...), or "
              f"attribution.batched.{fn.__name__}(clf, x, layer=..., target=...) for a "
              "classifier.") from None
        if "target" in kwargs and "score_fn" in sig.parameters and "target" not in sig.parameters:
          raise TypeError(
              f"{fn.__name__}(score_fn, x) is the one-example form and takes no target: "
              f"score_fn = attribution.class_score_fn(clf.logits, target) picks the class; "
              f"for a batch with targets use attribution.batched.{fn.__name__}(clf, x, "
              "target=...).") from None
        return fn(*args, **kwargs)  # Python's own message for a wrong call.
      args_ = bound.arguments
      if key_first and args_.get("key") is not None:
        # before the other checks: a key left out shifts every argument, and
        # the first one checked would be blamed (the twenty-third trial)
        _validation.check_key("key", args_["key"], call=f"{fn.__name__}(key, ...)")
      if swap_check is not None:
        _check_functions(*swap_check, args_)
      num_classes, input_shape, unit_range = _model_facts(args_)
      # Without a model's shape, sizes and baselines follow the declared batch's.
      scale_shape = input_shape if input_shape is not None else _batch_shape(args_, kinds)
      # A "batch" beside a classifier is that classifier's input.
      model_inputs = _classifier_among(args_)
      if num_classes is None:  # Labels beside logits: the logits' width is the class count.
        for param, kind in kinds.items():
          width = np.shape(args_.get(param)) if kind in ("logits", "class_scores") else ()
          if len(width) == 2:
            num_classes = int(width[1])
      lengths, absent = {}, []
      for param, kind in kinds.items():
        value = args_.get(param)
        if value is None:
          declared_param = sig.parameters[param]
          if (declared_param.default is inspect.Parameter.empty
              and "None" not in str(declared_param.annotation)):  # not "X | None"
            absent.append((param, kind))  # refused after the given values' checks
          continue
        if model_inputs and kind.removesuffix("{}") == "batch":
          kind = kind.replace("batch", "inputs")
        if kind == "maps" and not map_tuples:
          _one_map_array(param, value)
        if kind.endswith("{}"):
          if not isinstance(value, Mapping) or not value:
            raise ConventionError(
                f"{param} must be a non-empty mapping of name to {kind[:-2]}; got "
                f"{type(value).__name__}{' (empty)' if isinstance(value, Mapping) else ''}.")
          value = {k: _check_one(f"{param}[{k!r}]", kind[:-2], v, num_classes, input_shape,
                                 unit_range) for k, v in value.items()}
        else:
          shape = scale_shape if kind in ("perturbation", "baseline") else input_shape
          value = _check_one(param, kind, value, num_classes, shape, unit_range)
        args_[param] = value
        if kind in ("images", "inputs", "batch", "labels", "logits", "class_scores", "scores",
                    "maps") and not isinstance(value, (tuple, list)):
          lengths[param] = _length(value)
        elif kind == "mask" and np.ndim(value) == 1:  # One flag per example.
          lengths[param] = _length(value)
      if absent:  # a required argument given as None: no value to check or use
        param, kind = absent[0]
        raise ConventionError(
            f"{param} must be given ({kind.removesuffix('{}')}, see "
            "explicable_jax.conventions); got None.")
      check_same_length(lengths)
      _probe_models(args_, kinds)
      try:
        return fn(*bound.args, **bound.kwargs)
      except jax.errors.TracerArrayConversionError as e:
        _traced_number(args_, e)
        _host_only(fn.__name__, args_, e)
        raise
      except (jax.errors.ConcretizationTypeError, ValueError, TypeError) as e:
        _traced_number(args_, e)
        raise

    setattr(wrapped, "__conventions__", dict(kinds))  # read by declared()
    return wrapped

  return decorate


def _host_only(name: str, args_: Mapping, error: Exception) -> None:
  """A host-side (numpy) function given traced arguments, named: JAX's own
  ``TracerArrayConversionError`` names neither the function nor the fix.
  Returns (the caller re-raises) when no argument is traced (the error came
  from a user's function, say)."""
  traced = [p for p, v in args_.items() if any(_is_traced(leaf) for leaf in jax.tree.leaves(v))]
  if traced:
    raise TypeError(
        f"{name} computes on the host (numpy) and cannot be traced; it was given traced "
        f"{', '.join(traced)} (called inside jax.jit, vmap or grad): call it outside the "
        "transformation, on concrete arrays.") from error


def _key_left_out(name: str, sig: inspect.Signature, args: tuple, error: TypeError) -> None:
  """A call that does not bind, to a function whose first parameter is the
  PRNG key, whose first argument is no key: the key was left out and every
  argument shifted, so Python blames the last one; the key is named instead."""
  if next(iter(sig.parameters), None) == "key" and args and not (
      isinstance(args[0], jax.Array) and jnp.issubdtype(args[0].dtype, jax.dtypes.prng_key)
      or getattr(args[0], "shape", None) == (2,)):
    raise TypeError(f"{name}() {str(error).split('() ', 1)[-1]}: the PRNG key comes first, "
                    f"{name}(key, ...) with key = jax.random.key(seed).") from None


def key_first(fn: Callable) -> Callable:
  """For a public key-first function that is not a :func:`boundary`: a call
  that left the key out is named as :func:`boundary` names it. The
  signature is bound only after a ``TypeError``: nothing is added to a call
  that works."""
  sig = inspect.signature(fn)

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    try:
      return fn(*args, **kwargs)
    except TypeError:
      try:
        sig.bind(*args, **kwargs)
      except TypeError as e:  # the call itself does not bind: was the key left out?
        _key_left_out(fn.__name__, sig, args, e)
      raise
  setattr(wrapped, "__key_first__", True)  # read by the API walk in the tests
  return wrapped


def _traced_number(args_: Mapping, error: Exception) -> None:
  """A traced number where the function reads a concrete one (a rate, a step
  count): its check saw a tracer and said "got JitTracer(...)", or Python
  branched on it. Named as traced, with the fix (:func:`_validation.check_concrete`);
  returns when no single number is traced or the error is about something else."""
  message = str(error)
  if not (isinstance(error, jax.errors.ConcretizationTypeError)
          or isinstance(error, jax.errors.TracerArrayConversionError) or "Tracer" in message):
    return
  numbers = [p for p, v in args_.items() if _is_traced(v) and np.ndim(v) == 0]
  if numbers:
    named = [p for p in numbers if f"{p} " in message]
    try:
      _validation.check_concrete((named or numbers)[0], args_[(named or numbers)[0]])
    except TypeError as e:
      raise e from error


def host_side(fn: Callable) -> Callable:
  """For a public host-side function that is not a :func:`boundary` (one
  with ``*args`` forms): a traced argument is named as :func:`boundary`
  names it."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    try:
      return fn(*args, **kwargs)
    except jax.errors.TracerArrayConversionError as e:
      _host_only(fn.__name__, {**{f"argument {i + 1}": a for i, a in enumerate(args)},
                               **kwargs}, e)
      raise
  return wrapped


def _swap_parameters(sig: inspect.Signature, fn: Callable):
  """``(function parameters, array parameters, positional names, function
  parameters the function checks itself)`` of a signature, for
  :func:`_check_functions`; ``None`` when it has no function parameter."""
  fns = tuple(p for p, d in sig.parameters.items()
              if p in MODEL_FN_PARAMETERS or _is_function_annotation(d.annotation))
  arrays = tuple(p for p, d in sig.parameters.items() if "Array" in str(d.annotation))
  if not fns:
    return None
  positional = tuple(p for p, d in sig.parameters.items() if d.kind in (
      inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
  try:  # a function that names the parameter in its own check states its form
    source = inspect.getsource(inspect.unwrap(fn))
  except (OSError, TypeError):
    source = ""
  own = tuple(p for p in fns if f'"{p}"' in source)
  return fns, arrays, positional, own


def _check_functions(fns: tuple, array_params: tuple, positional: tuple, own: tuple,
                     args_: dict) -> None:
  """Two arguments swapped, a function and an array: an argument annotated as
  a function (``Callable``, or a model function by name,
  :data:`MODEL_FN_PARAMETERS`) given a non-callable while an argument
  annotated as an array was given a function. Named here, both of them,
  instead of failing inside the computation. A lone non-callable (a number, a
  string) is refused too, naming the parameter (the twenty-first trial's
  ``data_parallel(3)`` failed inside ``jax.jit``); a model object where a
  model function is named (``logits_fn``) is left to the model checks."""
  arrays = [p for p in array_params if callable(args_.get(p))
            and not isinstance(args_.get(p), type)]
  if not arrays:
    for param in fns:
      value = args_.get(param)
      if (value is not None and not callable(value) and param not in MODEL_FN_PARAMETERS
          and param not in own and not hasattr(value, "logits")):
        raise TypeError(f"{param} must be a function; got {_describe_value(value)}"
                        + (f" {value!r}" if isinstance(value, (int, float, str)) else "")
                        + ".")
    return
  for param in fns:
    value = args_.get(param)
    if value is None or callable(value):
      continue
    raise TypeError(
        f"{param} must be a function; got {_describe_value(value)}, and {arrays[0]} (an array) "
        f"was given a function: are the two swapped? The call is ({', '.join(positional)}).")


def _is_function_annotation(annotation) -> bool:
  """Whether a parameter's annotation says "a function" (``Callable``,
  ``Callable[...]``, optionally ``| None``), not a container of functions or
  a choice between a name and a function."""
  if annotation is inspect.Parameter.empty:
    return False
  text = annotation if isinstance(annotation, str) else repr(annotation)
  text = text.replace("collections.abc.", "").replace("typing.", "").replace(
      "<class 'Callable'>", "Callable")
  if "[" in text:  # the arguments of Callable[[...], ...] may hold a "|"
    head, _, rest = text.partition("[")
    text = head + rest[rest.rfind("]") + 1:] if head.strip() == "Callable" else text
  parts = [t.strip() for t in text.split("|")]
  return parts[0].startswith("Callable") and all(t == "None" for t in parts[1:])


def _describe_value(value) -> str:
  shape = getattr(value, "shape", None)
  return (f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None
          else type(value).__name__)


def declared(fn: Callable) -> dict[str, str]:
  """The ``parameter -> kind`` declarations of a public function (empty when
  it declares none)."""
  return dict(getattr(fn, "__conventions__", {}))
