"""Deliberative explanations: where and between which classes a network hesitates.

Wang and Vasconcelos, "Deliberative Explanations: visualizing network
insecurities" (NeurIPS 2019; code ``peiwang062/Deliberative-explanation``).
For an image, at a feature layer ``a`` of shape ``(H, W, C)``:

1. a **difficulty score** ``s(x)`` of the prediction (:func:`hesitancy`,
   :func:`normalized_entropy`, or a learned hardness score) and its
   attribution map ``d(i, j)``;
2. the attribution maps ``m_k(i, j)`` of the top-K classes;
3. **candidate ambiguities**: at each location the ``top`` classes with the
   largest ``m_k``, every pair of them, unique over locations
   (:func:`class_ambiguities`; the original: top-3 of the top-5);
4. an **insecurity** for each ambiguity ``(a, b)``: the map
   ``m_a * m_b * d`` (the original multiplies them), resized to the input
   and thresholded to its top-``r`` fraction (:func:`top_fraction_mask`).

Attribution maps (:func:`attribution_maps`): ``gradient`` (gradient x
activation summed over channels), ``integrated_gradients`` (layer IG, in
layer space, from the activations of a black image, summed over channels;
the original averages layer gradients along the input-space path instead)
or ``gradient_hessian`` (the second-order map of
:func:`explicable_jax.attribution.second_order_attribution`). As in the
original, the difficulty map sums only the positive per-channel
contributions (for ``gradient``: the gradient clipped at 0, times the
activation), so it is non-negative and high where the image is hard; class
maps are clipped below at a small positive value (the original's ``1e-7``)
so that products stay meaningful.

One module, not a package (over 500 lines): the four steps above are one
pipeline whose functions call each other in order, and each is short; the
attribution methods it uses live in :mod:`explicable_jax.attribution`.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax import attribution as attribution_lib
from explicable_jax.attribution import layer as layer_attr
from explicable_jax.attribution import second_order as second_order_attr
from explicable_jax import _class_index

__all__ = [
    "ATTRIBUTIONS", "DIFFICULTIES", "HARDNESS_LOSSES", "IG_SPACES", "MAP_FLOOR", "MAP_METHODS",
    "SECOND_ORDER_TERMS", "attribution_maps", "check_attribution_args", "class_ambiguities",
    "difficulty_score", "hardness_difficulty", "hesitancy", "insecurities",
    "make_hardness_loss", "normalized_entropy", "random_region", "score_insecurity",
    "split_hardness_output", "top_fraction_mask",
]

DIFFICULTIES = ("hesitancy", "entropy")
ATTRIBUTIONS = ("gradient", "integrated_gradients", "gradient_hessian")
MAP_FLOOR = 1e-7


# ---------------------------------------------------------------------------
# Difficulty scores.


def _check_classes(logits) -> None:
  if jnp.ndim(logits) < 1 or jnp.shape(logits)[-1] < 2:
    raise ValueError(f"logits must end in a class axis of at least 2 classes; got shape "
                     f"{tuple(jnp.shape(logits))}.")


@conventions.boundary(logits="logits")
def hesitancy(logits: ArrayLike) -> jax.Array:
  """``1 - max_y p_y``: 0 for a certain prediction, ``1 - 1/C`` at most.

  Args:
    logits: ``(N, C)`` class scores.

  Returns:
    ``(N,)`` in ``[0, 1 - 1/C]``.
  """
  _check_classes(logits)
  return 1.0 - jax.nn.softmax(logits, axis=-1).max(axis=-1)


@conventions.boundary(logits="logits")
def normalized_entropy(logits: ArrayLike) -> jax.Array:
  """``-1/log C * sum_y p_y log p_y``, in ``[0, 1]`` (1 = uniform).

  Args:
    logits: ``(N, C)`` class scores.

  Returns:
    ``(N,)`` in ``[0, 1]``.
  """
  logits = jnp.asarray(logits)
  _check_classes(logits)
  logp = jax.nn.log_softmax(logits, axis=-1)
  return -(jnp.exp(logp) * logp).sum(axis=-1) / jnp.log(logits.shape[-1])


def difficulty_score(name: str | Callable) -> Callable[[jax.Array], jax.Array]:
  """``logits (N, C) -> (N,)`` for a difficulty name, or the callable itself
  (e.g. a hardness predictor's output as a function of the logits)."""
  if callable(name):
    return name
  _validation.check_choice("difficulty", name, DIFFICULTIES)
  return hesitancy if name == "hesitancy" else normalized_entropy


# ---------------------------------------------------------------------------
# Attribution maps.


def _traced_shapes(features_fn, head_fn, x):
  """``(activations, logits)`` as shape structs: the one abstract trace of
  the model that every shape check of a call reads."""
  return jax.eval_shape(lambda v: (lambda a: (a, head_fn(a)))(features_fn(v)), jnp.asarray(x))


def _check_layer(activations) -> None:
  if len(activations.shape) != 4:
    raise ValueError("deliberative explanations need a convolutional feature layer "
                     f"(N, H, W, C); features_fn returns shape {tuple(activations.shape)}.")


def _check_difficulty(difficulty, head_fn, activations, *, own_head: bool = False) -> None:
  """A callable ``difficulty`` must map the head's outputs ``(N, C)`` to one
  score per example ``(N,)`` (checked on shapes only, from the layer's);
  ``own_head``: ``head_fn`` is the user's ``difficulty_head_fn``, whose
  outputs must be ``(N, C)``."""
  n = activations.shape[0]
  if own_head:
    try:
      out = jax.eval_shape(head_fn, activations)
    except Exception as e:  # noqa: BLE001 - reported with the form it must have
      raise ValueError(
          "difficulty_head_fn must be a function activations -> (N, C) outputs; calling it "
          f"on the layer's activations {tuple(activations.shape)} failed: {e}") from None
    if len(getattr(out, "shape", ())) != 2 or out.shape[0] != n:
      raise ValueError(
          "difficulty_head_fn must return (N, C) outputs, one row per example, for the "
          f"difficulty score to read; it returns shape {tuple(getattr(out, 'shape', ()))} "
          f"for the layer's activations {tuple(activations.shape)}.")
  if not callable(difficulty):
    return
  try:
    shape = jax.eval_shape(lambda a: difficulty(head_fn(a)), activations).shape
  except Exception as e:  # noqa: BLE001 - reported with the form it must have
    raise ValueError(f"difficulty must be a function outputs (N, C) -> (N,) difficulty "
                     f"scores; calling it on the head's outputs failed: {e}") from None
  if tuple(shape) != (n,):
    raise ValueError(
        f"difficulty must be a function outputs (N, C) -> (N,) difficulty scores, one per "
        f"example; it returns shape {tuple(shape)} for {n} examples (reduce over "
        f"the classes, e.g. deliberative.normalized_entropy).")


def _score_head(head_fn, score):
  """A one-output head whose logit is ``score(head_fn(a))``."""
  return lambda a: score(head_fn(a))[:, None]


def _input_path_gradients(features_fn, head_fn, x, target, n_steps, baseline=0.0):
  """The original's integrated gradients at a layer: the layer gradient of
  the target score at the ``n_steps + 1`` input-space points
  ``x0 + (i / n_steps)(x - x0)``, ``i = 0..n_steps``, averaged, times the
  activation difference ``a(x) - a(x0)`` (per channel)."""
  x0 = attribution_lib._common.resolve_baselines(baseline, x)
  alphas = jnp.arange(n_steps + 1, dtype=x.dtype) / n_steps

  def layer_grad(alpha):
    a = features_fn(x0 + alpha * (x - x0))
    return jax.grad(
        lambda h: _class_index.entries(head_fn(h), target).sum())(a)
  mean_g = jax.lax.map(layer_grad, alphas).mean(0)
  return (features_fn(x) - features_fn(x0)) * mean_g


def _map(features_fn, head_fn, x, target, method, *, clip_gradient=False, n_steps=20,
         internal_batch_size=None, ig_space="layer", second_order="signed"):
  """One attribution map per example, summed over channels. ``clip_gradient``
  marks the difficulty map (the original clips its per-channel contributions
  at 0, and with ``second_order="absolute"`` it alone gets the second-order
  term)."""
  if method == "gradient" or (method == "gradient_hessian" and second_order == "absolute"
                              and not clip_gradient):
    a = features_fn(x)
    g = jax.grad(lambda h: _class_index.entries(head_fn(h), target).sum())(a)
    if clip_gradient:
      g = jax.nn.relu(g)
    return (a * g).sum(-1)
  if method == "integrated_gradients":
    if ig_space == "input":
      per_channel = _input_path_gradients(features_fn, head_fn, x, target, n_steps)
    else:
      per_channel = layer_attr.layer_integrated_gradients(
          features_fn, head_fn, x, target=target, n_steps=n_steps,
          internal_batch_size=internal_batch_size)
  elif second_order == "absolute":
    # The original (insecurity_*_2ndG.py), for the difficulty map only:
    # sum_c relu(g_c) a_c + |a^T H a| / 2 per position.
    terms = second_order_attr.second_order_attribution(
        features_fn, head_fn, x, target=target, internal_batch_size=internal_batch_size,
        return_terms=True, per_channel=True)
    a = features_fn(x)
    g = jax.grad(lambda h: _class_index.entries(head_fn(h), target).sum())(a)
    return (jax.nn.relu(g) * a).sum(-1) + jnp.abs(terms.second.sum(-1)) / 2
  else:
    per_channel = second_order_attr.second_order_attribution(
        features_fn, head_fn, x, target=target, internal_batch_size=internal_batch_size,
        per_channel=True)
  if clip_gradient:  # the original clips each channel's contribution at 0
    per_channel = jax.nn.relu(per_channel)
  return per_channel.sum(-1)


MAP_METHODS = ("gradient", "integrated_gradients", "gradient_hessian")
"""Attributions of the class and difficulty maps."""

_MAP_OPTIONS = ("difficulty", "method", "top_k", "n_steps", "difficulty_head_fn",
                "internal_batch_size", "ig_space", "second_order")

IG_SPACES = ("layer", "input")
"""``integrated_gradients`` paths: ours in layer space, the original's in input space."""
SECOND_ORDER_TERMS = ("signed", "absolute")
"""``gradient_hessian`` forms: ours (signed, every map) or the original's."""


def _model_args(model, args, layer):
  """``(features_fn, head_fn, x, clf)`` from either call form: ``(features_fn,
  head_fn, x)`` or ``(clf, x)`` with ``layer=`` (``clf`` is None in the first)."""
  from explicable_jax.models import Classifier
  if isinstance(model, Classifier):
    if len(args) != 1:
      raise TypeError(
          f"with a Classifier, pass (clf, x, layer=...); got {1 + len(args)} positional "
          "arguments.")
    if layer is None:
      raise ValueError(f"layer is required with a Classifier; one of {', '.join(model.layers)}.")
    features_fn, head_fn = model.split(layer)
    return features_fn, head_fn, conventions.check_images(
        "x", args[0], input_shape=model.input_shape, strict_range=False), model
  if layer is not None:
    raise ValueError("layer= is only for a Classifier; with (features_fn, head_fn, x) the "
                     "split is already made.")
  if len(args) != 2:
    raise TypeError(
        f"pass (features_fn, head_fn, x) or (clf, x, layer=...); got {1 + len(args)} "
        "positional arguments.")
  owner = conventions.classifier_of(model)  # a Classifier's split: its input rules
  x = (conventions.check_model_inputs("x", args[1], owner) if owner is not None
       else conventions.check_batch("x", args[1]))
  if np.ndim(x) != 4:
    raise conventions.ConventionError(
        f"x must be an image batch (N, H, W, C); got shape {np.shape(x)}"
        + (" (one image? add the batch axis: x[None])" if np.ndim(x) == 3 else "") + ".")
  return model, args[0], x, None


@conventions.host_side
def attribution_maps(model: Any, *args, layer: str | None = None,
                     difficulty: str | Callable = "entropy",
                     method: str = "gradient", top_k: int = 5, n_steps: int = 20,
                     difficulty_head_fn: Callable | None = None,
                     internal_batch_size: int | None = None,
                     ig_space: str = "layer", second_order: str = "signed"):
  """Class maps of the top-K predicted classes and the difficulty map.

  Call as ``attribution_maps(features_fn, head_fn, x, ...)`` or
  ``attribution_maps(clf, x, layer=..., ...)`` with a
  :class:`~explicable_jax.models.Classifier`. Jitted: the classifier crosses
  ``jit`` as an argument (one compilation for any params); a
  ``(features_fn, head_fn)`` pair is a static argument, so pass long-lived
  functions (a new closure per call compiles per call).

  Its keyword-only parameters are the settings of Wang and Vasconcelos's maps (layer,
  difficulty, method, ``top_k``, path steps, integrated-gradients space, second-order terms),
  shared with :func:`insecurities`.

  Args:
    features_fn, head_fn: the model split at the feature layer
      (``clf.split(layer)``), evaluation mode; or a
      Classifier and ``layer``, the name of the feature layer.
    x: ``(N, ...)`` inputs.
    difficulty: ``hesitancy``, ``entropy`` or a callable ``logits -> (N,)``.
    method: ``gradient``, ``integrated_gradients`` or ``gradient_hessian``.
    top_k: how many of the most probable classes get a map.
    n_steps: integration steps for ``integrated_gradients``.
    difficulty_head_fn: the head whose outputs ``difficulty`` reads, when
      it is not ``head_fn`` (e.g. the full ``C + 1`` outputs of a
      hardness-predicting model, with ``head_fn`` its ``C`` class logits).
    internal_batch_size: bounds memory; passed on to the attribution
      (``integrated_gradients``: rows = examples x steps per pass;
      ``gradient_hessian``: positions whose Hessian-vector products run at
      once). ``None``: everything in one pass.
    ig_space: ``integrated_gradients`` path. ``"layer"`` (default): layer
      IG from the black image's activations, ``n_steps`` points of the
      quadrature rule. ``"input"``: the original's
      (``insecurity_*_IG.py``): the layer gradient averaged over the
      ``n_steps + 1`` input-space points from a black image to ``x`` (the
      original: ``n_steps=50``, 51 points), times ``a(x) - a(black)``.
    second_order: ``gradient_hessian`` form. ``"signed"`` (default): every
      map is equation 7, ``g^T a + a^T H a / 2`` (per channel, the difficulty
      map clipped per channel). ``"absolute"``: the original's
      (``insecurity_*_2ndG.py``): class maps first order only, the
      difficulty map ``sum_c relu(g_c) a_c + |a^T H a| / 2``.

  With a head that is piecewise linear in the layer (ReLU and linear layers
  up to the logits), the Hessian of a class logit is zero almost
  everywhere, so the ``gradient_hessian`` class maps equal the ``gradient``
  ones; the second-order term then acts through the difficulty score (a
  non-linear function of the logits) alone.

  Returns:
    ``(classes, class_maps, difficulty_map)``: ``(N, K)`` class indices by
    decreasing probability, ``(N, K, H, W)`` maps (floored at ``1e-7``) and
    ``(N, H, W)``.
  """
  features_fn, head_fn, x, clf = _model_args(model, args, layer)
  return _attribution_maps(features_fn, head_fn, x, clf,
                           _traced_shapes(features_fn, head_fn, x), layer=layer,
                           difficulty=difficulty, method=method, top_k=top_k,
                           n_steps=n_steps, difficulty_head_fn=difficulty_head_fn,
                           internal_batch_size=internal_batch_size, ig_space=ig_space,
                           second_order=second_order)


def _attribution_maps(features_fn, head_fn, x, clf, shapes, *, layer, difficulty, method,
                      top_k, n_steps=20, difficulty_head_fn, internal_batch_size,
                      ig_space="layer", second_order="signed"):
  """:func:`attribution_maps` after its call form is read; ``shapes`` are
  the model's :func:`_traced_shapes` on ``x``."""
  _validation.check_choice("method", method, MAP_METHODS)
  _validation.check_choice("ig_space", ig_space, IG_SPACES)
  _validation.check_choice("second_order", second_order, SECOND_ORDER_TERMS)
  _validation.check_positive("n_steps", n_steps, integer=True)
  _validation.check_positive("top_k", top_k, integer=True)
  _check_method_options(method, ig_space=ig_space, second_order=second_order, n_steps=n_steps)
  if difficulty_head_fn is not None:
    _validation.check_signature("difficulty_head_fn", difficulty_head_fn, 1,
                                "activations -> the outputs difficulty reads")
  activations, logits = shapes
  _check_difficulty(difficulty, difficulty_head_fn or head_fn, activations,
                    own_head=difficulty_head_fn is not None)
  if internal_batch_size is not None:
    _validation.check_positive("internal_batch_size", internal_batch_size, integer=True)
  classes = logits.shape[-1]
  if top_k > classes:
    raise ValueError(f"top_k must be at most the model's {classes} classes; got {top_k}.")
  options = dict(difficulty=difficulty, method=method, top_k=top_k, n_steps=n_steps,
                 difficulty_head_fn=difficulty_head_fn,
                 internal_batch_size=internal_batch_size, ig_space=ig_space,
                 second_order=second_order)
  # At the attribution precision, entered outside the jitted maps so that the
  # setting is part of their compilation cache key.
  if clf is not None:
    return attribution_lib.at_precision(
        lambda: _maps_of_classifier(clf, x, layer=layer, **options))
  return attribution_lib.at_precision(lambda: _maps_of_pair(features_fn, head_fn, x, **options))


_METHOD_OPTIONS = {"ig_space": ("integrated_gradients", "layer"),
                   "n_steps": ("integrated_gradients", 20),
                   "second_order": ("gradient_hessian", "signed")}


def _check_method_options(method: str, **given) -> None:
  """An option of one map method given (not at its default) with another
  method would be ignored: refused, naming the method that reads it."""
  for name, value in given.items():
    reads, default = _METHOD_OPTIONS[name]
    if method != reads and value != default:
      raise ValueError(
          f"{name} is read only with method={reads!r}; got {name}={value!r} with "
          f"method={method!r}, which ignores it: drop {name}, or pass method={reads!r}.")


def _maps(features_fn, head_fn, x, *, difficulty, method, top_k, n_steps,
          difficulty_head_fn, internal_batch_size, ig_space="layer", second_order="signed"):
  logits = head_fn(features_fn(x))
  classes = jax.lax.top_k(logits, top_k)[1]
  form = dict(n_steps=n_steps, internal_batch_size=internal_batch_size, ig_space=ig_space,
              second_order=second_order)
  maps = jnp.stack([_map(features_fn, head_fn, x, classes[:, k], method, **form)
                    for k in range(top_k)], axis=1)
  maps = jnp.maximum(maps, MAP_FLOOR)
  score = difficulty_score(difficulty)
  zero = jnp.zeros(x.shape[0], jnp.int32)
  dmap = _map(features_fn, _score_head(difficulty_head_fn or head_fn, score), x, zero, method,
              clip_gradient=True, **form)
  return classes, maps, dmap


_maps_of_pair = jax.jit(_maps, static_argnames=("features_fn", "head_fn", *_MAP_OPTIONS))


@functools.partial(jax.jit, static_argnames=("layer", *_MAP_OPTIONS))
def _maps_of_classifier(clf, x, *, layer, **options):
  return _maps(*clf.split(layer), x, **options)


@conventions.boundary(x="batch")
def check_attribution_args(features_fn: Callable, x: ArrayLike, *, top_k: int,
                           num_classes: int) -> None:
  """Host-side checks of :func:`attribution_maps`' arguments."""
  _check_top_k(top_k, num_classes)
  _check_layer(jax.eval_shape(features_fn, jnp.asarray(x)))


def _check_top_k(top_k, num_classes: int) -> None:
  _validation.check_positive("top_k", top_k, integer=True)
  if not 2 <= top_k <= num_classes:
    raise ValueError(
        f"top_k must be between 2 and the {num_classes} classes; got {top_k}"
        + (" (the default, for models of at least 5 classes): pass top_k= at most "
           f"{num_classes}" if top_k == 5 else "") + ".")


# ---------------------------------------------------------------------------
# Ambiguities and insecurities.


@conventions.boundary(class_maps="maps")
def class_ambiguities(class_maps: ArrayLike, top: int = 3) -> jax.Array:
  """Candidate ambiguities: ``(N, K, K)`` booleans, ``[n, a, b]`` (``a < b``)
  true when classes ``a`` and ``b`` (indices into the top-K list) are both
  among the ``top`` largest class maps at some location of image ``n``.

  A fixed-shape (jittable) form of the original's unique list of pairs.

  Args:
    class_maps: ``(N, K, H, W)`` attribution maps of the top-K classes.
    top: the classes kept at each location, ``2 <= top <= K``.

  Returns:
    ``(N, K, K)`` booleans, upper triangle only.
  """
  class_maps = jnp.asarray(class_maps)
  _validation.check_rank("class_maps", class_maps.shape, (4,))
  k = class_maps.shape[1]
  if not 2 <= top <= k:
    raise ValueError(f"top must be between 2 and the {k} class maps; got {top}.")
  maps = jnp.moveaxis(class_maps, 1, -1)  # (N, H, W, K)
  ranks = jnp.argsort(jnp.argsort(-maps, axis=-1), axis=-1)
  in_top = ranks < top  # (N, H, W, K)
  both = in_top[..., :, None] & in_top[..., None, :]
  pairs = both.any(axis=(1, 2))
  return pairs & jnp.triu(jnp.ones((k, k), bool), 1)[None]


@conventions.boundary(maps="maps")
def top_fraction_mask(maps: ArrayLike, r: float) -> jax.Array:
  """Boolean masks keeping exactly ``round(r * H * W)`` (at least 1) pixels
  of each ``(..., H, W)`` map: its largest values, ties broken by position.

  Args:
    maps: ``(..., H, W)`` maps.
    r: the fraction kept, in ``(0, 1)``.

  Returns:
    Booleans of ``maps``' shape.
  """
  maps = jnp.asarray(maps)
  _validation.check_fraction("r", r, closed=False)
  if maps.ndim < 2:
    raise ValueError(f"maps must be (..., H, W) maps; got shape {tuple(maps.shape)}.")
  if maps.ndim >= 4 and maps.shape[-1] == 1:  # NHWC with one channel: W would be 1
    raise ValueError(f"maps must be (..., H, W) maps, channel axis dropped; got shape "
                     f"{tuple(maps.shape)}, which reads as {maps.shape[-2]}x1 maps: pass "
                     "maps[..., 0].")
  h, w = maps.shape[-2:]
  k = max(1, int(round(r * h * w)))
  flat = maps.reshape(-1, h * w)
  _, idx = jax.lax.top_k(flat, k)
  mask = jnp.zeros(flat.shape, bool).at[jnp.arange(flat.shape[0])[:, None], idx].set(True)
  return mask.reshape(maps.shape)


@functools.partial(jax.jit, static_argnames=("size",))
def insecurity_maps(class_maps: ArrayLike, difficulty_map: ArrayLike,
                    size: tuple[int, int]) -> jax.Array:
  """``(N, K, K, *size)``: ``m_a * m_b * d`` for every class pair, resized
  bilinearly to ``size`` (the input's height and width).

  Args:
    class_maps: ``(N, K, h, w)`` top-K class maps at the layer.
    difficulty_map: ``(N, h, w)`` the difficulty score's map.
    size: ``(H, W)``, the input's height and width.

  Returns:
    ``(N, K, K, H, W)``.
  """
  class_maps = jnp.asarray(class_maps)
  difficulty_map = jnp.asarray(difficulty_map)
  _validation.check_rank("class_maps", class_maps.shape, (4,))
  _validation.check_rank("difficulty_map", difficulty_map.shape, (3,))
  n, k, h, w = class_maps.shape
  if difficulty_map.shape != (n, h, w):
    raise ValueError(
        f"difficulty_map must be (N, h, w) = {(n, h, w)}, one map per example at the class "
        f"maps' size (class_maps is (N, K, h, w) = {tuple(class_maps.shape)}); got shape "
        f"{tuple(difficulty_map.shape)}: pass the two maps of one attribution_maps call.")
  size = _validation.check_size("size", size)
  prod = class_maps[:, :, None] * class_maps[:, None, :] * difficulty_map[:, None, None]
  return jax.image.resize(prod, (n, k, k, *size), "bilinear")


@conventions.host_side
def insecurities(model: Any, *args, layer: str | None = None, r: float = 0.2,
                 difficulty: str | Callable = "entropy",
                 method: str = "gradient", top_k: int = 5, top: int = 3,
                 num_classes: int | None = None, difficulty_head_fn: Callable | None = None,
                 internal_batch_size: int | None = None) -> list[list[dict]]:
  """The insecurities of every image of a batch.

  Returns, per image, a list of ``{"mask": (H, W) bool, "class_a": int,
  "class_b": int, "strength": float}`` (classes as model class indices;
  strength = mean insecurity inside the region), strongest first. The maps
  are computed in jitted calls for the whole batch; only the final list is
  built on the host. ``difficulty_head_fn``, ``internal_batch_size``: see
  :func:`attribution_maps`.
  To threshold one computation at several ``r``, call
  :func:`attribution_maps`, :func:`insecurity_maps` and
  :func:`top_fraction_mask` directly. Call as ``insecurities(features_fn,
  head_fn, x, ...)`` or ``insecurities(clf, x, layer=..., ...)``.

  .. math:: \\mathrm{ins}_{ab} = m_a \\, m_b \\, d

  Its keyword-only parameters are the settings of Wang and Vasconcelos's procedure (layer,
  region fraction ``r``, difficulty, attribution method, ``top_k`` and ``top`` classes), with
  the original's values as defaults, shared with :func:`attribution_maps`.

  Args:
    model: a :class:`~explicable_jax.models.Classifier` (then ``x`` and
      ``layer=``) or ``features_fn`` (then ``head_fn, x``).
    *args: ``x`` ``(N, H, W, C)``, or ``head_fn, x``.
    layer: the layer whose activations are attributed (with a classifier).
    r: the fraction of each insecurity map kept as its region.
    difficulty: the difficulty score (``"entropy"``, ...) whose map is ``d``.
    method: how class maps ``m_a`` are computed (:data:`MAP_METHODS`).
    top_k: the number of top-scoring classes mapped.
    top: the number of classes among them paired as ambiguities.
    num_classes: the number of classes (defaults to the head's outputs).

  Returns:
    Per image, a list of ``{"mask", "class_a", "class_b", "strength"}``
    dicts, strongest first.

  Example:
    >>> import jax.numpy as jnp
    >>> features = lambda x: x  # the "layer" is the input itself
    >>> head = lambda a: a.mean((1, 2)) @ jnp.diag(jnp.array([2.0, 2.0, 1.5]))
    >>> x = jnp.zeros((1, 4, 4, 3)).at[0, :2, :, 0].set(1.0)  # class 0: top rows
    >>> x = x.at[0, :, :2, 1].set(1.0).at[0, :, :, 2].set(1.0)  # class 1: left columns
    >>> found = insecurities(features, head, x, top_k=3, top=2, r=0.25)
    >>> sorted((d["class_a"], d["class_b"]) for d in found[0])
    [(0, 1), (2, 0), (2, 1)]
    >>> found[0][0]["mask"].astype(int).tolist()  # where the evidence overlaps
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]

  Wang and Vasconcelos, "Deliberative explanations: visualizing network
  insecurities" (NeurIPS 2019).
  """
  features_fn, head_fn, x, clf = _model_args(model, args, layer)
  x = jnp.asarray(x)
  shapes = _traced_shapes(features_fn, head_fn, x)
  activations, logits = shapes
  if num_classes is not None and num_classes != logits.shape[-1]:
    raise ValueError(
        f"num_classes must be the model's number of class scores, {logits.shape[-1]} (or "
        f"None, read from the model); got {num_classes}.")
  _check_top_k(top_k, num_classes or logits.shape[-1])
  _check_layer(activations)
  _validation.check_fraction("r", r, closed=False)
  classes, maps, dmap = _attribution_maps(features_fn, head_fn, x, clf, shapes, layer=layer,
                                          difficulty=difficulty, method=method, top_k=top_k,
                                          difficulty_head_fn=difficulty_head_fn,
                                          internal_batch_size=internal_batch_size)
  pairs = np.asarray(class_ambiguities(maps, top))
  ins = insecurity_maps(maps, dmap, tuple(x.shape[1:3]))
  masks = np.asarray(top_fraction_mask(ins, r))
  ins = np.asarray(ins)
  classes = np.asarray(classes)
  out = []
  for n in range(x.shape[0]):
    items = []
    for a, b in zip(*np.nonzero(pairs[n])):
      m = masks[n, a, b]
      items.append({"mask": m, "class_a": int(classes[n, a]), "class_b": int(classes[n, b]),
                    "strength": float(ins[n, a, b][m].mean())})
    out.append(sorted(items, key=lambda d: -d["strength"]))
  return out


# ---------------------------------------------------------------------------
# A learned hardness score (Wang and Vasconcelos, "Towards realistic
# predictors", ECCV 2018).


@conventions.boundary(outputs="logits")
def split_hardness_output(outputs: ArrayLike, num_classes: int):
  """``(class_logits, hardness)`` of a model with ``num_classes + 1``
  outputs whose last output is the hardness predictor's logit;
  ``hardness = sigmoid(last)`` in ``(0, 1)``."""
  outputs = jnp.asarray(outputs)
  _validation.check_num_classes("num_classes", num_classes)
  if outputs.shape[-1] != num_classes + 1:
    raise ValueError(f"outputs must have num_classes + 1 = {num_classes + 1} columns "
                     f"(class logits, then the hardness logit); got {outputs.shape[-1]}.")
  return outputs[..., :num_classes], jax.nn.sigmoid(outputs[..., num_classes])


HARDNESS_LOSSES = ("bce", "original")


def make_hardness_loss(num_classes: int, *, predictor_weight: float = 1.0,
                       predictor_loss: str = "bce", bonus: float = 0.55,
                       press: float = 1.0) -> Callable:
  """Joint training of a classifier and its hardness predictor, as a loss for
  :func:`explicable_jax.training.make_train_step` (a model with
  ``num_classes + 1`` outputs; :func:`split_hardness_output`):

  .. math:: \\ell_i = \\bar s_i \\,\\mathrm{CE}(z_i, y_i) + w\\, L_{hp}(s_i, \\bar p_{y_i})

  The classifier's cross-entropy is weighted by the (stopped) hardness
  score ``s``, so hard examples count more. The bars are
  ``stop_gradient``: neither term trains the other's output. The
  predictor's loss ``L_hp`` (``predictor_loss``):

  * ``"bce"`` (default): ``BCE(s, 1 - p_y)``, the predictor learns the
    classifier's miss probability;
  * ``"original"``: the original's ``opposite_loss``
    (``cub200/train_hp_cub_vgg.py``): with ``p`` the true-class probability
    raised to at least ``bonus`` (0.55) where the prediction is right,

    .. math:: L_{hp} = \\omega_i \\big(1 - [(1 - p)\\, s + (1 - s)\\, p]\\big),

    ``omega_i = 2 w_1 / press`` where ``p > 0.5`` and ``2 w_2 press`` where
    ``p < 0.5``, ``w_1`` / ``w_2`` the batch's shares of ``p < 0.5`` /
    ``p > 0.5`` (class balance; padding rows excluded). It is linear in
    ``s``, so it pushes ``s`` to 1 on misclassified examples and to 0 on
    the rest.

  The original gives the predictor a trunk of its own; here the two heads
  share the model's trunk.
  """
  _validation.check_num_classes(
      "num_classes", num_classes, why="a classifier's classes, before the hardness output: "
      "with one class the cross-entropy is 0 and nothing is learned")
  _validation.check_nonnegative("predictor_weight", predictor_weight)
  _validation.check_choice("predictor_loss", predictor_loss, HARDNESS_LOSSES)
  _validation.check_fraction("bonus", bonus)
  _validation.check_positive("press", press)

  def loss(logits, batch, params=None):
    del params
    z, s = split_hardness_output(logits, num_classes)
    h = logits[..., num_classes]
    ce = -_class_index.entries(jax.nn.log_softmax(z), batch["y"])
    p_true = jnp.exp(-jax.lax.stop_gradient(ce))
    if predictor_loss == "bce":
      target = 1.0 - p_true
      hp = jnp.maximum(h, 0) - h * target + jnp.log1p(jnp.exp(-jnp.abs(h)))
    else:
      right = jnp.argmax(z, axis=-1) == batch["y"]
      p = jnp.where(right, jnp.maximum(p_true, bonus), p_true)
      real = batch.get("mask", jnp.ones(p.shape, bool)).astype(p.dtype)
      n = jnp.maximum(real.sum(), 1.0)
      w1 = ((p < 0.5).astype(real.dtype) * real).sum() / n
      w2 = ((p > 0.5).astype(real.dtype) * real).sum() / n
      omega = jnp.where(p > 0.5, w1 / press, jnp.where(p < 0.5, w2 * press, 0.0)) * 2.0
      hp = omega * (1.0 - ((1.0 - p) * s + (1.0 - s) * p))
    total = jax.lax.stop_gradient(s) * ce + predictor_weight * hp
    return total, {"cross_entropy": ce.mean(), "hardness": s.mean()}
  # The class logits are the first num_classes outputs: training and
  # evaluation count accuracy on them only, never on the hardness logit.
  setattr(loss, "num_classes", num_classes)
  return loss


def hardness_difficulty(num_classes: int) -> Callable[[jax.Array], jax.Array]:
  """The difficulty score of a hardness-predicting model for
  :func:`attribution_maps`: ``outputs -> sigmoid(outputs[:, C])``."""
  _validation.check_num_classes("num_classes", num_classes,
                                why="the class logits before the hardness output")
  return lambda outputs: split_hardness_output(outputs, num_classes)[1]


# ---------------------------------------------------------------------------
# Scoring insecurities against known parts (Wang and Vasconcelos, sec. 5).


@conventions.boundary(mask="mask", shared_slots="mask")
def score_insecurity(mask: ArrayLike, shared_slots: ArrayLike, part_centers: ArrayLike,
                     part_segments: ArrayLike | None = None) -> dict | None:
  """Precision, recall (and IoU) of one insecurity against ground-truth parts.

  As in the original's ``insecurity_extraction``: with ``C`` the centre
  points of the parts the two classes share (present in this image) and
  ``A`` the centre points of every present part,

  .. math:: \\mathrm{recall} = \\frac{|M \\cap C|}{|C|},\\qquad
            \\mathrm{precision} = \\frac{|M \\cap C|}{|M \\cap A|}

  and, with ``part_segments``, the IoU of ``M`` with the shared parts'
  pixels. Returns ``None`` when no shared part is present (the original
  skips such ambiguities); precision is NaN when ``M`` holds no part point.

  Args:
    mask: ``(H, W)`` bool, the insecurity region.
    shared_slots: ``(P,)`` bool, which parts (or slots) the two classes share.
    part_centers: ``(P, 2)`` integer (row, column) centres, -1 when absent.
    part_segments: optional ``(H, W)`` part id per pixel, -1 for none.
  """
  m = np.asarray(mask)
  if m.ndim != 2:
    raise ValueError(f"mask must be one (H, W) region; got shape {m.shape}.")
  c = np.asarray(part_centers)
  if c.ndim != 2 or c.shape[1] != 2 or not np.issubdtype(c.dtype, np.integer):
    raise ValueError(f"part_centers must be (P, 2) integer (row, column) centres, -1 when "
                     f"absent; got shape {c.shape}, dtype {c.dtype}.")
  p = c.shape[0]
  shared_mask = np.asarray(shared_slots)
  if shared_mask.shape != (p,):
    raise ValueError(f"shared_slots must have one flag per part, shape ({p},) like "
                     f"part_centers' {p} rows; got shape {shared_mask.shape}.")
  present = c[:, 0] >= 0
  off = present & ((c[:, 0] >= m.shape[0]) | (c[:, 1] < 0) | (c[:, 1] >= m.shape[1]))
  if off.any():
    raise ValueError(f"part_centers must lie inside the mask's {m.shape} grid (or be -1); "
                     f"parts {np.flatnonzero(off)[:5].tolist()} do not.")
  if part_segments is not None and np.shape(part_segments) != m.shape:
    raise ValueError(f"part_segments must have the mask's shape {m.shape}; got "
                     f"{np.shape(part_segments)}.")
  shared = shared_mask & present
  if not shared.any():
    return None
  hit = m[c[present, 0], c[present, 1]]
  hit_shared = m[c[shared, 0], c[shared, 1]]
  out = {"recall": float(hit_shared.mean()),
         "precision": float(hit_shared.sum() / hit.sum()) if hit.any() else float("nan")}
  if part_segments is not None:
    seg = np.isin(np.asarray(part_segments), np.flatnonzero(shared))
    out["iou"] = float((m & seg).sum() / max((m | seg).sum(), 1))
  return out


def random_region(rng: np.random.Generator, shape: tuple[int, int], area: int) -> np.ndarray:
  """A square-ish region of ``area`` pixels at a uniformly random place: the
  baseline of the paper's comparison with random crops."""
  if not isinstance(rng, np.random.Generator):
    raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)): the "
                    f"region is drawn on the host; got {type(rng).__name__}.")
  if np.ndim(shape) != 1 or len(shape) != 2:
    raise ValueError(f"shape must be (H, W), the map's height and width; got {shape!r}.")
  h, w = shape
  if not 1 <= area <= h * w:
    raise ValueError(f"area must be between 1 and {h * w} pixels; got {area}.")
  side_h = min(h, max(1, int(round(np.sqrt(area)))))
  side_w = min(w, -(-area // side_h))
  top = rng.integers(0, h - side_h + 1)
  left = rng.integers(0, w - side_w + 1)
  m = np.zeros((h, w), bool)
  flat_idx = (np.arange(top, top + side_h)[:, None] * w
              + np.arange(left, left + side_w)[None, :]).ravel()[:area]
  m.ravel()[flat_idx] = True
  return m
