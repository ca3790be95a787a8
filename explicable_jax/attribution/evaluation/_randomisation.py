"""Sanity checks of Adebayo et al. (2018): model-parameter randomisation,
cascading and independent, and the random-logit test, with the map
similarities they use (Spearman rank correlation, SSIM)."""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _jaxpr, _validation, models
from explicable_jax.attribution.evaluation import _complexity, _faithfulness, _shared
from explicable_jax.attribution._common import InputsLike, Target

__all__ = [
    "Randomisation", "SIMILARITIES", "layer_groups", "model_parameter_randomisation",
    "random_logit",
]

SIMILARITIES = ("ssim", "spearman")


def _average_ranks(v: jax.Array) -> jax.Array:
  """Ranks (0-based) along the last axis, ties sharing their mean rank (as
  ``scipy.stats.rankdata``)."""
  s = jnp.sort(v, axis=-1)
  lo = jax.vmap(lambda r, q: jnp.searchsorted(r, q, side="left"))(s, v)
  hi = jax.vmap(lambda r, q: jnp.searchsorted(r, q, side="right"))(s, v)
  return (lo + hi - 1).astype(v.dtype) / 2


@conventions.boundary(a="maps", b="maps")
def spearman_rank_correlation(a: ArrayLike, b: ArrayLike) -> jax.Array:
  """Spearman's rank correlation of two batches of maps, per example.

  .. math:: \\rho(a, b) = \\operatorname{corr}(\\mathrm{rank}(a), \\mathrm{rank}(b))

  over the flattened entries, tied entries sharing their mean rank (as
  ``scipy.stats.spearmanr``).

  Args:
    a, b: ``(N, ...)`` maps of one shape.

  Returns:
    ``(N,)`` correlations; NaN where a map is constant, with a warning
    naming the examples.
  """
  a, b = jnp.asarray(a), jnp.asarray(b)
  if a.shape != b.shape or a.ndim < 2:
    raise ValueError(f"a and b must be batches (N, ...) of one shape; got {tuple(a.shape)} "
                     f"and {tuple(b.shape)}.")
  return _complexity._explain_nan("spearman_rank_correlation", _spearman(a, b),
                                  "a constant map has no ranking to correlate")


@jax.jit
def _spearman(a, b):
  n = a.shape[0]
  return _faithfulness.pearson(_average_ranks(a.reshape(n, -1).astype(jnp.float32)),
                               _average_ranks(b.reshape(n, -1).astype(jnp.float32)))


@conventions.boundary(a="maps", b="maps")
@functools.partial(jax.jit, static_argnames=("win_size", "data_range"))
def ssim(a: ArrayLike, b: ArrayLike, *, data_range: float | None = None,
         win_size: int = 7) -> jax.Array:
  """Structural similarity (Wang et al., IEEE TIP 2004) of two batches of 2-D
  maps, as ``skimage.metrics.structural_similarity`` computes it (uniform
  ``win_size`` window, sample covariances, ``K1 = 0.01``, ``K2 = 0.03``,
  the mean over the windows inside the map).

  .. math::

     \\mathrm{SSIM}(a, b) = \\operatorname{mean}_w
        \\frac{(2\\mu_a\\mu_b + C_1)(2\\sigma_{ab} + C_2)}
             {(\\mu_a^2 + \\mu_b^2 + C_1)(\\sigma_a^2 + \\sigma_b^2 + C_2)},\\quad
     C_i = (K_i L)^2

  Args:
    a, b: ``(N, H, W)`` maps, ``H, W >= win_size``.
    data_range: ``L``; ``None`` takes each pair's range,
      ``max(a, b) - min(a, b)`` (as Quantus does), or 1 for two equal
      constant maps (range 0, where Quantus' 0/0 gives NaN).
    win_size: odd window side.

  Returns:
    ``(N,)`` similarities, 1 for identical maps.
  """
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  if a.shape != b.shape or a.ndim != 3:
    raise ValueError(f"a and b must be (N, H, W) maps of one shape; got {tuple(a.shape)} and "
                     f"{tuple(b.shape)}.")
  _validation.check_positive("win_size", win_size, integer=True)
  if win_size % 2 == 0 or min(a.shape[1:]) < win_size:
    raise ValueError(f"win_size must be odd and at most the maps' sides {tuple(a.shape[1:])}; "
                     f"got {win_size}.")
  if data_range is not None and not isinstance(data_range, jax.core.Tracer):
    _validation.check_positive("data_range", data_range)
  if data_range is None:
    both = jnp.concatenate([a.reshape(len(a), -1), b.reshape(len(b), -1)], axis=1)
    spread = both.max(1) - both.min(1)  # 0 only for two equal constant maps: their SSIM is 1
    data_range = jnp.where(spread > 0, spread, 1.0)[:, None, None]
  w = win_size * win_size

  def mean(v):
    return jax.lax.reduce_window(v, 0.0, jax.lax.add, (1, win_size, win_size), (1, 1, 1),
                                 "VALID") / w

  ua, ub = mean(a), mean(b)
  cov = w / (w - 1)
  va, vb = cov * (mean(a * a) - ua * ua), cov * (mean(b * b) - ub * ub)
  vab = cov * (mean(a * b) - ua * ub)
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
  return s.mean(axis=(1, 2))


@conventions.boundary(maps="maps", absolute="flag")
@functools.partial(jax.jit, static_argnames=("absolute",))
def comparable_maps(maps: ArrayLike, *, absolute: bool = True) -> jax.Array:
  """Maps as Adebayo et al. compare them: absolute values (``absolute``),
  summed over the channels of ``(N, H, W, C)`` maps, each scaled to
  ``[0, 1]`` (min-max; a constant map becomes 0)."""
  m = jnp.asarray(maps, jnp.float32)
  if m.ndim < 2:
    raise ValueError(f"maps must be a batch of maps (N, ...) with at least one axis beside "
                     f"the examples'; got shape {m.shape} (one number per example is a "
                     "score, not a map).")
  if m.ndim == 4 and m.shape[1] in (1, 3, 4) and m.shape[-1] not in (1, 3, 4):
    raise ValueError(f"maps must be channel-last (N, H, W, C); got shape {m.shape}, which "
                     f"looks channel-first: pass maps.transpose(0, 2, 3, 1).")
  m = jnp.abs(m) if absolute else m
  if m.ndim == 4:
    m = m.sum(-1)
  n = m.shape[0]
  lo = m.reshape(n, -1).min(1).reshape((n,) + (1,) * (m.ndim - 1))
  hi = m.reshape(n, -1).max(1).reshape((n,) + (1,) * (m.ndim - 1))
  return jnp.where(hi > lo, (m - lo) / jnp.where(hi > lo, hi - lo, 1.0), 0.0)


def _similarities(a, b, *, absolute: bool) -> tuple[jax.Array, jax.Array | None]:
  a, b = comparable_maps(a, absolute=absolute), comparable_maps(b, absolute=absolute)
  s = ssim(a, b, data_range=1.0) if a.ndim == 3 and min(a.shape[1:]) >= 7 else None
  return spearman_rank_correlation(a, b), s


class Randomisation(NamedTuple):
  """Similarity of the maps of the trained model and of a randomised one.

  Attributes:
    layers: the layers randomised at each step, output side first
      (cascading: that layer and every one above it; independent: that layer
      alone).
    spearman: ``(L, N)`` Spearman rank correlations.
    ssim: ``(L, N)`` SSIMs, or ``None`` when the maps are not 2-D images of
      side 7 or more.
  """
  layers: tuple[str, ...]
  spearman: jax.Array
  ssim: jax.Array | None


def layer_groups(clf: Any, example_shape: Sequence[int] | None) -> list[tuple[str, np.ndarray]]:
  """The parameters of each layer of ``clf``, input side first.

  Layer ``k`` holds the parameter leaves that the model reads up to split
  point ``clf.layers[k]`` and not up to the previous one (found from the
  jaxpr of ``clf.split``'s features); layers that read no new parameters are
  left out, and leaves read only after the last split point form one more
  group, ``"after <last layer>"``.

  Returns:
    ``[(name, mask)]``, ``mask`` one bool per leaf of ``jax.tree.leaves(clf.params)``.
  """
  if example_shape is None:
    example_shape = getattr(clf, "input_shape", None)
    if example_shape is None:
      raise ValueError("example_shape is needed: the classifier does not declare its "
                       "input_shape (pass one example's shape, e.g. (32, 32, 3)).")
  example_shape = conventions.check_input_shape("example_shape", example_shape, model=clf)
  leaves = jax.tree.leaves(clf.params)
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)),
                          clf.params)
  spec = jax.ShapeDtypeStruct((1, *example_shape), jnp.float32)
  seen = np.zeros(len(leaves), bool)
  groups = []
  for layer in clf.layers:
    try:
      clf.backend.check_split(clf.params, clf.state, layer, spec)
    except ValueError:  # a skip connection over the cut: its leaves join the next layer
      continue
    closed = jax.make_jaxpr(lambda p, xb, layer=layer: clf.backend.features(
        p, clf.state, xb, layer))(abstract, spec)
    used = np.asarray(_jaxpr.used_inputs(closed.jaxpr)[:len(leaves)], bool)
    new = used & ~seen
    if new.any():
      groups.append((layer, new))
    seen |= used
  if (~seen).any():
    groups.append((f"after {clf.layers[-1]}" if clf.layers else "all", ~seen))
  return groups


def _fresh_params(clf, init):
  """A function ``key -> params``: new weights for ``clf``."""
  if init is not None:
    _validation.check_signature("init", init, 1, "key -> params")
    return init
  if clf.spec.recipe:
    recipe = json.loads(clf.spec.recipe)

    def rebuild(key):
      return models.classifier(key, recipe["model"], input_shape=recipe["input_shape"],
                               num_classes=recipe["num_classes"],
                               **recipe.get("model_kwargs", {})).params
    return rebuild

  def gaussian(key):  # no recipe: each leaf redrawn with its own mean and spread
    leaves, treedef = jax.tree.flatten(clf.params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([
        jnp.mean(a) + jnp.std(a) * jax.random.normal(k, jnp.shape(a), jnp.result_type(a))
        for k, a in zip(keys, leaves)])
  return gaussian


@conventions.boundary(inputs="batch", absolute="flag")
def model_parameter_randomisation(key: jax.Array, explanation_func: Callable, model: Any,
                                  inputs: InputsLike, *,
                                  target: Target, cascading: bool = True, absolute: bool = True,
                                  init: Callable | None = None) -> Randomisation:
  """Model-parameter randomisation test (Adebayo et al., NeurIPS 2018).

  The maps of the trained model ``f_theta`` are compared with those of the
  same model with some layers' weights re-drawn (cascading: from the output
  layer down, each step randomising one more layer; independent: one layer at
  a time):

  .. math::

     \\rho_k = \\operatorname{sim}\\big(\\Phi(f_\\theta, x),\\
        \\Phi(f_{\\tilde\\theta_k}, x)\\big)

  with ``sim`` the Spearman rank correlation and SSIM of the maps (after
  :func:`comparable_maps`). A map that explains the model changes when the
  model does: low similarity. A map that does not (an edge detector, the
  input itself) keeps similarity 1 and fails the test.

  Args:
    key: PRNG key of the new weights (one draw of the whole model; layer
      ``k`` takes its part of it).
    explanation_func: ``explain(clf, x, target) -> maps``; jitted here with
      the classifier as an argument, so every randomised model reuses one
      compilation.
    model: a :class:`~explicable_jax.models.Classifier` with named layers
      (``clf.layers``; see :func:`layer_groups`).
    inputs: a batch ``(N, ...)``.
    target: a class index, ``N`` indices or ``"predicted"`` (of the trained
      model; kept for the randomised ones).
    cascading: cascading (default) or independent randomisation.
    absolute: compare absolute maps (Adebayo et al. report both).
    init: ``key -> params``, new weights of the model's structure; default:
      the model's own initialisation when it was built by name
      (``models.classifier``), else each weight array redrawn from a normal
      with its own mean and standard deviation. Non-trainable state (batch
      statistics) is kept.

  Returns:
    A :class:`Randomisation`.
  """
  key = _validation.check_key("key", key, call="model_parameter_randomisation(key, "
                                                "explanation_func, model, inputs, ...)")
  explanation_func = _shared.check_explanation_func(explanation_func)
  clf = models.as_classifier("model", model)
  x = _shared.Inputs("inputs", inputs)
  if x.multi:
    raise ValueError("inputs must be one array (N, ...) for the randomisation tests.")
  groups = layer_groups(clf, x.leaves[0].shape[1:])
  if not groups:
    raise ValueError("model has no parameters to randomise.")
  _shared.check_target(clf.logits, x, target)
  target_dyn, target_static = _shared.split_target(target)
  t = _shared.jit_call(_targets, dynamic=dict(model=clf, inputs=x.value, **target_dyn),
                       static=target_static)
  jitted = jax.jit(explanation_func)
  explain = lambda c, v, tt: _shared.with_precision(
      lambda: _shared.explained(jitted, c, v, tt, x.n))
  original = explain(clf, x.value, t)
  leaves, treedef = jax.tree.flatten(clf.params)
  new = jax.tree.leaves(_fresh_params(clf, init)(key))
  if len(new) != len(leaves) or any(jnp.shape(a) != jnp.shape(b) for a, b in zip(new, leaves)):
    raise ValueError(f"init must return params of the model's structure ({len(leaves)} "
                     f"arrays of its shapes); got {len(new)} arrays.")
  same = [bool(np.array_equal(np.asarray(a), np.asarray(b))) for a, b in zip(new, leaves)]
  if all(same):
    raise ValueError(
        "key draws exactly the model's own weights (the key the model was built with?), so "
        "no layer would be randomised and every map would compare as identical: pass "
        "another key, e.g. jax.random.fold_in(key, 1).")
  rows_s, rows_m, names = [], [], []
  current = list(leaves)
  for name, mask in reversed(groups):
    base = current if cascading else list(leaves)
    current = [jnp.asarray(nw, jnp.result_type(old)) if m else old
               for nw, old, m in zip(new, base, mask)]
    maps = explain(clf.with_params(treedef.unflatten(current)), x.value, t)
    s, m = _similarities(original, maps, absolute=absolute)
    rows_s.append(s)
    rows_m.append(m)
    names.append(name)
  return Randomisation(tuple(names), jnp.stack(rows_s),
                       None if rows_m[0] is None else jnp.stack(rows_m))


def _targets(*, model, inputs, target):
  return _shared.targets(model.logits, _shared.Inputs("inputs", inputs), target)


@conventions.boundary(inputs="batch", absolute="flag")
def random_logit(key: jax.Array, explanation_func: Callable, model: Any, inputs: InputsLike, *,
                 target: Target,
                 similarity: str = "ssim", absolute: bool = True) -> jax.Array:
  """Random-logit test (Sixt, Granz and Landgraf, ICML 2020; Quantus'
  ``RandomLogit``): the map for the target class against the map for another
  class drawn at random.

  .. math::

     \\operatorname{sim}\\big(\\Phi(f, x, t),\\ \\Phi(f, x, t')\\big),\\quad
     t' \\sim U(\\{1..C\\} \\setminus \\{t\\})

  A class-sensitive explanation gives low similarity.

  Args:
    key: PRNG key of the other classes (``fold_in(key, i)`` for example ``i``).
    explanation_func: ``explain(model, x, target) -> maps``.
    model: a :class:`~explicable_jax.models.Classifier` or a batch function
      returning ``(N, C)`` scores.
    inputs: a batch ``(N, ...)``.
    target: a class index, ``N`` indices or ``"predicted"``.
    similarity: ``"ssim"`` (Quantus' default; 2-D maps of side 7 or more)
      or ``"spearman"``, on :func:`comparable_maps`.
    absolute: compare absolute maps.

  Returns:
    ``(N,)`` similarities.
  """
  key = _validation.check_key("key", key, call="random_logit(key, explanation_func, model, "
                                                "inputs, ...)")
  _validation.check_choice("similarity", similarity, SIMILARITIES)
  explanation_func = _shared.check_explanation_func(explanation_func)
  if target is None:
    raise ValueError("random_logit needs a model with classes and a target; got target=None.")
  model_dyn, model_static = _shared.split_model("model", model)
  x = _shared.Inputs("inputs", inputs)
  fn = _shared.forward({**model_dyn, **model_static}["model"])
  _shared.check_target(fn, x, target)
  c = jax.eval_shape(fn, x.value).shape[-1]
  if c < 2:
    raise ValueError(f"random_logit needs at least 2 classes; the model has {c}.")
  target_dyn, target_static = _shared.split_target(target)
  return _shared.jit_call(
      _random_logit, dynamic=dict(key=key, inputs=x.value, **model_dyn, **target_dyn),
      static=dict(explain=explanation_func, similarity=similarity, absolute=absolute,
                  **model_static, **target_static))


def _random_logit(*, key, inputs, model, target, explain, similarity, absolute):
  x = _shared.Inputs("inputs", inputs)
  fn = _shared.forward(model)
  t = _shared.targets(fn, x, target)
  c = jax.eval_shape(fn, x.value).shape[-1]
  shift = jax.vmap(lambda k: jax.random.randint(k, (), 1, c))(_shared.example_keys(key, x.n))
  other = (t + shift) % c
  a = comparable_maps(_shared.explained(explain, model, x.value, t, x.n), absolute=absolute)
  b = comparable_maps(_shared.explained(explain, model, x.value, other, x.n), absolute=absolute)
  return ssim(a, b, data_range=1.0) if similarity == "ssim" else spearman_rank_correlation(a, b)
