"""Paired statistics for comparing two models, or two scores, on the same examples.

A difference between two numbers measured on one test set is a finding only
when it is larger than what resampling the test set would give. The tests
here pair the two sides example by example, so that what both get right or
wrong cancels:

* :func:`mcnemar_exact`: top-1 of two models on the same images (McNemar,
  1947; the exact binomial form on the discordant images);
* :func:`paired_bootstrap`: any statistic of paired per-example arrays
  (Efron and Tibshirani, 1993), with a percentile interval and a two-sided
  bootstrap p-value; :func:`bootstrap_mistake_similarity_difference` applies
  it to the mean similarity of two models' mistakes (Olmo et al.'s ``M``);
* :func:`t_test_over_seeds`: a one-sample t-test of per-seed paired
  differences, for results repeated over a few seeds.

The AUROC difference of two error scores on the same examples is
:func:`explicable_jax.metrics.bootstrap_auroc_difference`. Host-side: every
function takes and returns numpy values.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import _validation, conventions, metrics

__all__ = [
    "NO_DIFFERENCE", "bootstrap_mistake_similarity_difference", "mcnemar_exact",
    "paired_bootstrap", "t_test_over_seeds", "verdict",
]

# The verdict words of a paired comparison, one place for every results page.
NO_DIFFERENCE = "no detectable difference"


@conventions.boundary(correct_a="mask", correct_b="mask")
def mcnemar_exact(correct_a: ArrayLike, correct_b: ArrayLike) -> dict:
  """McNemar's exact test of two classifiers on the same examples.

  With ``b`` the examples only ``a`` gets right and ``c`` those only ``b``
  gets right, under the null hypothesis of equal accuracy each discordant
  example is ``a``'s with probability 1/2, so the two-sided p-value is

  .. math:: p = \\min\\Big(1,\\ 2 \\sum_{k=0}^{\\min(b, c)} \\binom{b + c}{k} 2^{-(b + c)}\\Big)

  (1 when there is no discordant example). Exact integer arithmetic.

  Args:
    correct_a: ``(N,)`` booleans, model ``a`` right on example ``n``.
    correct_b: ``(N,)`` booleans, model ``b`` right on the same examples.

  Returns:
    ``{"only_a": b, "only_b": c, "difference": (b - c) / N, "p_value": p}``;
    ``difference`` is ``a``'s accuracy minus ``b``'s.

  Example:
    >>> mcnemar_exact([1, 1, 1, 0], [0, 0, 0, 0])["p_value"]
    0.25
  """
  a = np.asarray(correct_a).astype(bool)
  b = np.asarray(correct_b).astype(bool)
  if a.ndim != 1 or a.size == 0 or a.shape != b.shape:
    raise ValueError(f"correct_a and correct_b must be non-empty 1-D arrays of one shape; got "
                     f"shapes {a.shape} and {b.shape}.")
  only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
  n = only_a + only_b
  tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
  p = 1.0 if n == 0 else min(1.0, float(2 * tail / (2 ** n)))
  return {"only_a": only_a, "only_b": only_b, "difference": (only_a - only_b) / a.size,
          "p_value": p}


@conventions.key_first
def paired_bootstrap(key: jax.Array, statistic: Callable[..., float], arrays: Sequence, *,
                     n_resamples: int = 1000, level: float = 0.95) -> dict:
  """A statistic of paired per-example arrays with its bootstrap interval.

  Every resample draws ``N`` example indices with replacement (from ``key``)
  and evaluates ``statistic`` on the rows they pick of every array, so the
  arrays stay paired. With ``d*`` the resampled values,

  .. math:: [\\mathrm{low}, \\mathrm{high}] = [q_{(1 - \\ell)/2}(d^*),\\ q_{(1 + \\ell)/2}(d^*)],
            \\quad p = \\min(1,\\ 2 \\min(P(d^* \\le 0), P(d^* \\ge 0)))

  (percentile interval at ``level`` ``l``; ``p`` is the two-sided bootstrap
  p-value of "the statistic is 0", meaningful for a difference). Resamples
  where ``statistic`` is not finite (e.g. no mistake drawn) are dropped and
  counted.

  Args:
    key: PRNG key for the indices.
    statistic: ``statistic(*rows) -> float``, one row array per input.
    arrays: arrays sharing their first axis ``N`` (the paired examples).
    n_resamples: number of resamples (>= 2).
    level: interval coverage in ``(0, 1)``.

  Returns:
    ``{"estimate", "low", "high", "p_value", "dropped"}``; ``estimate`` is
    ``statistic`` on the arrays themselves.
  """
  key = _validation.check_key("key", key, call="paired_bootstrap(key, ...)")
  _validation.check_fraction("level", level, closed=False)
  if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 2:
    raise ValueError(f"n_resamples must be an int >= 2; got {n_resamples!r}.")
  if isinstance(arrays, (np.ndarray, jax.Array)):
    raise TypeError(
        f"arrays must be a sequence of arrays resampled together (one per argument of "
        f"statistic); got one {type(arrays).__name__} of shape {np.shape(arrays)}: wrap it, "
        "arrays=[x].")
  arrays = [np.asarray(a) for a in arrays]
  if not arrays or not arrays[0].ndim:
    raise ValueError("arrays must hold at least one array with a first (example) axis.")
  n = arrays[0].shape[0]
  for i, a in enumerate(arrays):
    if not a.ndim or a.shape[0] != n:
      raise ValueError(f"arrays[{i}] must have {n} rows like arrays[0]; got shape {a.shape}.")
  _validation.check_signature("statistic", statistic, len(arrays),
                              f"statistic(*rows) -> float, of {len(arrays)} row array(s)")
  whole = np.asarray(statistic(*arrays))
  if whole.shape != ():
    raise ValueError(
        f"statistic must return one number (a scalar) for the rows of every array; on the "
        f"arrays themselves it returned shape {whole.shape}: reduce it (e.g. .mean()).")
  idx = np.asarray(jax.random.randint(key, (n_resamples, n), 0, n))
  draws = np.array([statistic(*(a[i] for a in arrays)) for i in idx], dtype=np.float64)
  kept = draws[np.isfinite(draws)]
  if kept.size < 2:
    raise ValueError("statistic was finite on fewer than 2 resamples; it cannot be bootstrapped.")
  lo, hi = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2])
  p = min(1.0, 2 * min(float(np.mean(kept <= 0)), float(np.mean(kept >= 0))))
  return {"estimate": float(whole), "low": float(lo), "high": float(hi),
          "p_value": float(p), "dropped": int(draws.size - kept.size)}


@conventions.boundary(labels="labels", preds_a="labels", preds_b="labels")
def bootstrap_mistake_similarity_difference(key: jax.Array, labels: ArrayLike, preds_a: ArrayLike,
                                            preds_b: ArrayLike,
                                            similarity_matrix: ArrayLike, *,
                                            n_resamples: int = 1000,
                                            level: float = 0.95) -> dict:
  """Mean ``S[y, pred]`` of model ``a``'s mistakes minus model ``b``'s, with a
  paired bootstrap over the examples (:func:`paired_bootstrap`).

  .. math:: d = \\bar s_a - \\bar s_b, \\quad
            \\bar s_m = \\frac{1}{|E_m|} \\sum_{n \\in E_m} S_{y_n, \\hat y^m_n}

  The two means run over different sets of mistakes ``E_a`` and ``E_b``; the
  resampling draws images, so each resample keeps both models' predictions
  of the same images. A positive ``d`` says ``a``'s mistakes are more similar
  to the truth under ``S`` (Olmo et al.'s explicability measure with
  ``S = M``, :func:`explicable_jax.similarity.explicability_matrix`).

  Returns:
    :func:`paired_bootstrap`'s dict.
  """
  s = np.asarray(similarity_matrix, np.float64)
  y, pa, pb = (np.asarray(v) for v in (labels, preds_a, preds_b))
  for name, p in (("preds_a", pa), ("preds_b", pb)):  # validates; raises without a mistake
    if np.shape(p) == np.shape(y) and not np.any(p != y):
      raise ValueError(f"{name} has no mistakes, so its mean mistake similarity is undefined "
                       "(and so is the difference): compare models that both err.")
    metrics.mean_mistake_similarity(y, p, s)

  def mean_of_mistakes(yy, pp):
    wrong = yy != pp
    return s[yy[wrong], pp[wrong]].mean() if wrong.any() else np.nan

  return paired_bootstrap(key, lambda yy, a, b: mean_of_mistakes(yy, a) - mean_of_mistakes(yy, b),
                          [y, pa, pb], n_resamples=n_resamples, level=level)


def t_test_over_seeds(differences: ArrayLike) -> dict:
  """One-sample two-sided t-test that per-seed paired differences average 0.

  .. math:: t = \\frac{\\bar d}{s_d / \\sqrt{k}}, \\quad p = 2\\,(1 - F_{t, k-1}(|t|))

  with ``k`` seeds and ``s_d`` the sample standard deviation. Assumes the
  per-seed differences are roughly normal; with three seeds ``p < 0.05``
  needs ``|t| > 4.30``.

  Returns:
    ``{"mean", "sd", "n", "t", "p_value"}`` (``t`` and ``p_value`` are
    ``None`` below two seeds; ``p_value`` is 0 for a nonzero mean with no
    spread).
  """
  try:
    d = np.asarray(differences, np.float64)
  except (TypeError, ValueError):
    raise TypeError(f"differences must be numbers, one per seed; got "
                    f"{type(differences).__name__} {differences!r:.60}.") from None
  if d.ndim != 1 or d.size == 0 or not np.isfinite(d).all():
    raise ValueError(f"differences must be a non-empty 1-D array of finite numbers; got {d!r}.")
  k = d.size
  mean = float(d.mean())
  if k < 2:
    return {"mean": mean, "sd": None, "n": 1, "t": None, "p_value": None}
  sd = float(d.std(ddof=1))
  if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):
    sd = 0.0  # identical values up to rounding (0.1 three times has sd 1.7e-17)
  if sd == 0:
    warnings.warn(
        f"t_test_over_seeds: the {k} per-seed differences are identical ({mean:g}): no "
        "spread, so the t-test is degenerate (p = 0 for a nonzero mean, 1 for zero); runs "
        "that differ by seed practically never agree exactly: were the seeds varied?",
        UserWarning, stacklevel=_validation.user_stacklevel())
    return {"mean": mean, "sd": 0.0, "n": k, "t": math.copysign(math.inf, mean) if mean else 0.0,
            "p_value": 0.0 if mean else 1.0}
  from scipy import stats as _scipy_stats  # host-side only
  t = mean / (sd / math.sqrt(k))
  return {"mean": mean, "sd": sd, "n": k, "t": float(t),
          "p_value": float(2 * _scipy_stats.t.sf(abs(t), k - 1))}


@conventions.boundary(p_value="probability", difference="number", alpha="probability")
def verdict(p_value: float | None, difference: float, *, alpha: float = 0.05,
            higher: str = "higher", lower: str = "lower") -> str:
  """``"detectably higher"`` / ``"detectably lower"`` when ``p_value < alpha``,
  else :data:`NO_DIFFERENCE` (also without a test). The words every page uses
  for a paired comparison."""
  for name, word in (("higher", higher), ("lower", lower)):
    if not isinstance(word, str):
      raise TypeError(f"{name} must be the word for that direction (a string, e.g. "
                      f"'better'); got {type(word).__name__} {word!r}.")
  if p_value is None or not p_value < alpha or difference == 0:
    return NO_DIFFERENCE
  return "detectably " + (higher if difference > 0 else lower)
