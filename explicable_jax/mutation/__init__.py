"""Model mutation testing: mutation operators, mutant ensembles, label change rate.

Wang et al., "Adversarial Sample Detection for Deep Neural Network through
Model Mutation Testing" (ICSE 2019; code ``dgl-prc/m_testing_adversatial_sample``)
perturb a trained model's weights many times with the operators of Ma et al.'s
DeepMutation (ISSRE 2018); inputs the model is unsure of (adversarial or
misclassified ones) change label under far more mutants. Wu, Michel and Briot
("Leveraging Model Interpretability and Stability to increase Model
Robustness", 2019) use that label change rate (LCR) to detect wrong
predictions.

The package, one job per module:

* :mod:`~explicable_jax.mutation.operators`: the pure operators
  ``op(key, params, rate, **options)`` (GF, NAI, WS, NS) and the one registry
  of their names, :data:`OPERATORS` (:func:`register_operator`), that the CLI
  and the audit read;
* :mod:`~explicable_jax.mutation.ensembles`: :func:`mutate_many` (the
  operator vmapped over split keys), :func:`make_mutants` with the accuracy
  gate (:func:`accuracy_gate`);
* :mod:`~explicable_jax.mutation.predictions`: :func:`mutant_predictions`
  (every mutant on every input, chunked and batched, with a private
  prefix-sharing engine behind it) and :func:`label_change_rate`; the code
  path per platform in one place, :func:`default_mutant_path`;
* :mod:`~explicable_jax.mutation.sprt`: Wang et al.'s sequential test,
  :func:`sprt_detect`.

>>> import jax, jax.numpy as jnp, numpy as np
>>> from explicable_jax import mutation
>>> params = {"dense": {"kernel": jnp.eye(2), "bias": jnp.zeros(2)}}
>>> logits_fn = lambda p, x: x @ p["dense"]["kernel"] + p["dense"]["bias"]
>>> mutants, info = mutation.make_mutants(jax.random.key(0), params, 4, "NAI", 0.5,
...                                       layers="kernels")
>>> lcr = mutation.label_change_rate(logits_fn, mutants, np.eye(2, dtype=np.float32),
...                                  params=params)
>>> lcr.shape, float(lcr.sum())
((2,), 1.0)
"""
from __future__ import annotations

from explicable_jax.mutation.ensembles import (GateRejectedError, accuracy_gate,
                                               make_mutants, mutate_many)
from explicable_jax.mutation.operators import (BIAS_NAMES, GF_MODES, GRANULARITIES, LAYERS,
                                               OPERATORS, eligible_paths, gaussian_fuzzing,
                                               neuron_activation_inverse, neuron_switch,
                                               operator_names, register_operator,
                                               weight_shuffling)
from explicable_jax.mutation.predictions import (MESHES, SHARE_PREFIX_MIN_PAIRS, STRATEGIES,
                                                 MutantPath, default_mutant_path,
                                                 label_change_rate, mutant_predictions)
from explicable_jax.mutation.sprt import sprt_detect

__all__ = [
    # operators and their registry
    "OPERATORS", "register_operator", "operator_names", "gaussian_fuzzing",
    "neuron_activation_inverse", "weight_shuffling", "neuron_switch", "eligible_paths",
    "LAYERS", "GRANULARITIES", "GF_MODES", "BIAS_NAMES",
    # ensembles and the accuracy gate
    "mutate_many", "make_mutants", "accuracy_gate", "GateRejectedError",
    # predictions and label change rate
    "mutant_predictions", "label_change_rate", "default_mutant_path", "MutantPath",
    "STRATEGIES", "MESHES", "SHARE_PREFIX_MIN_PAIRS",
    # Wang et al.'s sequential test
    "sprt_detect",
]
