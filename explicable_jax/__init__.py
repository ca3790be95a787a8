"""explicable_jax: classifiers whose mistakes humans can understand, whose
errors can be caught and whose hesitations can be explained, in JAX/Flax.

The library, bottom to top (nothing imports what is above it):

================  ==============================================================
module            what it holds
================  ==============================================================
``conventions``   the argument conventions every public function follows
``models``        the model zoo and :class:`~explicable_jax.models.Classifier`,
                  the one model contract
``data``          dataset registry, loaders, generated sets, batches
``training``      ``fit``/``evaluate``/``predict``, train state, steps,
                  checkpoints, data parallelism
``losses``        per-example losses: weighted cross-entropy, RRR penalties
``metrics``       accuracy, confusion, ROC/AUROC/AUPR, risk-coverage
``stats``         bootstrap intervals and paired tests
``attribution``   Captum-style input and layer attributions, and their
                  evaluation
``robustness``    attacks and corruptions
``similarity``    class-similarity matrices (WordNet, IHL, CHL) (Olmo et al.)
``mutation``      mutation operators, mutant ensembles, label change rate,
                  SPRT (Wang et al.)
``detection``     error scores, the error detector and combiners (Wu et al.)
``rrr``           right for the right reasons (Ross et al.)
``deliberative``  difficulty, class maps, ambiguities, insecurities
                  (Wang and Vasconcelos)
``viz``           host-side plots
``app``           the ``explicable-jax`` command, the audit and its report
================  ==============================================================

The subpackages are imported on first use (``explicable_jax.metrics`` or
``from explicable_jax import metrics``), so ``import explicable_jax`` stays
cheap. So are the headline names below, the ones a first session calls (each
is the subpackage's own object, e.g. ``explicable_jax.fit is
explicable_jax.training.fit``):

* the model contract: ``Classifier``, ``from_nnx``, ``from_functions``;
* training: ``fit``, ``FitConfig``, ``evaluate``, ``predict``;
* explicable mistakes: ``explicability_matrix``, ``weighted_cross_entropy``,
  ``hard_soft_scores``;
* error detection: ``auroc``, ``make_mutants``, ``label_change_rate``,
  ``sprt_detect``, ``layer_conductance``, ``train_detector``;
* explanations: ``integrated_gradients``, ``infidelity``, ``sensitivity_max``,
  ``input_gradient_penalty``, ``insecurities``;
* the audit: ``audit``, ``AuditConfig``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "app", "attribution", "conventions", "data", "deliberative", "detection", "losses",
    "metrics", "models", "mutation", "robustness", "rrr", "similarity", "stats", "training",
    "viz",
)
# Headline name -> the module that defines it.
_HEADLINES = {
    "Classifier": "models", "from_nnx": "models", "from_functions": "models",
    "fit": "training", "FitConfig": "training", "evaluate": "training", "predict": "training",
    "explicability_matrix": "similarity", "weighted_cross_entropy": "losses",
    "hard_soft_scores": "metrics", "auroc": "metrics",
    "make_mutants": "mutation", "label_change_rate": "mutation", "sprt_detect": "mutation",
    "layer_conductance": "attribution", "train_detector": "detection",
    "integrated_gradients": "attribution", "infidelity": "attribution.evaluation",
    "sensitivity_max": "attribution.evaluation", "input_gradient_penalty": "losses",
    "insecurities": "deliberative", "audit": "app.audit", "AuditConfig": "app.audit",
}

__all__ = [  # the subpackages, the headline names, the version
    "app", "attribution", "conventions", "data", "deliberative", "detection", "losses",
    "metrics", "models", "mutation", "robustness", "rrr", "similarity", "stats", "training",
    "viz",
    "Classifier", "from_nnx", "from_functions", "fit", "FitConfig", "evaluate", "predict",
    "explicability_matrix", "weighted_cross_entropy", "hard_soft_scores", "auroc",
    "make_mutants", "label_change_rate", "sprt_detect", "layer_conductance", "train_detector",
    "integrated_gradients", "infidelity", "sensitivity_max", "input_gradient_penalty",
    "insecurities", "audit", "AuditConfig",
    "__version__",
]

if TYPE_CHECKING:
  from explicable_jax import (attribution, conventions, data, deliberative, detection,
                              losses, metrics, models, mutation, robustness, rrr, similarity,
                              stats, training, viz)
  from explicable_jax.attribution import integrated_gradients, layer_conductance
  from explicable_jax.attribution.evaluation import infidelity, sensitivity_max
  from explicable_jax.deliberative import insecurities
  from explicable_jax.detection import train_detector
  from explicable_jax.losses import input_gradient_penalty, weighted_cross_entropy
  from explicable_jax.metrics import auroc, hard_soft_scores
  from explicable_jax.models import Classifier, from_functions, from_nnx
  from explicable_jax.mutation import label_change_rate, make_mutants, sprt_detect
  from explicable_jax.similarity import explicability_matrix
  from explicable_jax.training import FitConfig, evaluate, fit, predict
  # audit and AuditConfig (explicable_jax.app.audit) are left to __getattr__:
  # no module outside app/ imports the app layer (tests/test_readme.py).


def __getattr__(name: str) -> Any:
  if name in _SUBPACKAGES:
    return importlib.import_module(f"{__name__}.{name}")
  if name in _HEADLINES:
    value = getattr(importlib.import_module(f"{__name__}.{_HEADLINES[name]}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(__all__)
