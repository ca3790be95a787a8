"""Robustness tests: adversarial attacks, Gaussian noise, CIFAR-10-C corruptions.

Images are NHWC floats in ``[0, 1]`` (what :mod:`explicable_jax.data` gives);
``epsilon``, noise levels and clipping are in those input units, so
``epsilon=8/255`` is the usual CIFAR L-inf budget. Models enter as
a :class:`~explicable_jax.models.Classifier` or any ``logits_fn(x) -> (N, C)``;
every attack takes ``(logits_fn, x, labels, ...)``, with a PRNG key first
where it draws.

Attacks (:mod:`.attacks`, :mod:`.minimal`, :mod:`.substitute`):

* :func:`fgsm` -- Goodfellow et al. (2015), ``x + eps * sign(grad_x L)``.
* :func:`pgd` -- Madry et al. (2018), projected sign-gradient ascent in the
  L-inf ball with a random start.
* :func:`jsma` -- Papernot et al. (2016), the Jacobian saliency map attack.
* :func:`deepfool` -- Moosavi-Dezfooli et al. (2016), minimal L2 steps.
* :func:`carlini_wagner_l2` -- Carlini and Wagner (2017).
* :func:`train_substitute`, :func:`black_box` -- Papernot et al. (2017),
  a substitute trained by Jacobian-based dataset augmentation, then FGSM.
* :func:`accuracy_under` -- top-1 accuracy on perturbed inputs.

Noise and corruptions (:mod:`.corruptions`):

* :func:`gaussian_noise` -- additive noise (Olmo et al. use ``stddev=0.2``).
* :func:`corrupt` -- the CIFAR-10-C corruptions of Hendrycks and Dietterich
  (ICLR 2019) at severities 1..5, generated in code with the constants of
  their ``make_cifar_c.py``.
"""
from explicable_jax.robustness._common import LogitsFn
from explicable_jax.robustness.attacks import (
                                               JSMA_PIXELS,
                                               MAX_UNROLLED_STEPS,
                                               accuracy_under,
                                               fgsm,
                                               jsma,
                                               pgd,
                                               random_targets,
)
from explicable_jax.robustness.corruptions import (
                                               CORRUPTION_CONSTANTS,
                                               CORRUPTIONS,
                                               SEVERITIES,
                                               corrupt,
                                               corruption_suite,
                                               defocus_kernel,
                                               gaussian_noise,
)
from explicable_jax.robustness.minimal import carlini_wagner_l2, deepfool
from explicable_jax.robustness.substitute import (
                                               Substitute,
                                               black_box,
                                               jacobian_augmentation,
                                               train_substitute,
)

__all__ = [
                                               "CORRUPTIONS",
                                               "CORRUPTION_CONSTANTS",
                                               "JSMA_PIXELS",
                                               "MAX_UNROLLED_STEPS",
                                               "SEVERITIES",
                                               "LogitsFn",
                                               "Substitute",
                                               "accuracy_under",
                                               "black_box",
                                               "carlini_wagner_l2",
                                               "corrupt",
                                               "corruption_suite",
                                               "deepfool",
                                               "defocus_kernel",
                                               "fgsm",
                                               "gaussian_noise",
                                               "jacobian_augmentation",
                                               "jsma",
                                               "pgd",
                                               "random_targets",
                                               "train_substitute",
]
