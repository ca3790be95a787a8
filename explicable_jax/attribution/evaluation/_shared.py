"""What every evaluation metric shares: the model's target scores, per-example
keys, inputs given as one array or Captum's tuple of arrays, maps whose shape
is a prefix of the input's, and the loop over chunks of perturbation samples."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import _validation, models
from explicable_jax.attribution import _common
from explicable_jax import _class_index

__all__ = [
    "Inputs", "check_samples", "check_target", "example_keys", "expand", "flat", "forward",
    "jit_call", "like_inputs", "model_value", "over_samples", "per_example_baselines",
    "safe_div", "sample_keys", "samples_per_chunk", "scores", "split_model", "split_target",
    "targets", "with_precision",
]


def model_value(name: str, model):
  """``model`` as a :class:`~explicable_jax.models.Classifier` (anything
  :func:`~explicable_jax.models.as_classifier` takes) or, failing that, the
  batch function it is."""
  try:
    return models.as_classifier(name, model)
  except TypeError:
    if callable(model):
      _validation.check_signature(name, model, 1, "x -> (N, C) class scores")
      return model
    raise


def forward(model) -> Callable:
  """The batch function of a :func:`model_value`: a classifier's logits."""
  return model.logits if isinstance(model, models.Classifier) else model


def jit_call(core: Callable, *, dynamic: dict, static: dict):
  """``core(**dynamic, **static)`` as one jitted computation, at the
  attribution precision: ``dynamic`` holds arrays and classifiers (traced, so
  new weights or inputs of the same shapes reuse the compilation),
  ``static`` functions and options (hashed: pass long-lived functions to
  reuse a compilation across calls). A classifier is dynamic, a plain model
  function static: :func:`split_model` sorts them."""
  items = tuple(sorted(static.items(), key=lambda kv: kv[0]))
  return with_precision(lambda: _jitted(core, items, dynamic))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _jitted(core, static_items, dynamic):
  return core(**dynamic, **dict(static_items))


def split_model(name: str, model) -> tuple[dict, dict]:
  """``({"model": clf}, {})`` for a classifier, ``({}, {"model": fn})`` for a
  function: the ``dynamic`` and ``static`` parts for :func:`jit_call`."""
  m = model_value(name, model)
  return ({"model": m}, {}) if isinstance(m, models.Classifier) else ({}, {"model": m})


def split_target(target) -> tuple[dict, dict]:
  """``target`` as a :func:`jit_call` part: names, ints and ``None`` static,
  arrays dynamic."""
  if target is None or isinstance(target, (str, int, np.integer)):
    return {}, {"target": target if not isinstance(target, np.integer) else int(target)}
  return {"target": jnp.asarray(target)}, {}


def check_target(fn: Callable, inputs: Inputs, target) -> None:
  """Checks ``target`` against the model's output shape on the host (no
  forward pass): inside the jitted metric a traced target is not checked."""
  if isinstance(target, str):
    _validation.check_choice("target", target, ("predicted",))
    return
  out = jax.eval_shape(fn, inputs.value)
  if target is None or len(out.shape) != 2:
    targets(fn, inputs, target)
    return
  _common.resolve_target(target, out.shape, lambda: None)


class Inputs:
  """A batch given as one array or as Captum's tuple of arrays (one leading
  axis ``N`` for all); ``wrap`` gives a user's function what it was given."""

  def __init__(self, name: str, x):
    self.multi = _common.is_multi(x)
    leaves = _common._leaves(name, x, batched=True) if self.multi else (
        _common.check_input(name, x, min_rank=1),)
    self.leaves = tuple(_common.check_input(f"{name}[{i}]" if self.multi else name, a,
                                            min_rank=1)
                        for i, a in enumerate(leaves))
    self.n = self.leaves[0].shape[0]

  def wrap(self, leaves):
    return tuple(leaves) if self.multi else leaves[0]

  def unwrap(self, x) -> tuple:
    return tuple(x) if self.multi else (x,)

  @property
  def value(self):
    return self.wrap(self.leaves)


def like_inputs(name: str, values, inputs: Inputs, *, prefix: bool = False) -> tuple:
  """``values`` (an array, or a tuple like the inputs) as a tuple of arrays,
  one per input, each of that input's shape (or, with ``prefix``, that shape
  without its last axis, for inputs of rank 3 or more: a pixel map
  ``(N, H, W)`` of ``(N, H, W, C)`` images, a token map ``(N, T)`` of
  ``(N, T, E)`` embeddings). Other shapes, such as a layer's ``(N, units)``
  attribution, are refused naming the layer case."""
  parts = tuple(values) if inputs.multi else (values,)
  if inputs.multi and (not _common.is_multi(values) or len(parts) != len(inputs.leaves)):
    raise ValueError(f"{name} must be a tuple of {len(inputs.leaves)} arrays, one per input; "
                     f"got {type(values).__name__}.")
  out = []
  for i, (v, x) in enumerate(zip(parts, inputs.leaves)):
    v = jnp.asarray(v)
    ok = v.shape == x.shape or (prefix and x.ndim >= 3 and v.shape == x.shape[:-1])
    if not ok:
      want = (f"{tuple(x.shape)} or {tuple(x.shape[:-1])} (one value per pixel)"
              if prefix and x.ndim >= 3 else f"{tuple(x.shape)}")
      label = f"{name}[{i}]" if inputs.multi else name
      layer = (" (a layer's attribution? these metrics remove input features, so they take "
               "an input attribution)" if v.ndim >= 1 and v.shape[:1] == x.shape[:1] else "")
      raise ValueError(f"{label} must have shape {want}, the input's; got shape "
                       f"{tuple(v.shape)}{layer}.")
    out.append(v)
  return tuple(out)


def expand(a: jax.Array, ndim: int) -> jax.Array:
  """``a`` with trailing axes added up to ``ndim`` (a prefix-shaped map
  broadcast over the input's remaining axes)."""
  return a.reshape(a.shape + (1,) * (ndim - a.ndim))


def per_example_baselines(baselines, inputs: Inputs) -> tuple:
  """Captum's baselines as one ``(N, ...)`` array per input: ``None`` (zeros),
  a scalar, one example's shape (shared) or one per example."""
  parts = (tuple(baselines) if inputs.multi and _common.is_multi(baselines)
           else (baselines,) * len(inputs.leaves))
  if len(parts) != len(inputs.leaves):
    raise ValueError(f"baselines must have one entry per input ({len(inputs.leaves)}); "
                     f"got {len(parts)}.")
  return tuple(_common.resolve_baselines(b, x, batched=True)
               for b, x in zip(parts, inputs.leaves))


def targets(fn: Callable, inputs: Inputs, target) -> jax.Array | None:
  """Per-example class indices ``(N,)``, or ``None`` for a model that returns
  one score per example (Captum's ``target=None``)."""
  out = jax.eval_shape(fn, inputs.value)
  if target is None:
    if out.shape not in ((inputs.n,), (inputs.n, 1)):
      raise ValueError(
          f"target=None needs a model that returns one score per example, ({inputs.n},); "
          f"it returns shape {tuple(out.shape)}: pass target= (a class, {inputs.n} classes "
          "or 'predicted').")
    return None
  if len(out.shape) != 2 or out.shape[0] != inputs.n:
    raise ValueError(f"the model must return (batch, classes) scores; got shape "
                     f"{tuple(out.shape)} for a batch of {inputs.n}.")
  return _common.resolve_target(target, out.shape, lambda: fn(inputs.value))


def scores(fn: Callable, x, t: jax.Array | None, *, softmax: bool = False) -> jax.Array:
  """``(M,)`` target scores of a batch (probabilities with ``softmax``)."""
  out = fn(x)
  if t is None:
    return out.reshape(out.shape[0])
  if softmax:
    out = jax.nn.softmax(out, axis=-1)
  return _class_index.entries(out, t)


def example_keys(key: jax.Array, n: int) -> jax.Array:
  """``fold_in(key, i)`` for every example ``i``: an example's draws do not
  depend on how the batch was cut."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))


def sample_keys(key: jax.Array, n: int, js: jax.Array, n_samples: int) -> jax.Array:
  """``(k, n)`` keys: draw ``j`` of example ``i`` uses
  ``fold_in(key, i * n_samples + j)`` (one hash per draw; an example's draws
  do not depend on how the batch or the draws were cut)."""
  return jax.vmap(lambda j: jax.vmap(lambda i: jax.random.fold_in(key, i * n_samples + j))(
      jnp.arange(n)))(js)


def samples_per_chunk(max_examples_per_batch: int | None, n: int, n_samples: int) -> int:
  """Captum's ``max_examples_per_batch``: rows (examples x samples) per forward
  pass, at least one sample of every example and at most all of them."""
  if max_examples_per_batch is None:
    return n_samples
  _validation.check_positive("max_examples_per_batch", max_examples_per_batch, integer=True)
  return int(min(max(int(max_examples_per_batch) // n, 1), n_samples))


def over_samples(fn: Callable[[jax.Array], Any], n_samples: int, per_chunk: int) -> Any:
  """``fn(js)`` for the sample indices ``0..n_samples-1``, ``per_chunk`` at a
  time; ``fn`` returns a pytree of ``(k, ...)`` arrays, and the result stacks
  them to ``(n_samples, ...)``. Chunks run one after another (unrolled when
  few, see ``_common.scan_chunks``); a last partial chunk is padded
  (``_common.pad_to_chunks``) and the padding's results are dropped."""
  js = jnp.asarray(_common.pad_to_chunks(np.arange(n_samples), per_chunk))  # jnp.arange's dtype
  _, out = _common.scan_chunks(lambda c, j: (c, fn(j)), 0, js)
  return jax.tree.map(lambda o: o.reshape((-1,) + o.shape[2:])[:n_samples], out)


def warn_constant_maps(fn_name: str, maps, consequence: str) -> None:
  """Warns naming the examples whose attribution map is constant (all-zero,
  say): it ranks no feature above another, so a metric that reads the map's
  order or maximum measures the tie order, not the map (``consequence`` says
  what that does to ``fn_name``'s result). Concrete maps only."""
  if isinstance(maps, jax.core.Tracer):
    return
  flat_maps = np.asarray(maps).reshape(np.shape(maps)[0], -1) if np.ndim(maps) else None
  if flat_maps is None or not flat_maps.size:
    return
  rows = np.flatnonzero(flat_maps.min(1) == flat_maps.max(1))
  if rows.size:
    import warnings
    shown = ", ".join(map(str, rows[:10])) + (" ..." if rows.size > 10 else "")
    warnings.warn(f"{fn_name}: {rows.size} of {flat_maps.shape[0]} maps ({shown}) are constant, "
                  f"so {consequence}: such a map points nowhere.",
                  UserWarning, stacklevel=_validation.user_stacklevel())


def check_samples(name: str, value) -> int:
  _validation.check_positive(name, value, integer=True)
  return int(value)


def flat(parts: tuple, n: int) -> jax.Array:
  """One ``(n, D)`` row per example: the inputs' values side by side."""
  return jnp.concatenate([p.reshape(n, -1) for p in parts], axis=1)


def safe_div(num: jax.Array, den: jax.Array, default: float = 1.0) -> jax.Array:
  """``num / den``, dividing by ``default`` where ``den == 0`` (Captum's
  ``safe_div``)."""
  return num / jnp.where(den == 0, jnp.asarray(default, den.dtype), den)


def with_precision(call: Callable):
  """Runs ``call`` at the attribution precision (``attribution.precision``)."""
  return _common.at_precision(call)


EXPLAIN_FORM = "explanation_func(model, x, target) -> maps (N, ...)"


@functools.lru_cache(maxsize=64)
def _keyword_target(explanation_func: Callable) -> Callable:
  """``explain(model, x, target)`` calling ``explanation_func(model, x,
  target=target)``: one wrapper per function (cached), so the jitted metrics
  that take it as a static argument compile once for it, not on every call."""
  return functools.wraps(explanation_func)(
      lambda model, x, target: explanation_func(model, x, target=target))


def check_explanation_func(explanation_func) -> Callable:
  """The explanation's calling form, checked at every public entry; returns
  it as ``explain(model, x, target)``. A function whose ``target`` is
  keyword-only (the library's own ``attribution.batched.*`` methods) is
  called with ``target=``."""
  try:
    sig = inspect.signature(explanation_func)
  except (TypeError, ValueError):
    sig = None
  if sig is not None and callable(explanation_func):
    try:
      sig.bind(None, None, None)
    except TypeError:
      try:
        sig.bind(None, None, target=None)
      except TypeError:
        pass
      else:
        return _keyword_target(explanation_func)
  _validation.check_signature("explanation_func", explanation_func, 3, EXPLAIN_FORM)
  return explanation_func


def explained(explain: Callable, model, x, target, n: int, *, input_shaped: bool = False):
  """``explain(model, x, target)``, checked to be maps: every leaf an array
  with a batch axis of ``n`` rows and, for inputs with more axes than the
  batch's, at least one axis more (a ``(N,)`` map of images is a score per
  example, not a map; Captum's ``(N,)`` inputs have ``(N,)`` maps). Shapes are static, so the
  check also runs under tracing. ``input_shaped``: the metric reads the maps
  in the inputs' layout (sensitivity), so they must have the inputs' shape or
  a leading part of it (a layer's map is refused there, kept elsewhere)."""
  out = explain(model, x, target)
  min_rank = min(2, max(jnp.ndim(a) for a in jax.tree.leaves(x)))
  for leaf in jax.tree.leaves(out):
    shape = tuple(jnp.shape(leaf))
    if len(shape) < min_rank or not shape or shape[0] != n:
      raise ValueError(
          f"explanation_func must return attribution maps (N, ...) with N = {n} rows and "
          f"the inputs' axes; it returned shape {shape}. Form: {EXPLAIN_FORM}.")
    x_shape = tuple(jnp.shape(x)) if not isinstance(x, (tuple, list)) else None
    if input_shaped and x_shape is not None and shape != x_shape[:len(shape)]:
      raise ValueError(
          f"explanation_func must return maps of the inputs' shape {x_shape} or of a leading "
          f"part of it (pixel maps of images); it returned shape {shape}. Form: "
          f"{EXPLAIN_FORM}.")
  return out
