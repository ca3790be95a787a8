"""The one model contract: :class:`Classifier`.

Every method of the library reaches a model through a ``Classifier``: an
apply function with its parameters (``params``, what training and mutation
change) and non-trainable state (``state``, e.g. batch-norm statistics), the
class names, and named split points. It is a pytree (``params`` and ``state``
are its leaves; everything else is static), so it crosses ``jax.jit`` and
``jax.vmap`` as an argument, and a mutant is the same classifier with other
params (:meth:`Classifier.with_params`).

* ``clf.logits(x)``: evaluation-mode class scores of a batch ``(N, ...)``.
* ``clf.apply(x, train=True, key=k)``: ``(logits, new_state)``, the training
  forward pass (batch statistics, dropout drawn from ``key``).
* ``clf.split(layer)``: ``(features_fn, head_fn)``, two batch functions with
  ``head_fn(features_fn(x)) == clf.logits(x)``: the pair the layer attribution
  methods take.
* ``clf.layers``: the names ``split`` accepts.

How the forward pass and the splits are computed is a *backend*: the zoo's
staged NNX models, any NNX module (:func:`from_nnx`), a ``flax.linen`` module
(:func:`from_linen`) or plain functions (:func:`from_functions`); all in
:mod:`explicable_jax.models.adapters`.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _validation, conventions
from explicable_jax.models._trees import check_same_tree


class Backend:
  """How a classifier computes; subclasses implement the three methods.

  Backends are static (hashed by identity) and hold no arrays: the params and
  state are passed in, so one compilation serves every params of the same
  shapes (mutants, training steps).
  """
  kind = "abstract"
  layers: tuple[str, ...] = ()

  def apply(self, params, state, x, *, train: bool, key):
    """``(logits, new_state)``."""
    raise NotImplementedError

  def features(self, params, state, x, layer: str):
    """Evaluation-mode activation at the output of ``layer``."""
    raise NotImplementedError

  def head(self, params, state, h, layer: str, input_spec):
    """Evaluation-mode class scores from ``layer``'s activation ``h``.

    ``input_spec`` is a ``ShapeDtypeStruct`` of one input batch of ``h``'s
    batch size (for backends that must run the unused prefix on a dummy)."""
    raise NotImplementedError

  def check_split(self, params, state, layer: str, input_spec) -> None:
    """Raises ``ValueError`` when ``layer`` cannot split the model cleanly."""

  def verify_split(self, params, state, layer: str, x) -> None:
    """Raises ``ValueError`` unless ``head(features(x)) == apply(x)`` on the
    concrete batch ``x``; backends whose splits compose by construction (the
    NNX and linen ones: the head runs the same forward pass) do nothing."""

  def describe(self) -> dict:
    """A JSON-able description saved beside the weights."""
    return {"adapter": self.kind, "layers": list(self.layers)}


@dataclasses.dataclass(frozen=True)
class Spec:
  """The static part of a :class:`Classifier` (hashable)."""
  backend: Backend
  class_names: tuple[str, ...] | None = None
  input_shape: tuple[int, ...] | None = None
  num_classes: int | None = None
  recipe: str | None = None  # JSON: how to rebuild (see models.save)
  input_range: tuple[float, float] | None = (0.0, 1.0)
  """The scale of image-shaped float inputs (:mod:`explicable_jax.conventions`):
  ``(0, 1)``, the library's convention, or ``None`` for a model that takes
  another scale (standardised images, raw measurements): no range check."""


_OUTPUT_CHECKED: weakref.WeakSet = weakref.WeakSet()
"""Specs adapted without ``input_shape`` whose first concrete output passed
:func:`~explicable_jax.conventions.check_logits` (see ``Classifier._apply``)."""


@jax.jit
def _all_finite(leaves) -> jax.Array:
  """Whether every leaf is finite: one dispatch for the whole tree (one per
  leaf cost ResNet-20's 59 leaves ~3 ms in ``with_params``)."""
  return jnp.all(jnp.stack([jnp.isfinite(v).all() for v in leaves]))


@jax.tree_util.register_pytree_node_class
class Classifier:
  """A classifier: backend + ``params`` + ``state`` + class names + splits.

  Build one with :func:`~explicable_jax.models.classifier` (the zoo),
  :func:`~explicable_jax.models.from_nnx`,
  :func:`~explicable_jax.models.from_linen` or
  :func:`~explicable_jax.models.from_functions`; never by hand.

  Attributes:
    params: the trainable weights (a pytree).
    state: non-trainable state (a pytree, possibly empty), e.g. batch-norm
      statistics.
    spec: the static part (:class:`Spec`).
  """
  __slots__ = ("params", "state", "spec", "__weakref__")

  def __init__(self, params, state, spec: Spec):
    if not isinstance(spec, Spec):
      raise TypeError(f"spec must be a models.Spec; got {type(spec).__name__}.")
    self.params = params
    self.state = state
    self.spec = spec

  # -- pytree ---------------------------------------------------------------
  def tree_flatten(self):
    return (self.params, self.state), self.spec

  @classmethod
  def tree_unflatten(cls, spec, children):
    obj = object.__new__(cls)
    obj.params, obj.state = children
    obj.spec = spec
    return obj

  def __repr__(self) -> str:
    n = self.spec.num_classes
    return (f"Classifier({self.spec.backend.kind}, classes={n}, "
            f"layers={list(self.layers)})")

  # -- static facts -----------------------------------------------------------
  @property
  def backend(self) -> Backend:
    return self.spec.backend

  @property
  def layers(self) -> tuple[str, ...]:
    """The names :meth:`split` accepts, input side first."""
    return tuple(self.spec.backend.layers)

  @property
  def class_names(self) -> tuple[str, ...] | None:
    return self.spec.class_names

  @property
  def input_shape(self) -> tuple[int, ...] | None:
    """The shape of one example, when known."""
    return self.spec.input_shape

  @property
  def num_classes(self) -> int:
    """Number of outputs: given, or the length of ``class_names``, or found
    by tracing the model on ``input_shape``."""
    if self.spec.num_classes is not None:
      return self.spec.num_classes
    if self.spec.class_names is not None:
      return len(self.spec.class_names)
    if self.spec.input_shape is not None:
      out = jax.eval_shape(self.logits, jax.ShapeDtypeStruct(
          (1, *self.spec.input_shape), jax.numpy.float32))
      return int(out.shape[-1])
    raise ValueError(
        "num_classes is unknown for this classifier: pass num_classes=, "
        "class_names= or input_shape= when adapting the model.")

  # -- computation ------------------------------------------------------------
  def _declared_classes(self) -> int | None:
    if self.spec.num_classes is not None:
      return self.spec.num_classes
    if self.spec.class_names is not None:
      return len(self.spec.class_names)
    return None

  def check_logits(self, logits, x) -> None:
    """Raises ``ValueError`` unless ``logits`` are ``(N, C)`` for ``x``'s ``N``
    examples with ``C`` the declared number of classes: the model contract,
    checked from shapes alone (free under ``jit``)."""
    if not hasattr(logits, "shape"):
      what = (f"a {type(logits).__name__} of {len(logits)}" if isinstance(logits, (tuple, list))
              else type(logits).__name__)
      raise ValueError(
          f"the model must return the class scores, one (N, C) array; it returns {what}"
          + (" (logits and state? return the logits alone, or adapt the function with "
             "from_functions(..., has_state=...))" if isinstance(logits, (tuple, list)) else "")
          + ".")
    if not jax.numpy.issubdtype(logits.dtype, jax.numpy.floating):
      raise ValueError(
          f"the model must return float class scores (logits); it returns dtype "
          f"{logits.dtype} (labels or an argmax? return the scores before them).")
    shape = tuple(logits.shape)
    leaves = jax.tree.leaves(x)
    first_ndim = getattr(leaves[0], "ndim", 0) if leaves else 0
    n = leaves[0].shape[0] if first_ndim else None
    c = self._declared_classes()
    if len(shape) == 2 and shape[1] < 2 and (n is None or shape[0] == n):
      raise ValueError(
          f"the model must return class scores of shape (N, C) with C >= 2; it returns shape "
          f"{shape}, one score per example (a sigmoid's logit?): return both classes' "
          "logits, jnp.concatenate([jnp.zeros_like(z), z], -1) for a logit z of class 1 "
          "(softmax of that is the sigmoid).")
    if len(shape) != 2 or (n is not None and shape[0] != n) or (c is not None and shape[1] != c):
      want = f"({n if n is not None else 'N'}, {c if c is not None else 'C'})"
      why = ("" if c is None or len(shape) != 2 or shape[1] == c
             else f" (num_classes={c})" if self.spec.num_classes is not None
             else f" (class_names has {c} names)")
      raise ValueError(
          f"the model must return class scores of shape {want}{why}; it returns shape "
          f"{shape} for inputs of shape {tuple(leaves[0].shape) if leaves else ()}. Adapt "
          "it so that its output is (batch, classes), or pass the "
          + ("class_names of its " + str(shape[1]) + " classes."
             if self.spec.num_classes is None and self.spec.class_names is not None
             and len(shape) == 2 else "num_classes it has."))

  @staticmethod
  def _check_rows(x) -> None:
    """Refuses an empty batch (0 rows), as :func:`~explicable_jax.training.predict`
    does: the models' forward passes index the first example. Shapes only
    (free under ``jit``)."""
    leaves = jax.tree.leaves(x)
    shape = tuple(getattr(leaves[0], "shape", ())) if leaves else ()
    if shape and shape[0] == 0:
      raise conventions.ConventionError(
          f"x must hold at least one example; got an empty batch of shape {shape} "
          "(0 rows): nothing to compute.")

  def _apply(self, x, *, train: bool = False, key: jax.Array | None = None):
    self._check_rows(x)
    try:
      logits, state = self.spec.backend.apply(self.params, self.state, x, train=train, key=key)
    except ValueError as e:
      if train and key is None and "rngs" in str(e):  # Flax's word for a missing dropout key
        raise ValueError(
            "apply(x, train=True) needs key= for this model's dropout (training mode draws "
            "its masks from the key): pass key=jax.random.key(seed), or train=False for "
            f"evaluation mode ({str(e).splitlines()[0]}).") from None
      self._unchecked_input_failed(x, e)
      raise
    except TypeError as e:
      self._unchecked_input_failed(x, e)
      raise
    self.check_logits(logits, x)
    if getattr(self.spec, "input_range", (0.0, 1.0)) is not None:
      logits = conventions.off_scale_rows_to_nan(x, logits)  # traced images only
    if (self.spec.input_shape is None and not isinstance(logits, jax.core.Tracer)
        and self.spec not in _OUTPUT_CHECKED):
      # Adapted without input_shape: no dummy batch checked the output at
      # construction, so the first concrete output is checked here, once per
      # spec (the values' convention, logits rather than probabilities, is
      # the model function's; later calls pay nothing).
      conventions.check_logits("the model's output", np.asarray(logits))
      _OUTPUT_CHECKED.add(self.spec)
    return logits, state

  def _unchecked_input_failed(self, x, error: Exception) -> None:
    """A model adapted without ``input_shape`` fails on a batch: the batch's
    shape is named (the usual cause), with the model's own first line."""
    if self.spec.input_shape is not None:
      return
    leaves = jax.tree.leaves(x)
    shape = tuple(getattr(leaves[0], "shape", ())) if leaves else ()
    raise conventions.ConventionError(
        f"the model fails on x of shape {shape}: {str(error).splitlines()[0]} -- is x the "
        "shape the model takes? (adapt it with input_shape= to have every batch checked "
        "against that shape at the call)") from error

  @conventions.boundary(x="inputs")
  def apply(self, x: jax.Array, *, train: bool = False,
            key: jax.Array | None = None):
    """``(logits, new_state)`` of a batch; ``new_state`` is ``state`` in
    evaluation mode.

    ``x`` follows the ``inputs`` convention (:mod:`~explicable_jax.conventions`),
    checked as :func:`~explicable_jax.training.predict` checks it: the
    model's ``input_shape``, and outside ``jit`` the values (integer pixels
    scaled to ``[0, 1]``, float images on the ``[0, 1]`` scale unless the
    model was adapted with ``input_range=None``, no NaN or inf); under
    ``jit`` only shapes and dtypes. ``key`` (training mode's dropout) is
    one PRNG key."""
    if key is not None:
      key = _validation.check_key("key", key, call="clf.apply(x, train=True, key=key)")
    return self._apply(x, train=train, key=key)

  @conventions.boundary(x="inputs")
  def logits(self, x: jax.Array) -> jax.Array:
    """Evaluation-mode class scores ``(N, C)`` of a batch ``(N, ...)``
    (``x`` checked as in :meth:`apply`)."""
    return self._apply(x)[0]

  __call__ = logits

  def check_layer(self, layer: str) -> None:
    """Raises ``ValueError`` unless ``layer`` is one of :attr:`layers`."""
    if not self.layers:
      raise ValueError(
          f"layer {layer!r} cannot be used: this {self.backend.kind} classifier "
          "has no split points; adapt it with layers=[...] (sub-module names or "
          "stage functions, see models.from_nnx / from_linen / from_functions).")
    if not isinstance(layer, str) or layer not in self.layers:
      raise ValueError(
          f"layer must be one of {', '.join(self.layers)}; got {layer!r}.")

  def split(self, layer: str):
    """``(features_fn, head_fn)``: the model cut after ``layer``.

    Both are pure evaluation-mode functions of a batch, and
    ``head_fn(features_fn(x)) == clf.logits(x)``. Raises ``ValueError`` for an
    unknown layer, or when the rest of the model also reads the input around
    ``layer`` (a skip connection over the cut).
    """
    self.check_layer(layer)
    backend, params, state = self.backend, self.params, self.state
    shape = self.spec.input_shape
    if shape is not None:
      backend.check_split(params, state, layer,
                          jax.ShapeDtypeStruct((1, *shape), jax.numpy.float32))
      backend.verify_split(params, state, layer, dummy_batch(shape))

    activation: list[tuple[int, ...]] = []  # the activation's shape, once traced

    def features_fn(x):
      x = conventions.check_model_inputs("x", x, self)
      self._check_rows(x)
      if not any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(x)):
        backend.verify_split(params, state, layer, x)
      return backend.features(params, state, x, layer)

    def head_fn(h):
      if not isinstance(h, (dict, list)):
        conventions.check_batch("h", h)
      if shape is not None and hasattr(h, "shape"):
        want = activation[0] if activation else None
        if want is None:  # Found once, by tracing the features on one example.
          want = tuple(jax.eval_shape(
              lambda v: backend.features(params, state, v, layer),
              jax.ShapeDtypeStruct((1, *shape), jax.numpy.float32)).shape[1:])
          activation.append(want)
        if tuple(h.shape[1:]) != want:
          raise conventions.ConventionError(
              f"h must be activations of layer {layer!r}, a batch of shape (N, "
              f"{', '.join(map(str, want))}); got shape {tuple(h.shape)}: pass "
              "features_fn(x) of this split.")
      n = jax.tree.leaves(h)[0].shape[0]
      spec = (jax.ShapeDtypeStruct((n, *shape), jax.numpy.float32)
              if shape is not None else None)
      out = backend.head(params, state, h, layer, spec)
      self.check_logits(out, h)
      return out

    for fn in (features_fn, head_fn):  # the cut's name, for messages
      setattr(fn, "layer", layer)
    # features_fn takes the model's inputs: a function given it checks them
    # by the model's rules even where it only traces it (conventions.classifier_of).
    setattr(features_fn, "classifier", self)
    return features_fn, head_fn

  # -- swapping ---------------------------------------------------------------
  def replace(self, **changes) -> Classifier:
    """A copy with some of ``params``, ``state``, ``class_names`` replaced
    (``params`` and ``state`` of the model's structure and shapes)."""
    unknown = set(changes) - {"params", "state", "class_names", "num_classes", "input_range"}
    if unknown:
      raise TypeError(
          f"replace takes params, state, class_names, num_classes or input_range; got "
          f"{', '.join(sorted(unknown))}.")
    spec = self.spec
    if "input_range" in changes:
      spec = dataclasses.replace(spec, input_range=check_input_range(changes.pop("input_range")))
    if "class_names" in changes or "num_classes" in changes:
      names = changes.pop("class_names", spec.class_names)
      if names is not None:
        names = _validation.check_class_names("class_names", names)
        count = changes.get("num_classes", spec.num_classes)
        if count is not None and len(names) != count:
          raise ValueError(f"class_names must name the model's {count} classes; got "
                           f"{len(names)} names.")
      spec = dataclasses.replace(
          spec, class_names=tuple(names) if names is not None else None,
          num_classes=changes.pop("num_classes", spec.num_classes))
    for name in ("params", "state"):
      if name in changes:
        check_same_tree(name, changes[name], getattr(self, name))
    return Classifier(changes.get("params", self.params),
                      changes.get("state", self.state), spec)

  def with_params(self, params) -> Classifier:
    """The same model with other weights (a mutant, a training step): no
    rebuild, and jitted functions of it do not recompile. ``params`` must
    have the model's structure and leaf shapes (:func:`check_same_tree`);
    concrete weights holding NaN or inf warn (every logit would be NaN)."""
    check_same_tree("params", params, self.params)
    leaves = [v for v in jax.tree.leaves(params)
              if not isinstance(v, jax.core.Tracer) and jnp.issubdtype(jnp.result_type(v),
                                                                      jnp.inexact)]
    if leaves and not bool(_all_finite(leaves)):
      warnings.warn("with_params: params hold NaN or inf, so the model's logits will be "
                    "NaN (a diverged training step, or a damaged mutant?).", UserWarning,
                    stacklevel=_validation.user_stacklevel())
    return Classifier(params, self.state, self.spec)

  def logits_with(self, params, x: jax.Array) -> jax.Array:
    """``clf.with_params(params).logits(x)``: the model as a function of its
    weights, ``(params, x) -> logits`` (mutation testing); ``x`` checked as
    in :meth:`apply`."""
    if (hasattr(params, "shape") and not hasattr(x, "shape")
        and str(jax.tree.structure(x)) == str(jax.tree.structure(self.params))):
      raise TypeError(
          f"logits_with(params, x) takes the parameters first; got an array of shape "
          f"{tuple(params.shape)} as params and the model's parameter tree as x: are the "
          "two swapped?")
    return self._logits_with(params, x)

  setattr(logits_with, "__conventions__", {"x": "inputs"})  # checked by _logits_with

  @conventions.boundary(x="inputs")
  def _logits_with(self, params, x: jax.Array) -> jax.Array:
    check_same_tree("params", params, self.params)
    self._check_rows(x)
    return self.spec.backend.apply(params, self.state, x, train=False, key=None)[0]

  def module(self):
    """A live ``nnx.Module`` (NNX backends only; a copy, for interactive use)."""
    make = getattr(self.backend, "module", None)
    if make is None:
      raise TypeError(
          f"module() needs an NNX classifier; this one is {self.backend.kind}.")
    return make(self.params, self.state)


def check_input_range(value):
  """``(lo, hi)`` floats with ``lo < hi``, or ``None``."""
  if value is None:
    return None
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    lo = hi = None
  if lo is None or not lo < hi:
    raise ValueError(f"input_range must be (low, high) with low < high, or None; got {value!r}.")
  if (lo, hi) != (0.0, 1.0):
    # The checks and the one pixel conversion (x / 255) know one scale: a
    # declared (0, 255) would be refused at every entry, or divided again.
    raise ValueError(
        f"input_range must be (0, 1), the library's image scale (checked at every entry; "
        f"integer pixels are divided by 255), or None for a model that takes another scale "
        f"(no range check); got {value!r}. A model that wants {value!r} inputs takes (0, 1) "
        "and rescales inside, or is adapted with input_range=None.")
  return (lo, hi)


def dummy_batch(input_shape: tuple[int, ...], n: int = 2) -> jax.Array:
  """A fixed concrete batch of ``n`` examples, uniform in ``[0, 1]`` (the
  images' scale), on which the adapters check the model contract."""
  return jax.random.uniform(jax.random.key(0), (n, *input_shape), jax.numpy.float32)


@_validation.named_check
def as_classifier(name: str, model: Any) -> Classifier:
  """``model`` as a :class:`Classifier`: a Classifier as is, a training state
  through its ``classifier`` property, an ``nnx.Module`` through
  :func:`~explicable_jax.models.from_nnx`. Anything else raises ``TypeError``
  naming the argument."""
  if isinstance(model, Classifier):
    return model
  clf = getattr(model, "classifier", None)
  if isinstance(clf, Classifier):
    return clf
  from flax import nnx
  if isinstance(model, nnx.Module):
    from explicable_jax.models.adapters import from_nnx
    return from_nnx(model)
  raise TypeError(
      f"{name} must be a models.Classifier (or a TrainState or nnx.Module); got "
      f"{type(model).__name__}. Adapt your model with models.from_nnx, "
      "models.from_linen or models.from_functions.")


__all__ = ["Backend", "Spec", "Classifier", "as_classifier", "dummy_batch", "check_input_range",
           "check_same_tree"]
