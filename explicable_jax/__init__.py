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
cheap.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "app", "attribution", "conventions", "data", "deliberative", "detection", "losses",
    "metrics", "models", "mutation", "robustness", "rrr", "similarity", "stats", "training",
    "viz", "__version__",
]

if TYPE_CHECKING:
  from explicable_jax import (attribution, conventions, data, deliberative, detection,
                              losses, metrics, models, mutation, robustness, rrr, similarity,
                              stats, training, viz)


def __getattr__(name: str) -> Any:
  if name in __all__ and name != "__version__":
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(__all__)
