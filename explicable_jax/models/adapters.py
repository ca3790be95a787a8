"""Bring your own model: NNX modules, linen modules and plain functions as a
:class:`~explicable_jax.models.Classifier`.

Split points (``layers=``) come in two forms:

* **sub-module names** (``"conv2"``, ``"blocks.1"``): the model runs as it
  is, and the cut is the output of that sub-module's call. ``features_fn``
  stops the forward pass there; ``head_fn`` runs the model with that output
  replaced by its argument. A cut that the rest of the model bypasses (a skip
  connection around it) is rejected when ``input_shape`` is known: the head
  is checked, from its jaxpr, not to read the input.
* **stage functions** ``[(name, fn), ...]`` with ``fn(module, x) -> x`` (NNX)
  or a mapping ``name -> (features, head)`` (plain functions): the stages,
  composed, are the forward pass.

The zoo's :class:`~explicable_jax.models.StagedModel` s carry their stages, so
``from_nnx(model)`` needs no ``layers``.

One module, not a package (over 500 lines): the three adapters build the same
:class:`~explicable_jax.models.Classifier` backends and share the split-point
logic (sub-module cuts, stage functions, the jaxpr check that a head does not
read the input), which is most of the module.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import flax.errors
from flax import nnx

from explicable_jax import _jaxpr, _validation, conventions
from explicable_jax.models.base import StagedModel
from explicable_jax.models._protocols import SubModuleStarts
from explicable_jax.models.classifier import (Backend, Classifier, Spec, check_input_range,
                                              dummy_batch)

__all__ = ["from_nnx", "from_linen", "from_functions", "NNXBackend",
           "LinenBackend", "FunctionBackend"]


class _Stop(Exception):
  """Carries a sub-module's output out of a forward pass cut short."""

  def __init__(self, value):
    super().__init__("split point reached")
    self.value = value


class _Capture:
  def __init__(self, fn):
    self.fn = fn

  def __call__(self, *args, **kwargs):
    raise _Stop(self.fn(*args, **kwargs))


class _Constant:
  def __init__(self, value):
    self.value = value

  def __call__(self, *args, **kwargs):
    return self.value


class _CaptureIO:
  """Carries a sub-module's positional inputs and its output out of a
  forward pass cut short."""

  def __init__(self, child):
    self.child = child

  def __call__(self, *args, **kwargs):
    if kwargs:
      raise ValueError("the sub-module is called with keyword arguments")
    raise _Stop((args, self.child(*args)))


class _Counted:
  def __init__(self, child, box):
    self.child, self.box = child, box

  def __call__(self, *args, **kwargs):
    self.box[0] += 1
    return self.child(*args, **kwargs)


class _Replaced:
  """``fn(child, *args, **kwargs)`` in place of the sub-module ``child``."""

  def __init__(self, child, fn):
    self.child, self.fn = child, fn

  def __call__(self, *args, **kwargs):
    return self.fn(self.child, *args, **kwargs)


def _check_not_one_name(layers) -> None:
  """``layers`` is a sequence of names; one string would be read letter by
  letter."""
  if isinstance(layers, (str, bytes)):
    raise TypeError(f"layers must be a sequence of sub-module names (or (name, stage_fn) "
                    f"pairs); got the string {layers!r}: pass [{layers!r}].")


def _names(layers) -> tuple[str, ...]:
  _check_not_one_name(layers)
  out = []
  for item in layers:
    name = item[0] if isinstance(item, tuple) else item
    if not isinstance(name, str) or not name:
      raise TypeError(
          f"layers must hold sub-module names or (name, stage_fn) pairs; got "
          f"{item!r}.")
    out.append(name)
  if len(set(out)) != len(out):
    raise ValueError(f"layers must have distinct names; got {out}.")
  return tuple(out)


def _head_on_dummy(backend, params, state, h, layer, input_spec, adapter: str):
  """The head of a sub-module cut: the model run on zeros with the cut's
  output replaced by ``h`` (the zeros reach nothing, see :func:`_check_clean`)."""
  if input_spec is None:
    raise ValueError(
        f"input_shape is needed to split a model at a sub-module name: pass "
        f"input_shape= to models.{adapter}.")
  return backend._head_with_input(params, state, h, layer,
                                  jnp.zeros(input_spec.shape, input_spec.dtype))


def _check_clean(backend, params, state, layer, input_spec) -> None:
  """Raises when the head after ``layer`` reads the (dummy) input."""
  key = (layer, input_spec.shape[1:])
  if key in backend._checked:
    return
  h = jax.eval_shape(lambda x: backend.features(params, state, x, layer), input_spec)

  def head_of(x, h):
    return backend._head_with_input(params, state, h, layer, x)

  if _jaxpr.depends_on_first(head_of, input_spec, h):
    raise ValueError(
        f"layer {layer!r} cannot split the model: the computation after it also "
        "reads the input directly (a skip connection around the cut); choose "
        "another layer, or give stage functions that pass what the head needs.")
  backend._checked.add(key)


# ---------------------------------------------------------------------------
# NNX.


def _resolve(module, path: str):
  """``(parent, attribute or index, child)`` of a dotted sub-module path."""
  parent, obj, part = None, module, None
  for part in path.split("."):
    parent = obj
    if part.isdigit() and not hasattr(obj, part):
      try:
        obj = obj[int(part)]
      except (TypeError, IndexError, KeyError):
        obj = None
      part = int(part)
    else:
      obj = getattr(obj, part, None)
    if obj is None:
      raise ValueError(
          f"layers names {path!r}, but the model has no sub-module there "
          f"(looked up {part!r} on {type(parent).__name__}).")
  return parent, part, obj


def _set(parent, part, value) -> None:
  if isinstance(part, int):
    parent[part] = value
  else:
    setattr(parent, part, value)


class NNXBackend(Backend, SubModuleStarts):
  """An NNX module as ``(graphdef, params, state)``.

  ``mode``: ``"staged"`` (a zoo :class:`StagedModel`), ``"stages"``
  (user stage functions ``fn(module, x)``), ``"names"`` (sub-module paths)
  or ``"none"`` (no split points).
  """
  kind = "nnx"

  def __init__(self, graphdef, mode: str, layers: tuple[str, ...],
               stage_fns: tuple[Callable, ...] = (), call_rngs: bool = False):
    self.graphdef = graphdef
    self.mode = mode
    self.layers = layers
    self.stage_fns = stage_fns
    self.call_rngs = call_rngs
    self._checked = set()

  def module(self, params, state, *, train: bool = False):
    m = nnx.merge(self.graphdef, params, state, copy=True)
    m.train() if train else m.eval()
    return m

  def _forward(self, m, x, rngs):
    if self.mode == "staged":
      return m(x, rngs=rngs)
    if self.mode == "stages":
      for fn in self.stage_fns:
        x = fn(m, x)
      return x
    return m(x, rngs=rngs) if self.call_rngs and rngs is not None else m(x)

  def apply(self, params, state, x, *, train, key):
    m = self.module(params, state, train=train)
    rngs = None
    # The module's own RNG streams matter to training or a given key only: an
    # evaluation call (every logits) does not walk the graph for them.
    streams = ({v.tag for _, v in nnx.iter_graph(m) if isinstance(v, nnx.RngKey)}
               if train or key is not None else set())
    if train and key is None and streams:
      # The module's own stream lives in the (functional) state, which the
      # call does not advance: every call would draw the same dropout mask.
      raise ValueError(
          f"apply(x, train=True) needs key= for this model's RNG stream(s) "
          f"{sorted(streams)} (its dropout draws masks from them; without a key every call "
          "would reuse one mask): pass key=jax.random.key(seed), or train=False for "
          "evaluation mode.")
    if key is not None:
      rngs = nnx.Rngs(dropout=key)
      if streams:  # Dropout layers that hold their own stream.
        nnx.reseed(m, **{s: jax.random.fold_in(key, i)
                         for i, s in enumerate(sorted(streams))})
    logits = self._forward(m, x, rngs)
    if not train:
      return logits, state
    return logits, nnx.split(m, nnx.Param, ...)[2]

  def features(self, params, state, x, layer):
    m = self.module(params, state)
    if self.mode == "staged":
      return m.features(x, layer)
    i = self.layers.index(layer)
    if self.mode == "stages":
      for fn in self.stage_fns[:i + 1]:
        x = fn(m, x)
      return x
    return self._run_to(m, layer, _Capture, x, "layer")

  def _run_to(self, m, path, capture, x, what):
    """The value ``capture(sub-module)`` stops the forward pass of ``m`` with."""
    parent, part, child = _resolve(m, path)
    _set(parent, part, capture(child))
    try:
      self._forward(m, x, None)
    except _Stop as stop:
      return stop.value
    raise ValueError(f"{what} {path!r} is never called by the model's forward pass.")

  def _head_with_input(self, params, state, h, layer, x):
    m = self.module(params, state)
    parent, part, _ = _resolve(m, layer)
    _set(parent, part, _Constant(h))
    return self._forward(m, x, None)

  def head(self, params, state, h, layer, input_spec):
    if self.mode == "staged":
      return self.module(params, state).head(h, layer)
    if self.mode == "stages":
      m = self.module(params, state)
      for fn in self.stage_fns[self.layers.index(layer) + 1:]:
        h = fn(m, h)
      return h
    return _head_on_dummy(self, params, state, h, layer, input_spec, "from_nnx")

  def check_split(self, params, state, layer, input_spec):
    if self.mode == "names":
      _check_clean(self, params, state, layer, input_spec)

  # Sub-module starts (the SubModuleStarts protocol), used by
  # mutation.mutant_predictions to start a mutant at its first changed
  # convolution rather than at the stage holding it.

  def linear_module(self, params, state, path: str) -> bool:
    """Whether the sub-module at ``path`` is an ``nnx.Conv`` or ``nnx.Linear``
    (its output is linear in its parameters, channel by channel)."""
    try:
      child = _resolve(self.module(params, state), path)[2]
    except ValueError:
      return False
    return type(child) in (nnx.Conv, nnx.Linear)

  def module_calls(self, params, state, path: str, input_spec) -> int:
    """How many times one evaluation-mode forward pass calls the sub-module."""
    box = [0]

    def run(x):
      m = self.module(params, state)
      parent, part, child = _resolve(m, path)
      _set(parent, part, _Counted(child, box))
      return self._forward(m, x, None)

    jax.eval_shape(run, input_spec)
    return box[0]

  def module_io(self, params, state, x, path: str):
    """``(positional inputs, output)`` of the sub-module at ``path`` in the
    evaluation-mode forward pass on ``x`` (its first call)."""
    return self._run_to(self.module(params, state), path, _CaptureIO, x, "the sub-module")

  def head_replacing(self, params, state, h, layer, input_spec, path: str, fn):
    """:meth:`head` from ``layer`` (``None``: the whole forward pass on
    ``h``) with the sub-module at ``path`` computed as ``fn(module, *args)``."""
    m = self.module(params, state)
    parent, part, child = _resolve(m, path)
    _set(parent, part, _Replaced(child, fn))
    if layer is None:
      return self._forward(m, h, None)
    if self.mode == "staged":
      return m.head(h, layer)
    if self.mode == "stages":
      for stage in self.stage_fns[self.layers.index(layer) + 1:]:
        h = stage(m, h)
      return h
    if input_spec is None:
      raise ValueError("input_shape is needed to split a model at a sub-module name: pass "
                       "input_shape= to models.from_nnx.")
    parent, part, _ = _resolve(m, layer)
    _set(parent, part, _Constant(h))
    return self._forward(m, jnp.zeros(input_spec.shape, input_spec.dtype), None)

  def describe(self):
    return {"adapter": "nnx", "mode": self.mode, "layers": list(self.layers)}


def _spec(backend, class_names, input_shape, num_classes, recipe=None,
          input_range=(0.0, 1.0)) -> Spec:
  names = (tuple(str(c) for c in _validation.check_class_names("class_names", class_names))
           if class_names is not None else None)
  shape = (conventions.check_input_shape("input_shape", input_shape)
           if input_shape is not None else None)
  if num_classes is not None:
    _validation.check_num_classes("num_classes", num_classes)
    if names is not None and len(names) != num_classes:
      raise ValueError(
          f"class_names must have num_classes={num_classes} entries; got {len(names)}.")
  return Spec(backend, names, shape, num_classes, recipe, check_input_range(input_range))


def _check_returns_logits(clf: Classifier, input_shape: tuple[int, ...]) -> None:
  """The logits convention on the model's output for the concrete dummy
  batch: rows that all lie in ``[0, 1]`` and sum to 1 (to ``1e-5``) are
  probabilities, which logits of a real model essentially never are. A model
  that cannot run on the uniform dummy batch (token ids, say) is not checked
  here."""
  try:
    z = clf.logits(dummy_batch(input_shape, n=4))
  except Exception:  # the abstract check above already covered the shapes
    return
  if isinstance(z, jax.core.Tracer):
    return
  if not bool(jnp.isfinite(z).any()):
    raise conventions.ConventionError(
        f"the model returns no finite logit at all on a dummy batch of {z.shape[0]} examples "
        "in its input range (all NaN or inf): check its parameters and its input "
        "normalisation (e.g. input_std holding 0).")
  try:
    conventions.check_logits("the model's output", z)
  except conventions.ConventionError as e:
    if "[0, 1] and sum to 1" not in str(e):
      return  # NaN on a dummy batch etc.: the entry points report it on real data
    raise conventions.ConventionError(
        "the model must return logits: drop the final softmax. Its output on a dummy "
        f"batch of {z.shape[0]} uniform examples has rows that all lie in [0, 1] and sum "
        "to 1 (probabilities); the library applies the softmax itself (losses, scores), "
        "so probabilities would be squashed twice. A log_softmax output is fine "
        "(log-probabilities are logits).") from None


def _classifier(params, state, spec: Spec) -> Classifier:
  """The classifier, its contract checked once where ``input_shape`` is known:
  on an abstract batch, logits ``(N, C)`` with ``C`` the declared number of
  classes (found from that trace when none was given, so that
  ``clf.num_classes`` never traces the model again); on a concrete dummy
  batch, every user-given split composes to the logits."""
  clf = Classifier(params, state, spec)
  if spec.input_shape is None:
    return clf
  try:
    out = jax.eval_shape(clf.logits, jax.ShapeDtypeStruct((2, *spec.input_shape), jnp.float32))
  except flax.errors.ScopeParamShapeError as e:  # linen: weights of another model
    raise ValueError(
        "variables do not fit the module: its parameters have other shapes than the given "
        f"ones (the variables of another model, or of another input_shape?): "
        f"{str(e).splitlines()[0].split(' (https://')[0]}") from None
  except (flax.errors.ScopeParamNotFoundError, flax.errors.ScopeCollectionNotFound) as e:
    raise ValueError(
        "variables do not fit the module: a parameter the module reads is missing from them "
        f"(the variables of another model?): {str(e).splitlines()[0].split(' (https://')[0]}"
    ) from None
  except (ValueError, TypeError, AttributeError, IndexError) as e:
    if "class scores" in str(e):
      raise
    order = (" (is it called as apply_fn(params, x), params first?)"
             if isinstance(spec.backend, FunctionBackend) else "")
    raise ValueError(
        f"the model cannot take a batch of input_shape={spec.input_shape}{order}: "
        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
  if spec.num_classes is None and spec.class_names is None:
    clf = clf.replace(num_classes=int(out.shape[-1]))
  _check_returns_logits(clf, spec.input_shape)
  if isinstance(spec.backend, FunctionBackend):
    for layer in clf.layers:
      spec.backend.verify_split(params, state, layer, dummy_batch(spec.input_shape))
  elif isinstance(spec.backend, LinenBackend):  # user-named layers: each must be reachable
    batch = jax.ShapeDtypeStruct((2, *spec.input_shape), jnp.float32)
    for layer in clf.layers:
      try:
        jax.eval_shape(clf.split(layer)[0], batch)
      except Exception as e:  # noqa: BLE001 - reported with the layer named
        raise ValueError(
            f"layers names {layer!r}, which the model's forward pass does not reach (a "
            f"submodule's name, e.g. 'Dense_0'): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}") from None
  return clf


def from_nnx(module: nnx.Module, *, layers: Sequence[Any] | None = None,
             class_names: Sequence[str] | None = None,
             input_shape: Sequence[int] | None = None,
             num_classes: int | None = None, recipe: str | None = None,
             input_range: tuple[float, float] | None = (0.0, 1.0)) -> Classifier:
  """Any ``nnx.Module`` as a :class:`Classifier` (its current weights).

  The module is called as ``module(x)`` (``module(x, rngs=...)`` when its
  ``__call__`` takes ``rngs``), in training mode after ``module.train()`` and
  in evaluation mode after ``module.eval()``; dropout layers that hold their
  own RNG stream are reseeded from the training step's key. No
  ``num_classes`` attribute or ``rngs`` keyword is required.

  Args:
    module: the model; a zoo :class:`StagedModel` brings its own stages.
    layers: split points: sub-module paths (``["conv1", "blocks.0"]``, dots
      for nesting, integers index lists) or ``[(name, fn), ...]`` with
      ``fn(module, x) -> x`` whose composition is the forward pass.
    class_names, input_shape, num_classes: static facts; ``input_shape`` (one
      example) is needed for splits at sub-module names.
    recipe: how to rebuild it (set by :func:`explicable_jax.models.classifier`).
    input_range: the scale of image-shaped float inputs, ``(0, 1)`` (the
      library's convention, checked at every entry) or ``None`` for a model
      that takes another scale (standardised images): no range check.

  Returns:
    The classifier; its params and state are copies of the module's arrays.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> net = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    >>> clf = from_nnx(net, input_shape=(4,), num_classes=3)
    >>> clf.logits(jnp.ones((2, 4))).shape, bool(jnp.allclose(clf.logits(jnp.ones((1, 4))),
    ...                                                       net(jnp.ones((1, 4)))))
    ((2, 3), True)
  """
  if not isinstance(module, nnx.Module):
    raise TypeError(f"module must be an nnx.Module; got {type(module).__name__}.")
  graphdef, params, state = nnx.split(module, nnx.Param, ...)
  params, state = jax.tree.map(jnp.copy, (params, state))
  call_rngs = _validation.accepts_keyword(type(module).__call__, "rngs")
  _check_not_one_name(layers)
  if layers is None and isinstance(module, StagedModel):
    backend = NNXBackend(graphdef, "staged", module.layer_names)
    if num_classes is None and isinstance(getattr(module, "num_classes", None), int):
      num_classes = module.num_classes
  elif not layers:
    backend = NNXBackend(graphdef, "none", (), call_rngs=call_rngs)
  elif all(isinstance(item, tuple) for item in layers):
    for name, fn in layers:
      if not callable(fn):
        raise TypeError(f"layers stage {name!r} must be a function (module, x) -> x; "
                        f"got {type(fn).__name__}.")
    backend = NNXBackend(graphdef, "stages", _names(layers),
                         tuple(fn for _, fn in layers))
    clf = _classifier(params, state, _spec(backend, class_names, input_shape, num_classes,
                                           recipe, input_range))
    if clf.input_shape is not None:  # the stages must compose to the module itself
      x = dummy_batch(clf.input_shape)
      whole = NNXBackend(graphdef, "none", (), call_rngs=call_rngs)._forward(
          backend.module(params, state), x, None)
      parts = clf.logits(x)
      if jnp.shape(whole) != jnp.shape(parts) or not jnp.allclose(whole, parts, rtol=1e-4,
                                                                   atol=1e-4):
        gap = (float(jnp.max(jnp.abs(whole - parts))) if jnp.shape(whole) == jnp.shape(parts)
               else f"shape {jnp.shape(parts)} against {jnp.shape(whole)}")
        raise ValueError(
            f"layers' stage functions must compose to the module: applied in turn they "
            f"differ from module(x) (largest difference {gap}; a step such as an activation "
            "left out?); give stages whose composition is the module's forward pass.")
    return clf
  elif all(isinstance(item, str) for item in layers):
    names = _names(layers)
    for name in names:
      _resolve(module, name)
    backend = NNXBackend(graphdef, "names", names, call_rngs=call_rngs)
  else:
    raise TypeError(
        "layers must be all sub-module names or all (name, stage_fn) pairs; got "
        f"{list(layers)!r}.")
  return _classifier(params, state, _spec(backend, class_names, input_shape,
                                          num_classes, recipe, input_range))


# ---------------------------------------------------------------------------
# Linen.

_TRAIN_KEYWORDS = {"train": True, "training": True, "is_training": True,
                   "deterministic": False, "use_running_average": False}


class LinenBackend(Backend):
  """A ``flax.linen`` module with its variables split into ``params`` and the
  other collections (``state``, e.g. ``batch_stats``)."""
  kind = "linen"

  def __init__(self, module, layers: tuple[str, ...], train_keyword: str | None,
               rng_name: str):
    self.linen_module = module
    self.layers = layers
    self.train_keyword = train_keyword
    self.rng_name = rng_name
    self._checked = set()

  def _kwargs(self, train: bool) -> dict:
    if self.train_keyword is None:
      return {}
    on = _TRAIN_KEYWORDS.get(self.train_keyword, True)
    return {self.train_keyword: on if train else not on}

  def _call(self, params, state, x, train, key=None, interceptor=None):
    import flax.linen as nn
    variables = {"params": params, **(state or {})}
    kwargs = self._kwargs(train)
    rngs = {self.rng_name: key} if key is not None else None
    mutable = list(state) if (train and state) else False

    def run():
      return self.linen_module.apply(variables, x, rngs=rngs, mutable=mutable, **kwargs)

    if interceptor is None:
      return run()
    with nn.intercept_methods(interceptor):
      return run()

  def apply(self, params, state, x, *, train, key):
    try:
      out = self._call(params, state, x, train, key)
    except flax.errors.InvalidRngError as e:  # a stream the module draws from is not given
      import re
      wanted = re.search(r'PRNG for "([^"]+)"', str(e))
      stream = wanted.group(1) if wanted else "?"
      if key is None:
        raise ValueError(
            f"apply(x, train=True) needs key= for this model's {stream!r} RNG stream (its "
            "dropout draws masks from it): pass key=jax.random.key(seed), or train=False "
            "for evaluation mode.") from None
      raise ValueError(
          f"the model draws from the RNG stream {stream!r}, but it was adapted with "
          f"rng_name={self.rng_name!r}, so the key goes to another stream: adapt it with "
          f"from_linen(..., rng_name={stream!r}).") from None
    if train and state:
      logits, updates = out
      return logits, {**state, **updates}
    return out, state

  @staticmethod
  def _path(layer):
    return tuple(layer.split("."))

  def features(self, params, state, x, layer):
    path = self._path(layer)

    def capture(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if context.method_name == "__call__" and tuple(context.module.path) == path:
        raise _Stop(out)
      return out

    try:
      self._call(params, state, x, False, interceptor=capture)
    except _Stop as stop:
      return stop.value
    raise ValueError(
        f"layers names {layer!r}, but no sub-module with that path is called "
        "(linen paths use the modules' names, e.g. 'Conv_0' or 'block.conv').")

  def _head_with_input(self, params, state, h, layer, x):
    path = self._path(layer)

    def replace(next_fun, args, kwargs, context):
      if context.method_name == "__call__" and tuple(context.module.path) == path:
        return h
      return next_fun(*args, **kwargs)

    return self._call(params, state, x, False, interceptor=replace)

  def head(self, params, state, h, layer, input_spec):
    return _head_on_dummy(self, params, state, h, layer, input_spec, "from_linen")

  def check_split(self, params, state, layer, input_spec):
    _check_clean(self, params, state, layer, input_spec)

  def describe(self):
    return {"adapter": "linen", "layers": list(self.layers),
            "train_keyword": self.train_keyword}


def from_linen(module, variables: Mapping[str, Any], *,
               layers: Sequence[str] | None = None,
               class_names: Sequence[str] | None = None,
               input_shape: Sequence[int] | None = None,
               num_classes: int | None = None,
               train_keyword: str | None | type(...) = ...,
               rng_name: str = "dropout", recipe: str | None = None,
               input_range: tuple[float, float] | None = (0.0, 1.0)) -> Classifier:
  """A ``flax.linen`` module and its variables as a :class:`Classifier`.

  ``params`` is ``variables["params"]``; every other collection (e.g.
  ``batch_stats``) is ``state``, updated (``mutable``) by training steps.

  Its keyword-only parameters each state one optional fact about the model (split points, class
  names, input shape and range, number of classes, training keyword, dropout stream, recipe),
  the same as :func:`from_nnx` and :func:`from_functions` take.

  Args:
    module: the linen module.
    variables: ``module.init(...)``'s result (or trained variables).
    layers: split points: the paths of sub-modules (their ``name``s, dots for
      nesting: ``"conv2"``, ``"block.Conv_0"``).
    class_names, input_shape, num_classes: static facts; ``input_shape`` is
      needed for splits.
    train_keyword: the ``__call__`` keyword that selects training mode; by
      default the first of ``train``, ``training``, ``is_training``,
      ``deterministic`` or ``use_running_average`` that ``__call__`` takes
      (the last two are passed negated); ``None`` for a model without one.
    rng_name: the RNG collection of dropout.
    input_range: as in :func:`from_nnx`.
  """
  import flax.linen as nn
  if not isinstance(module, nn.Module):
    raise TypeError(f"module must be a flax.linen.Module; got {type(module).__name__}.")
  if not isinstance(variables, Mapping) or "params" not in variables:
    raise ValueError(
        "variables must be the mapping module.init returns, with a 'params' "
        f"collection; got {type(variables).__name__}"
        + (f" with collections {sorted(variables)}" if isinstance(variables, Mapping) else "")
        + ".")
  sig = inspect.signature(type(module).__call__).parameters
  if train_keyword is ...:
    train_keyword = next((k for k in _TRAIN_KEYWORDS if k in sig), None)
  elif train_keyword is not None:
    if not isinstance(train_keyword, str):
      raise TypeError(
          f"train_keyword must be the name (a str) of the keyword of {type(module).__name__}"
          f".__call__ that selects training mode, or None; got {train_keyword!r}.")
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    if train_keyword not in sig and not takes_any:
      takes = [k for k in sig if k != "self"]
      raise ValueError(
          f"train_keyword={train_keyword!r} is not a parameter of "
          f"{type(module).__name__}.__call__, which takes {takes}: name the keyword that "
          "selects training mode, or pass train_keyword=None for a model without one.")
  params = jax.tree.map(jnp.asarray, dict(variables["params"]))
  state = {k: jax.tree.map(jnp.asarray, dict(v)) for k, v in variables.items()
           if k != "params"}
  names = _names(layers or ())
  backend = LinenBackend(module, names, train_keyword, rng_name)
  return _classifier(params, state, _spec(backend, class_names, input_shape,
                                          num_classes, recipe, input_range))


# ---------------------------------------------------------------------------
# Plain functions.


class FunctionBackend(Backend):
  """``apply_fn`` and optional ``(features, head)`` pairs, stateless
  (``apply_fn(params, x)``) or stateful
  (``apply_fn(params, state, x, train) -> (logits, new_state)``)."""
  kind = "functions"

  def __init__(self, apply_fn, splits: Mapping[str, tuple[Callable, Callable]],
               stateful: bool):
    self.apply_fn = apply_fn
    self.splits = dict(splits)
    self.layers = tuple(self.splits)
    self.stateful = stateful
    self._verified = set()

  def apply(self, params, state, x, *, train, key):
    if self.stateful:
      out = self.apply_fn(params, state, x, train)
      if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise ValueError(
            "apply_fn(params, state, x, train) must return (logits, new_state) (state was "
            f"given, so the model is stateful); it returns "
            f"{type(out).__name__}{' of shape ' + str(tuple(out.shape)) if hasattr(out, 'shape') else ''}"
            ": return (logits, state) (the state unchanged in evaluation), or adapt a "
            "stateless model without state.")
      return out
    return self.apply_fn(params, x), state

  def features(self, params, state, x, layer):
    f = self.splits[layer][0]
    return f(params, state, x) if self.stateful else f(params, x)

  def head(self, params, state, h, layer, input_spec):
    g = self.splits[layer][1]
    return g(params, state, h) if self.stateful else g(params, h)

  def verify_split(self, params, state, layer, x):
    """The user's ``(features, head)`` pair must compose to ``apply_fn``:
    checked once per layer, on the first two examples of the first concrete
    batch (else conductance would explain another model)."""
    if layer in self._verified:
      return
    x = jax.tree.map(lambda a: jnp.asarray(a)[:2], x)
    whole = self.apply(params, state, x, train=False, key=None)[0]
    parts = self.head(params, state, self.features(params, state, x, layer), layer, None)
    whole, parts = jnp.asarray(whole), jnp.asarray(parts)
    if whole.shape != parts.shape or not jnp.allclose(whole, parts, rtol=1e-4, atol=1e-4):
      gap = (float(jnp.max(jnp.abs(whole - parts))) if whole.shape == parts.shape
             else f"shape {tuple(parts.shape)} against {tuple(whole.shape)}")
      raise ValueError(
          f"splits[{layer!r}] does not compose to the model: head(features(x)) differs "
          f"from apply_fn(x) (largest difference {gap}); give the (features, head) pair "
          "whose composition is the model.")
    self._verified.add(layer)

  def describe(self):
    return {"adapter": "functions", "layers": list(self.layers),
            "stateful": self.stateful}


def from_functions(apply_fn: Callable, params, state=None, *,
                   splits: Mapping[str, tuple[Callable, Callable]] | None = None,
                   class_names: Sequence[str] | None = None,
                   input_shape: Sequence[int] | None = None,
                   num_classes: int | None = None,
                   recipe: str | None = None,
                   input_range: tuple[float, float] | None = (0.0, 1.0)) -> Classifier:
  """A plain-JAX model as a :class:`Classifier`.

  Its keyword-only parameters each state one optional fact about the model (split points, class
  names, input shape and range, number of classes, recipe), as for :func:`from_nnx`.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits`` for a batch; with ``state``,
      ``apply_fn(params, state, x, train) -> (logits, new_state)``.
    params: its weights (any pytree).
    state: optional non-trainable state (any pytree).
    splits: ``{name: (features, head)}`` with ``features(params, x) -> h`` and
      ``head(params, h) -> logits`` (``(params, state, ...)`` with state),
      input side first.
    class_names, input_shape, num_classes: static facts.
    input_range: as in :func:`from_nnx` (``None`` for inputs on another scale).

  Returns:
    A :class:`Classifier` whose ``logits(x)`` is ``apply_fn(params, x)``.

  Example:
    >>> import jax.numpy as jnp
    >>> w = jnp.array([[1.0, -1.0], [0.0, 2.0]])
    >>> clf = from_functions(lambda p, x: x @ p, w, input_shape=(2,), num_classes=2)
    >>> clf.logits(jnp.array([[1.0, 1.0]])).tolist()
    [[1.0, 1.0]]
  """
  _validation.check_signature(
      "apply_fn", apply_fn, 2 if state is None else 4,
      "apply_fn(params, x) -> logits" if state is None else
      "apply_fn(params, state, x, train) -> (logits, new_state) (state was given)")
  if params is None:
    raise TypeError("params must be the model's weights (any pytree of arrays) that apply_fn "
                    "reads as its first argument; got None.")
  for name, tree in (("params", params), ("state", state)):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    _validation.check_array_leaves(name, [jax.tree_util.keystr(p) for p, _ in flat],
                                   [v for _, v in flat])
  if splits is not None and not (isinstance(splits, Mapping) and all(
      isinstance(k, str) for k in splits)):
    got = (f"a {type(splits).__name__} of {len(splits)}" if isinstance(splits, (tuple, list))
           else type(splits).__name__)
    raise TypeError(
        "splits must be a mapping {layer name: (features, head)}, e.g. splits={'hidden': "
        f"(features, head)}}, with string names; got {got}"
        + (" (a name for the pair is needed)." if isinstance(splits, (tuple, list)) else "."))
  splits = dict(splits or {})
  for name, pair in splits.items():
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(map(callable, pair))):
      raise TypeError(
          f"splits[{name!r}] must be a (features, head) pair of functions; got {pair!r}.")
    for part, fn in zip(("features", "head"), pair):
      _validation.check_signature(
          f"splits[{name!r}]'s {part}", fn, 2 if state is None else 3,
          f"{part}(params, {'x' if part == 'features' else 'h'})" if state is None else
          f"{part}(params, state, {'x' if part == 'features' else 'h'})")
  backend = FunctionBackend(apply_fn, splits, stateful=state is not None)
  return _classifier(params, state, _spec(backend, class_names, input_shape,
                                          num_classes, recipe, input_range))
