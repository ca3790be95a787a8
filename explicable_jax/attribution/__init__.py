"""Attribution methods as pure JAX functions.

Input attributions take ``score_fn(x) -> scalar`` for one example and are
batched with ``jax.vmap``; layer attributions take a ``(features_fn,
head_fn)`` pair (``clf.split(layer)`` of a
:class:`~explicable_jax.models.Classifier`), a batch and a
``target``. Argument names follow Captum (``baselines``, ``target``,
``n_steps``, ``method``, ``internal_batch_size``,
``return_convergence_delta``).

:mod:`~explicable_jax.attribution.batched` has every method in Captum's
form, on a :class:`~explicable_jax.models.Classifier`: ``method(clf, x,
target=..., [layer=...])``.
"""
from explicable_jax.attribution import batched, evaluation
from explicable_jax.attribution._common import (METHODS, PRECISIONS, at_precision,
                                                get_precision, integration_points, precision,
                                                set_precision)
from explicable_jax.attribution.input import (NOISE_TUNNEL_TYPES, class_score_fn,
                                              gradient, gradient_x_input,
                                              integrated_gradients, smoothgrad)
from explicable_jax.attribution.layer import (grad_cam, head_gradient_is_constant,
                                              layer_conductance,
                                              layer_gradient_x_activation,
                                              layer_integrated_gradients,
                                              neuron_conductance, per_feature_map,
                                              upsample)
from explicable_jax.attribution.second_order import (SecondOrderTerms,
                                                     second_order_attribution)

__all__ = [
    "batched", "evaluation", "PRECISIONS", "precision", "get_precision", "at_precision",
    "set_precision",
    "METHODS", "NOISE_TUNNEL_TYPES", "integration_points", "class_score_fn",
    "gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
    "layer_conductance", "per_feature_map", "neuron_conductance",
    "layer_gradient_x_activation", "layer_integrated_gradients", "grad_cam",
    "upsample", "head_gradient_is_constant", "second_order_attribution",
    "SecondOrderTerms",
]
