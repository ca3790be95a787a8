"""Are the explanations right? Metrics that evaluate attribution maps.

Every metric is a batched JAX function of a batch ``(N, ...)`` that returns
one value per example (the caller reduces), PRNG key first where random. Each
runs as one jitted computation: keys, inputs, attributions and a
:class:`~explicable_jax.models.Classifier` are traced (new weights or images
of the same shapes reuse the compilation), functions and options are static
(pass long-lived functions, not a new lambda per call, to reuse it). Every
metric can also be called inside ``jax.jit``, e.g.
``jax.jit(lambda k, c, x, a: infidelity(k, c, perturb, x, a, target=t))``.

Two contracts:

* a *model* is a :class:`~explicable_jax.models.Classifier` (its logits) or
  any function of a batch returning ``(N, C)`` scores (``(N,)`` with
  ``target=None``, Captum's scalar-output models);
* an *explanation* is ``explain(model, x, target) -> maps``: a batch and
  ``(N,)`` class indices in, maps of ``x``'s shape (or of a leading part of
  it, e.g. ``(N, H, W)`` pixel maps) out. Every method of
  :mod:`~explicable_jax.attribution.batched` fits with a lambda::

      saliency = lambda m, x, t: batched.saliency(m, x, target=t)
      ig = lambda m, x, t: batched.integrated_gradients(m, x, target=t)
      cam = lambda m, x, t: attribution.upsample(
          batched.grad_cam(m, x, layer="layer3.2", target=t), x.shape[1:3])

Metrics (with Captum's names and defaults where Captum has the metric):

=============================  ====================================================
faithfulness                   :func:`infidelity` (Captum), :func:`deletion_curve`,
                               :func:`insertion_curve`, :func:`area_under_curve`,
                               :func:`faithfulness_correlation`
robustness                     :func:`sensitivity_max` (Captum)
sanity checks (randomisation)  :func:`model_parameter_randomisation` (cascading,
                               independent), :func:`random_logit`
complexity                     :func:`sparseness` (Gini), :func:`entropy`
localisation (against a mask)  :func:`relevance_mass_accuracy`,
                               :func:`relevance_rank_accuracy`, :func:`pointing_game`
=============================  ====================================================
"""
from explicable_jax.attribution.evaluation._complexity import (
    entropy,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    sparseness,
)
from explicable_jax.attribution.evaluation._faithfulness import (
    Curve,
    area_under_curve,
    deletion_curve,
    faithfulness_correlation,
    insertion_curve,
)
from explicable_jax.attribution.evaluation._perturbation import (
    NORM_ORDS,
    default_perturb_func,
    gaussian_perturb_func,
    infidelity,
    infidelity_perturb_func_decorator,
    sensitivity_max,
)
from explicable_jax.attribution.evaluation._randomisation import (
    SIMILARITIES,
    Randomisation,
    comparable_maps,
    layer_groups,
    model_parameter_randomisation,
    random_logit,
    spearman_rank_correlation,
    ssim,
)

__all__ = [
    "NORM_ORDS",
    "SIMILARITIES",
    "Curve",
    "Randomisation",
    "area_under_curve",
    "comparable_maps",
    "default_perturb_func",
    "deletion_curve",
    "entropy",
    "faithfulness_correlation",
    "gaussian_perturb_func",
    "infidelity",
    "infidelity_perturb_func_decorator",
    "insertion_curve",
    "layer_groups",
    "model_parameter_randomisation",
    "pointing_game",
    "random_logit",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "sensitivity_max",
    "sparseness",
    "spearman_rank_correlation",
    "ssim",
]
