"""Wang et al.'s sequential probability ratio test over mutants (ICSE 2019)."""
from __future__ import annotations

import numpy as np

from explicable_jax import _validation, conventions

__all__ = ["sprt_detect"]


@conventions.boundary(label_changes="mask")
def sprt_detect(label_changes, threshold: float, *, indifference: float | None = None,
                alpha: float = 0.05, beta: float = 0.05,
                decide_on_change_only: bool = True) -> dict[str, np.ndarray]:
  """Wang et al.'s SPRT detector over mutants, for every input at once.

  Examines mutants one by one and tests a high label change rate
  ``p_hi = threshold + indifference`` (suspicious: adversarial or wrong)
  against a low one ``p_lo = threshold - indifference``. After ``k``
  mutants with ``z`` label changes,

  .. math:: \\log \\Lambda_k = z \\log\\frac{p_{hi}}{p_{lo}}
            + (k - z) \\log\\frac{1 - p_{hi}}{1 - p_{lo}}

  The input is suspicious once ``log Λ >= log((1 - β) / α)`` and normal once
  ``log Λ <= log(β / (1 - α))``. As in Wang et al.'s ``Detector.detect``
  ("Adversarial Sample Detection for Deep Neural Network through Model
  Mutation Testing", ICSE 2019), the test is checked only after a mutant that
  changed the label (``decide_on_change_only``), and an input still
  undecided after all mutants counts as normal.

  Args:
    label_changes: ``(n_mutants, N)`` booleans, mutant ``m`` changed the
      label of input ``i`` (``mutant_predictions(...) != original``), in the
      order the mutants are examined (the mask convention: bool or 0/1;
      predicted class ids are refused). Mutants come first, as
      :func:`mutant_predictions` returns them: a transposed ``(N, n_mutants)``
      matrix has a valid shape and cannot be told apart, so build it as
      ``mutant_predictions(model, mutants, x) != original[None]``.
    threshold: ``kappa_nor``, e.g. a multiple of the mean LCR of normal inputs.
    indifference: ``sigma``, half-width of the indifference region
      (default ``0.1 * threshold``).
    alpha, beta: error bounds of the test.
    decide_on_change_only: check the test after every mutant when False.

  Returns:
    ``{"suspicious": (N,) bool, "mutants_used": (N,) int, "decided": (N,) bool}``.

  >>> import numpy as np
  >>> changes = np.zeros((40, 2), bool)
  >>> changes[:, 0] = True  # input 0 changes label under every mutant
  >>> out = sprt_detect(changes, 0.1)
  >>> out["suspicious"].tolist(), out["decided"].tolist()
  ([True, False], [True, False])
  """
  c = np.asarray(label_changes).astype(bool)
  if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
    raise ValueError(f"label_changes must be (n_mutants, N), at least one mutant and one "
                     f"input; got shape {c.shape}.")
  _validation.check_fraction("threshold", threshold, closed=False)
  indifference = 0.1 * threshold if indifference is None else indifference
  _validation.check_positive("indifference", indifference)
  p_hi, p_lo = threshold + indifference, threshold - indifference
  if not (0 < p_lo < p_hi < 1):
    raise ValueError(
        f"threshold +- indifference must lie in (0, 1); got {p_lo:g} and {p_hi:g}.")
  _validation.check_fraction("alpha", alpha, closed=False)
  _validation.check_fraction("beta", beta, closed=False)
  if alpha + beta >= 1:
    raise ValueError(
        f"alpha + beta must be below 1 (Wald's test: the 'suspicious' bound (1 - beta) / alpha "
        f"must lie above the 'normal' bound beta / (1 - alpha)); got alpha={alpha}, "
        f"beta={beta}, which decides every input at once.")
  k = np.arange(1, c.shape[0] + 1)[:, None]
  z = np.cumsum(c, axis=0)
  llr = z * np.log(p_hi / p_lo) + (k - z) * np.log((1 - p_hi) / (1 - p_lo))
  suspicious_now = llr >= np.log((1 - beta) / alpha)
  normal_now = llr <= np.log(beta / (1 - alpha))
  stop = suspicious_now | normal_now
  if decide_on_change_only:
    stop &= c
  decided = stop.any(axis=0)
  first = np.where(decided, stop.argmax(axis=0), c.shape[0] - 1)
  cols = np.arange(c.shape[1])
  suspicious = decided & suspicious_now[first, cols]
  return {"suspicious": suspicious, "mutants_used": first + 1, "decided": decided}
