"""Section 6, faithfulness: are its explanations faithful? (Adebayo et al., NeurIPS 2018; Samek et al., 2017).

For each attribution map the audit itself reads (the input gradient of the
reliance section, the class map of the hesitation section, the conductance of
the error detector, drawn as a pixel map where its layer is spatial) and, as
the reference, a random ranking of the pixels, on the first
``faithfulness_images`` test images and their predicted classes:

* the **sanity check** of Adebayo et al.: the Spearman rank correlation
  between the map of the trained model and that of the model with every
  layer re-initialised (the last step of cascading model-parameter
  randomisation), absolute maps. The pass rule is
  :data:`SANITY_THRESHOLD`: a map passes when the upper end of the 95%
  interval of that mean correlation is below 0.5; a map that ignores the
  model (the random ranking, drawn with a fixed key) keeps correlation 1 and
  fails;
* one **faithfulness number**, the insertion AUC (the predicted class's
  probability as the most relevant pixels are put back into a black image,
  21 points; higher is more faithful), with its paired difference from the
  random ranking. Insertion rather than deletion: deleting scattered pixels
  takes the image off the data, so on the committed ResNet-20 a random
  ranking deletes the class as fast as any map
  (``experiments/results/attribution_evaluation.md``).

Every number comes with a 95% interval over the images (mean +- 1.96
standard errors). :func:`score_explanations`, :data:`EXPLANATIONS` and
:data:`METRICS` are shared with ``explicable-jax evaluate-attributions``
(:mod:`explicable_jax.app.attributions`), which scores every method of the
library with every metric.
"""
from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax.app.audit.section import Section

__all__ = ["Faithfulness", "SECTION", "SANITY_THRESHOLD", "EXPLANATIONS", "METRICS",
           "LAYER_METHODS", "explanation", "score_explanations", "interval",
           "paired_interval", "sanity_verdict", "spatial_layer", "faithfulness_stage"]

SANITY_THRESHOLD = 0.5
"""A map passes the model-parameter randomisation check when the upper end of
the 95% interval of its mean Spearman correlation with the map of the fully
randomised model lies below this."""

RANDOM = "random ranking (reference)"
_SMOOTHGRAD_SAMPLES = 16
_IG_STEPS = 16
_FLOOR = 1e-7  # deliberative.MAP_FLOOR: the class maps are floored there


def _channels_summed(m):
  return m.sum(-1) if m.ndim == 4 else m


def _to_pixels(maps, x):
  """Layer maps ``(N, h, w)`` resized to the input's ``(N, H, W)``."""
  from explicable_jax import attribution
  if maps.shape[1:3] == x.shape[1:3]:
    return maps
  return attribution.upsample(maps, x.shape[1:3])


# Explanations: ``explain(model, x, target) -> (N, H, W)`` pixel maps (the
# evaluation package's contract), module-level so that jit caches them.

def _gradient(model, x, t):
  from explicable_jax.attribution import batched
  return jnp.abs(batched.saliency(model, x, target=t)).sum(-1)


def _gradient_x_input(model, x, t):
  from explicable_jax.attribution import batched
  return batched.gradient_x_input(model, x, target=t).sum(-1)


def _smoothgrad(model, x, t):
  from explicable_jax import models
  from explicable_jax.attribution import input as input_lib
  clf = models.as_classifier("model", model)
  # One fixed key for every image and model: the same noise for the trained
  # and the randomised model, whatever the batching.
  key = jax.random.key(0)
  g = jax.vmap(lambda xi, ti: input_lib.smoothgrad(
      key, input_lib.class_score_fn(clf.logits, ti), xi, n_samples=_SMOOTHGRAD_SAMPLES))(x, t)
  return jnp.abs(g).sum(-1)


def _integrated_gradients(model, x, t):
  from explicable_jax.attribution import batched
  return batched.integrated_gradients(model, x, target=t, n_steps=_IG_STEPS).sum(-1)


def _log_probability_gradient(model, x, t):
  """|d sum_k log p_k / dx|, the reliance section's map (class-independent)."""
  from explicable_jax import models
  clf = models.as_classifier("model", model)
  g = jax.grad(lambda v: jax.nn.log_softmax(clf.logits(v)).sum())(x)
  return jnp.abs(g).sum(-1)


def _grad_cam(model, x, t, *, layer):
  from explicable_jax.attribution import batched
  return _to_pixels(batched.grad_cam(model, x, layer=layer, target=t), x)


def _layer_conductance(model, x, t, *, layer):
  from explicable_jax.attribution import batched
  return _to_pixels(batched.layer_conductance(model, x, layer=layer, target=t).sum(-1), x)


def _class_map(model, x, t, *, layer):
  """The deliberative class map (Wang and Vasconcelos): ``sum_c a_c dS_t/da_c``
  at ``layer`` (``None``: the input), floored at 1e-7, as the hesitation
  section draws it."""
  from explicable_jax.attribution import batched
  if layer is None:
    m = batched.gradient_x_input(model, x, target=t).sum(-1)
  else:
    m = batched.layer_gradient_x_activation(model, x, layer=layer, target=t).sum(-1)
  return _to_pixels(jnp.maximum(m, _FLOOR), x)


def _class_map_ig(model, x, t, *, layer):
  """The deliberative class map with integrated gradients at ``layer``."""
  from explicable_jax.attribution import batched
  if layer is None:
    m = batched.integrated_gradients(model, x, target=t, n_steps=_IG_STEPS).sum(-1)
  else:
    m = batched.layer_integrated_gradients(model, x, layer=layer, target=t,
                                           n_steps=_IG_STEPS).sum(-1)
  return _to_pixels(jnp.maximum(m, _FLOOR), x)


def _random(model, x, t):
  return jax.random.uniform(jax.random.key(0), x.shape[:3])


EXPLANATIONS: dict[str, Callable] = {
    "gradient": _gradient,
    "gradient x input": _gradient_x_input,
    "SmoothGrad": _smoothgrad,
    "integrated gradients": _integrated_gradients,
    "input gradient of sum log p (reliance)": _log_probability_gradient,
    "Grad-CAM": _grad_cam,
    "layer conductance": _layer_conductance,
    "deliberative class map": _class_map,
    "deliberative class map (IG)": _class_map_ig,
    RANDOM: _random,
}
"""Every attribution map the evaluation scores, by name; each is
``explain(model, x, target) -> (N, H, W)`` (gradients as ``|g|`` summed over
the channels, signed maps summed over the channels, layer maps at ``layer``
upsampled bilinearly). SmoothGrad: 16 noisy copies at 15% of the range,
the same noise draws for every image;
integrated gradients: 16 Gauss-Legendre steps from black; conductance: 10
steps from black."""

LAYER_METHODS = ("Grad-CAM", "layer conductance")
"""Methods that need a spatial layer (``(N, h, w, C)`` activations)."""
_OPTIONAL_LAYER = ("deliberative class map", "deliberative class map (IG)")


def spatial_layer(clf, layer: str | None, example_shape) -> str | None:
  """``layer`` when its activations are ``(N, h, w, C)``, else ``None``."""
  if layer is None:
    return None
  spec = jax.ShapeDtypeStruct((2, *example_shape), jnp.float32)
  shape = jax.eval_shape(clf.split(layer)[0], spec)
  return layer if len(jax.tree.leaves(shape)[0].shape) == 4 else None


_CHUNK = 8  # images explained at once: bounds the memory of the sampled methods


def _chunked(fn: Callable) -> Callable:
  """``fn`` applied ``_CHUNK`` images at a time (``jax.lax.map``), so that a
  metric that explains many perturbed copies at once (sensitivity, the
  randomised models) holds at most ``_CHUNK`` images' activations."""
  def explain(model, x, t):
    return jax.lax.map(lambda xt: fn(model, xt[0][None], xt[1][None])[0], (x, t),
                       batch_size=_CHUNK)
  return explain


@functools.cache
def explanation(name: str, layer: str | None = None) -> Callable:
  """The explanation called ``name`` (a key of :data:`EXPLANATIONS`), bound to
  ``layer`` where it has one and run :data:`_CHUNK` images at a time (every
  method explains each image on its own, so the maps do not depend on the
  chunking); one function per ``(name, layer)``, so jit reuses its
  compilation.

  Raises:
    ValueError: an unknown name, or a layer method without a layer.
  """
  from explicable_jax import _validation
  _validation.check_choice("method", name, tuple(EXPLANATIONS))
  fn = EXPLANATIONS[name]
  if name in LAYER_METHODS:
    if layer is None:
      raise ValueError(f"method {name!r} needs a spatial layer (activations (N, h, w, C)); "
                       "the model has none given.")
    fn = functools.partial(fn, layer=layer)
  elif name in _OPTIONAL_LAYER:
    fn = functools.partial(fn, layer=layer)
  return fn if name == RANDOM else _chunked(fn)


# Metrics: ``metric(key, clf, x, t, maps, explain, mask) -> (N,)`` per image.

def _randomisation(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  r = evaluation.model_parameter_randomisation(key, explain, clf, x, target=t)
  return r.spearman[-1]


def _random_logit(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.random_logit(key, explain, clf, x, target=t, similarity="ssim")


def _deletion(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.area_under_curve(evaluation.deletion_curve(clf, x, maps, target=t))


def _insertion(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.area_under_curve(evaluation.insertion_curve(clf, x, maps, target=t))


def _infidelity(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.infidelity(key, clf, evaluation.gaussian_perturb_func(0.003), x, maps,
                               target=t, n_perturb_samples=10, normalize=True)


def _faithfulness_correlation(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  d = int(np.prod(maps.shape[1:]))
  return evaluation.faithfulness_correlation(key, clf, x, maps, target=t,
                                             subset_size=max(d // 5, 1), n_perturb_samples=50)


def _sensitivity(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.sensitivity_max(key, explain, clf, x, target=t, n_perturb_samples=5)


def _sparseness(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.sparseness(maps)


def _relevance_mass(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.relevance_mass_accuracy(jnp.abs(maps), mask)


def _pointing_game(key, clf, x, t, maps, explain, mask):
  from explicable_jax.attribution import evaluation
  return evaluation.pointing_game(jnp.abs(maps), mask).astype(jnp.float32)


METRICS: dict[str, tuple[Callable, str, str]] = {
    "randomisation": (_randomisation, "lower",
                      "sanity check: Spearman correlation with the map of the fully randomised "
                      "model (cascading, absolute maps; Adebayo et al.)"),
    "random logit": (_random_logit, "lower",
                     "sanity check: SSIM between the maps of the predicted class and of a "
                     "random other class (Sixt et al.)"),
    "deletion AUC": (_deletion, "lower",
                     "probability of the predicted class as the most relevant pixels are set "
                     "to 0, area over 21 points (Samek et al.; RISE)"),
    "insertion AUC": (_insertion, "higher",
                      "probability as the most relevant pixels are put back into a black "
                      "image, area over 21 points (RISE)"),
    "infidelity": (_infidelity, "lower",
                   "Captum's infidelity, Gaussian perturbations sd 0.003, 10 draws, "
                   "normalised by the optimal beta (Yeh et al.)"),
    "faithfulness correlation": (_faithfulness_correlation, "higher",
                                 "Pearson correlation of the attribution of 50 random "
                                 "subsets of a fifth of the pixels with the logit drop when "
                                 "they are set to 0 (Bhatt et al.)"),
    "sensitivity": (_sensitivity, "lower",
                    "Captum's sensitivity_max, uniform noise r = 0.02, 5 draws (Yeh et al.)"),
    "sparseness": (_sparseness, "higher", "Gini index of the absolute map (Chalasani et al.)"),
    "relevance mass": (_relevance_mass, "higher",
                       "share of the absolute map on the annotated pixels (Arras et al.)"),
    "pointing game": (_pointing_game, "higher",
                      "whether the largest absolute value of the map is annotated (Zhang et al.)"),
}
"""Every metric: ``(fn, better, what it measures)``; ``fn(key, clf, x,
target, maps, explain, mask) -> (N,)``, one value per image; ``better`` says
which direction is more faithful (or sparser, or more on the mask)."""

MASK_METRICS = ("relevance mass", "pointing game")
"""Metrics that need annotations (a ground-truth mask)."""


def interval(values) -> dict:
  """The mean of per-image values with its 95% interval (mean +- 1.96
  standard errors), over the finite values.

  .. math:: \\bar v \\pm 1.96\\, s / \\sqrt{n}

  Returns:
    ``{"mean", "low", "high", "n"}`` (NaNs when no value is finite).
  """
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if v.size == 0:
    return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
  half = 1.96 * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
  return {"mean": float(v.mean()), "low": float(v.mean() - half),
          "high": float(v.mean() + half), "n": int(v.size)}


def paired_interval(a, b) -> dict:
  """:func:`interval` of the per-image differences ``a - b`` (images where
  both are finite)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return interval(np.where(np.isfinite(a) & np.isfinite(b), a - b, np.nan))


def sanity_verdict(values) -> bool:
  """Whether a map passes the randomisation check (:data:`SANITY_THRESHOLD`)."""
  return bool(interval(values)["high"] < SANITY_THRESHOLD)


def _name_key(key, name: str):
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


@conventions.boundary(x="inputs", target="labels", mask="mask")
def score_explanations(key: jax.Array, clf, x, target, method: str, *,
                       layer: str | None = None, metrics: Sequence[str] | None = None,
                       mask=None) -> dict[str, list[float]]:
  """Every metric of one attribution method, per image.

  Args:
    key: PRNG key; metric ``m`` draws from ``fold_in(key, crc32(m))``, so a
      number does not depend on which other metrics run.
    clf: the model (a :class:`~explicable_jax.models.Classifier`).
    x: ``(N, H, W, C)`` images.
    target: ``(N,)`` the classes explained (the audit: the predictions).
    method: a name of :data:`EXPLANATIONS`.
    layer: the split point of the layer methods.
    metrics: names of :data:`METRICS` (those of :data:`MASK_METRICS` need
      ``mask``); default: every metric that can run.
    mask: ``(N, H, W[, C])`` ground truth of the localisation metrics.

  Returns:
    ``{metric: [N values]}``; NaN where a metric is undefined for an image
    (a constant map's correlation).
  """
  explain = explanation(method, layer)
  t = jnp.asarray(target, jnp.int32)
  xj = jnp.asarray(x)
  maps = jax.jit(explain)(clf, xj, t)
  m = None if mask is None else jnp.asarray(np.asarray(mask) > 0)
  if metrics is None:
    metrics = [k for k in METRICS if mask is not None or k not in MASK_METRICS]
  out = {}
  for name in metrics:
    fn = METRICS[name][0]
    if name in MASK_METRICS and m is None:
      raise ValueError(f"metric {name!r} needs annotations (a mask); none given.")
    out[name] = [float(v) for v in np.asarray(fn(_name_key(key, name), clf, xj, t, maps,
                                                 explain, m))]
  return out


# The audit's section.

_STREAM = 6  # fold_in(run key, 6): the section's key
_AUDIT_METRICS = ("randomisation", "insertion AUC")


def audit_methods(ctx) -> dict[str, dict]:
  """The maps the audit's other sections read: ``{label: {"method", "layer",
  "used_by"}}``, and the random reference."""
  x = ctx.splits["test"][0]
  spatial = spatial_layer(ctx.clf, ctx.layer, x.shape[1:])
  methods = {
      "input gradient": {"method": "input gradient of sum log p (reliance)", "layer": None,
                         "used_by": "reliance"},
      "class map": {"method": "deliberative class map", "layer": spatial,
                    "used_by": "hesitation"}}
  if spatial is not None:
    methods["conductance"] = {"method": "layer conductance", "layer": spatial,
                              "used_by": "error detection"}
  methods["random ranking"] = {"method": RANDOM, "layer": None, "used_by": "reference"}
  return methods


@conventions.boundary(x="inputs", target="labels")
def faithfulness_stage(key: jax.Array, clf, x, target, methods: Mapping[str, dict]) -> dict:
  """The section's numbers: for each method, the randomisation check and the
  insertion AUC, per image and as intervals, and the insertion AUC's paired
  difference from the random ranking.

  Args:
    key: PRNG key of the randomised weights and the random ranking.
    clf: the model.
    x, target: the images and the classes explained.
    methods: ``{label: {"method": name of EXPLANATIONS, "layer": ...}}``.

  Returns:
    ``{"images", "threshold", "methods": {label: {...}}}``.
  """
  per = {label: score_explanations(key, clf, x, target, m["method"], layer=m["layer"],
                                   metrics=_AUDIT_METRICS)
         for label, m in methods.items()}
  random_label = next((k for k, m in methods.items() if m["method"] == RANDOM), None)
  out = {}
  for label, m in methods.items():
    v = per[label]
    row = {**m, "randomisation": interval(v["randomisation"]),
           "passes": sanity_verdict(v["randomisation"]),
           "insertion": interval(v["insertion AUC"]), "per_image": v}
    if random_label is not None and label != random_label:
      row["insertion_minus_random"] = paired_interval(v["insertion AUC"],
                                                      per[random_label]["insertion AUC"])
    out[label] = row
  return {"images": int(len(x)), "threshold": SANITY_THRESHOLD, "methods": out}


def _fmt(c: dict) -> str:
  return f"{c['mean']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"


class Faithfulness(Section):
  name = "faithfulness"
  title = "Faithfulness: are its explanations faithful?"

  def run(self, config, ctx) -> dict:
    x = ctx.splits["test"][0][:config.faithfulness_images]
    target = ctx.predictions["test"][:config.faithfulness_images]
    methods = audit_methods(ctx)
    res = ctx.cache.json("faithfulness", {"images": config.faithfulness_images,
                                          "methods": methods},
                         lambda: faithfulness_stage(jax.random.fold_in(ctx.key, _STREAM),
                                                    ctx.clf, x, target, methods))
    ctx.say(f"faithfulness: {len(methods)} maps on {res['images']} images "
            f"({ctx.elapsed():.0f}s)")
    return res

  def summary(self, res, ctx) -> list[tuple[str, str]]:
    rows = {k: v for k, v in res["methods"].items() if v["method"] != RANDOM}
    passed = [k for k, v in rows.items() if v["passes"]]
    faithful = [k for k, v in rows.items()
                if "insertion_minus_random" in v and v["insertion_minus_random"]["low"] > 0]
    return [("Are its explanations faithful?",
             f"{len(passed)} of {len(rows)} maps it uses pass the randomisation check"
             + (f" ({', '.join(passed)})" if passed else "")
             + f"; {len(faithful)} of {len(rows)} restore the predicted class faster than a "
             f"random ranking (insertion AUC) on {res['images']} test images"
             + (f" ({', '.join(faithful)})" if faithful else ""))]

  def report(self, page, res, figure) -> None:
    page.paragraph(
        "For each attribution map the audit reads (the reliance section's input gradient, "
        "the hesitation section's class map, the error detector's conductance where its "
        "layer is spatial) and a random ranking of the pixels as the reference, on the "
        f"first {res['images']} test images and their predicted classes. Sanity check "
        "(Adebayo et al., NeurIPS 2018): the Spearman rank correlation between the map of "
        "the model and that of the model with every layer re-initialised (cascading "
        "randomisation, absolute maps); a map passes when the upper end of its 95% interval "
        f"lies below {res['threshold']}. Faithfulness: the insertion AUC, the predicted "
        "class's probability as the most relevant pixels are put back into a black image "
        "(21 points; higher is more faithful), and its paired difference from the random "
        "ranking (deletion, scattered pixels set to black, leaves the data the model "
        "knows: a random ranking often deletes as fast as any map). Intervals: "
        "95%, mean +- 1.96 standard errors over the images.")
    header = ["map", "used by", "Spearman, randomised model [95% CI]", "sanity check",
              "insertion AUC [95% CI]", "insertion AUC - random [95% CI]"]
    rows = []
    for label, v in res["methods"].items():
      d = v.get("insertion_minus_random")
      rows.append([label + (f" at {v['layer']}" if v.get("layer") else ""), v["used_by"],
                   _fmt(v["randomisation"]), "passes" if v["passes"] else "fails",
                   _fmt(v["insertion"]), "(reference)" if d is None else
                   f"{d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"])
    page.table(header, rows)


SECTION = Faithfulness()
