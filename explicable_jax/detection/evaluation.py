"""One table for many error scores on the same predictions.

Every error detector, whatever it reads (logits, features, conductance,
mutants), ends as one score per prediction, higher = more likely wrong.
:func:`score_table` puts any number of them side by side with the metrics of
the field: AUROC and AUPR with errors as the positive class and FPR at 95%
TPR (Hendrycks and Gimpel, ICLR 2017), AURC and E-AURC (Geifman, Uziel and
El-Yaniv, ICLR 2019), selective accuracy at fixed coverages, and, when a
threshold chosen elsewhere is given, the recalls of right and wrong
predictions at it; and :func:`compare_to_baseline` adds the paired bootstrap
interval of each score's AUROC gain over a baseline (the model's own
confidence, by default).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation, metrics
from explicable_jax.detection import detector

__all__ = [
    "METRICS", "compare_to_baseline", "score_row", "score_table",
]

METRICS = ("auroc", "aupr", "fpr95", "aurc", "e_aurc")


def _check_coverages(coverages) -> None:
  """``coverages``: a sequence of shares in ``(0, 1]`` (one number is named)."""
  if isinstance(coverages, (str, bytes)) or np.ndim(coverages) != 1:
    raise TypeError(f"coverages must be a sequence of shares in (0, 1], e.g. (0.8, 0.9); got "
                    f"{coverages!r}" + (f" (one coverage? pass ({coverages!r},))"
                                        if np.ndim(coverages) == 0 else "") + ".")


@conventions.boundary(scores="scores", is_wrong="mask", threshold="number")
def score_row(scores, is_wrong, *, threshold: float | None = None,
              coverages: Sequence[float] = (0.8, 0.9, 0.95)) -> dict[str, float]:
  """The metrics of one error score: ``auroc``, ``aupr``, ``fpr95``,
  ``aurc``, ``e_aurc``, ``selective_accuracy@c`` for each coverage ``c``,
  the error rate, and with ``threshold`` the :func:`~detector.recalls` at it."""
  _check_coverages(coverages)
  row = {"auroc": metrics.auroc(scores, is_wrong), "aupr": metrics.aupr(scores, is_wrong),
         "fpr95": metrics.fpr_at_tpr(scores, is_wrong, 0.95),
         "aurc": metrics.aurc(scores, is_wrong), "e_aurc": metrics.e_aurc(scores, is_wrong),
         "error_rate": float(np.mean(np.asarray(is_wrong, bool)))}
  for c in coverages:
    row[f"selective_accuracy@{c:g}"] = metrics.selective_accuracy(scores, is_wrong, c)
  if threshold is not None:
    row["threshold"] = float(threshold)
    row.update(detector.recalls(scores, is_wrong, threshold))
  return row


@conventions.boundary(scores="scores{}", is_wrong="mask")
def score_table(scores: Mapping[str, np.ndarray], is_wrong, *,
                thresholds: Mapping[str, float] | None = None,
                coverages: Sequence[float] = (0.8, 0.9, 0.95)) -> dict[str, dict]:
  """:func:`score_row` for every named score on the same ``is_wrong``.

  Args:
    scores: ``{name: (N,) error scores}``, higher = more likely wrong.
    is_wrong: ``(N,)`` booleans, one per prediction.
    thresholds: optional ``{name: threshold}`` chosen on other data (a
      validation split); names without one get no recalls.
  """
  if not isinstance(scores, Mapping) or not scores:
    raise ValueError(f"scores must be a non-empty mapping of name to (N,) scores; "
                     f"got {type(scores).__name__}.")
  thresholds = dict(thresholds or {})
  unknown = sorted(set(thresholds) - set(scores))
  if unknown:
    raise ValueError(f"thresholds names scores that are not given: {unknown}; "
                     f"scores are {sorted(scores)}.")
  return {name: score_row(s, is_wrong, threshold=thresholds.get(name), coverages=coverages)
          for name, s in scores.items()}


@conventions.boundary(scores="scores{}", is_wrong="mask")
def compare_to_baseline(key: jax.Array, scores: Mapping[str, np.ndarray], is_wrong, *,
                        baseline: str = "msp", n_resamples: int = 1000,
                        level: float = 0.95) -> dict[str, dict]:
  """The AUROC gain of every score over ``scores[baseline]`` with its paired
  bootstrap interval (:func:`explicable_jax.metrics.bootstrap_auroc_difference`);
  every score is resampled with the same indices, from ``key``."""
  key = _validation.check_key("key", key, call="compare_to_baseline(key, ...)")
  _validation.check_choice("baseline", baseline, tuple(scores))
  others = {name: s for name, s in scores.items() if name != baseline}
  if not others:
    raise ValueError(
        f"scores must hold at least one score besides the baseline {baseline!r} to compare "
        f"with it; got only {sorted(scores)}.")
  return metrics.bootstrap_auroc_differences(key, others, scores[baseline], is_wrong,
                                             n_resamples=n_resamples, level=level)
