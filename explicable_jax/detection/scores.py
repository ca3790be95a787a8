"""Error scores from a classifier's own outputs: the baselines of error detection.

Every function maps a batch to an ``(N,)`` **error score, higher = more likely
wrong**, so all of them go straight into :func:`explicable_jax.metrics.auroc`,
:func:`~explicable_jax.metrics.aupr`, :func:`~explicable_jax.metrics.aurc` and
the combiners, beside conductance (:func:`explicable_jax.detection.train_detector`)
and the label change rate (:func:`explicable_jax.mutation.label_change_rate`).
With ``p = softmax(z / T)`` of the logits ``z``:

==================  ==========================================  ==============================
name                error score                                 paper
==================  ==========================================  ==============================
``msp``             ``1 - max_c p_c``                           Hendrycks and Gimpel, ICLR 2017
``entropy``         ``-sum_c p_c log p_c``                      (predictive entropy)
``margin``          ``-(p_(1) - p_(2))``, top two probabilities (margin / best-versus-second)
``doctor_alpha``    ``(1 - sum_c p_c^2) / sum_c p_c^2``         Granese et al., NeurIPS 2021
``doctor_beta``     ``(1 - max p) / max p``                     Granese et al., NeurIPS 2021
``energy``          ``-T logsumexp(z / T)``                     Liu et al., NeurIPS 2020
``mahalanobis``     ``min_c (f - mu_c)^T S^-1 (f - mu_c)``      Lee et al., NeurIPS 2018
==================  ==========================================  ==============================

DOCTOR's scores are the statistics its two detectors threshold (``D_alpha``
and ``D_beta``, without the optional input perturbation); ``doctor_beta``
orders predictions exactly as ``msp`` does (it is an increasing function of
it), ``doctor_alpha`` does not. The Mahalanobis score uses class means and
one shared covariance of a layer's features fitted on the training set
(:func:`fit_mahalanobis`), without the input pre-processing or the
feature-ensemble regression of Lee et al.

Pure ``jax.numpy`` functions of arrays: jit them, or call them on host arrays.

The logit scores form one registry, :data:`LOGIT_SCORES` (name to function):
``explicable-jax detect`` computes every one of them and takes its
``--scores`` choices from it, and the audit takes its baseline (``msp``) and
its optional ``--scores`` from it. Add a score with :func:`register_score`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from explicable_jax import conventions
from explicable_jax import _validation

__all__ = [
    "LOGIT_SCORES", "SCORE_FUNCTIONS", "BASELINE", "register_score", "score_names", "msp",
    "entropy", "margin", "doctor_alpha", "doctor_beta", "energy", "logit_scores",
    "GaussianFit", "fit_mahalanobis", "mahalanobis",
]


def _logits(logits) -> jax.Array:
  z = jnp.asarray(logits)
  if z.ndim != 2 or z.shape[-1] < 2:
    raise ValueError(
        f"logits must be (N, classes) with at least 2 classes; got shape {tuple(z.shape)}.")
  if not jnp.issubdtype(z.dtype, jnp.floating):
    raise ValueError(f"logits must be floating point; got dtype {z.dtype}.")
  return z


def _probabilities(logits, temperature: float) -> jax.Array:
  _validation.check_positive("temperature", temperature)
  return jax.nn.softmax(_logits(logits) / temperature, axis=-1)


@conventions.boundary(logits="logits")
def msp(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """``1 - max_c softmax(z / T)_c``: one minus the maximum softmax probability,
  the model's own confidence (Hendrycks and Gimpel, "A Baseline for Detecting
  Misclassified and Out-of-Distribution Examples", ICLR 2017).

  Args:
    logits: ``(N, C)`` class scores.
    temperature: ``T > 0``, dividing the logits first.

  Returns:
    ``(N,)`` error scores, higher = more likely wrong.

  Example:
    >>> msp([[2.0, 0.0], [0.0, 0.0]]).round(4).tolist()  # 1 - sigmoid(2), then a tie
    [0.1192, 0.5]
  """
  return 1.0 - _probabilities(logits, temperature).max(-1)


@conventions.boundary(logits="logits")
def entropy(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """Predictive entropy ``-sum_c p_c log p_c`` in nats (``0 log 0 = 0``).

  Args:
    logits: ``(N, C)`` class scores.
    temperature: ``T > 0``, dividing the logits first.

  Returns:
    ``(N,)`` error scores, higher = more likely wrong.
  """
  z = _logits(logits) / _checked(temperature)
  logp = jax.nn.log_softmax(z, axis=-1)
  return -jnp.sum(jnp.where(logp > -jnp.inf, jnp.exp(logp) * logp, 0.0), axis=-1)


@conventions.boundary(logits="logits")
def margin(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """``-(p_(1) - p_(2))``: minus the gap between the two largest softmax
  probabilities (0 when they tie, -1 for a one-hot prediction).

  Args:
    logits: ``(N, C)`` class scores.
    temperature: ``T > 0``, dividing the logits first.

  Returns:
    ``(N,)`` error scores, higher = more likely wrong.
  """
  top2 = jax.lax.top_k(_probabilities(logits, temperature), 2)[0]
  return -(top2[:, 0] - top2[:, 1])


@conventions.boundary(logits="logits")
def doctor_alpha(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """DOCTOR's ``D_alpha`` statistic (Granese, Romanelli, Gorla, Palamidessi and
  Piantanida, "DOCTOR: A Simple Method for Detecting Misclassification Errors",
  NeurIPS 2021, eq. 4): with ``g(x) = sum_c p_c^2``,

  .. math:: D_\\alpha(x) = \\frac{1 - g(x)}{g(x)}

  (their detector flags ``x`` when it exceeds a threshold ``gamma``).

  Args:
    logits: ``(N, C)`` class scores.
    temperature: ``T > 0``, dividing the logits first.

  Returns:
    ``(N,)`` error scores, higher = more likely wrong.
  """
  p = _probabilities(logits, temperature)
  g = jnp.sum(p * p, axis=-1)
  return (1.0 - g) / g


@conventions.boundary(logits="logits")
def doctor_beta(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """DOCTOR's ``D_beta`` statistic (Granese et al., NeurIPS 2021): with the
  estimated error probability ``P_e(x) = 1 - max_c p_c``,
  ``P_e / (1 - P_e)``; an increasing function of :func:`msp`.

  Args:
    logits: ``(N, C)`` class scores.
    temperature: ``T > 0``, dividing the logits first.

  Returns:
    ``(N,)`` error scores, higher = more likely wrong.
  """
  pe = msp(logits, temperature=temperature)
  return pe / (1.0 - pe)


@conventions.boundary(logits="logits")
def energy(logits: ArrayLike, *, temperature: float = 1.0) -> jax.Array:
  """The free energy ``E(x) = -T logsumexp_c(z_c / T)`` (Liu, Wang, Owens and
  Li, "Energy-based Out-of-distribution Detection", NeurIPS 2020); low energy
  means a confident, in-distribution input, so higher = more likely wrong.

  Args:
    logits: ``(N, C)`` class scores.
    temperature: ``T > 0``, dividing the logits first.

  Returns:
    ``(N,)`` error scores, higher = more likely wrong.
  """
  t = _checked(temperature)
  return -t * jax.nn.logsumexp(_logits(logits) / t, axis=-1)


def _checked(temperature):
  _validation.check_positive("temperature", temperature)
  return temperature


# ---------------------------------------------------------------------------
# The registry.

LOGIT_SCORES: dict[str, Callable[..., jax.Array]] = {
    "msp": msp, "entropy": entropy, "margin": margin, "doctor_alpha": doctor_alpha,
    "doctor_beta": doctor_beta, "energy": energy,
}
"""Error scores of the logits by name, ``fn(logits, *, temperature) -> (N,)``,
higher = more likely wrong. The one list of logit scores: ``explicable-jax
detect`` computes them all and the CLI's ``--scores`` choices (detect and
audit) are its names (:func:`score_names`); extend it with
:func:`register_score`."""

SCORE_FUNCTIONS = LOGIT_SCORES
"""The same registry under its earlier name."""

BASELINE = "msp"
"""The score every other is set against (the model's own confidence)."""


@conventions.boundary()
def register_score(name: str, fn: Callable[..., jax.Array], *, overwrite: bool = False
                   ) -> None:
  """Makes ``fn`` available as the logit error score ``name`` everywhere.

  ``fn(logits, *, temperature=1.0)`` maps ``(N, C)`` logits to ``(N,)``
  scores, higher = more likely wrong, in ``jax.numpy`` (it may be jitted).
  After this call ``name`` is computed by ``explicable-jax detect`` and
  :func:`logit_scores`, and accepted by the CLI's ``--scores`` (detect and
  audit; parsers built after the call).

  Args:
    name: the score's name (``"msp"``, ``"energy"``...).
    fn: the score function.
    overwrite: replace a score of that name.

  Raises:
    ValueError: ``name`` is taken (pass ``overwrite=True``) or not a string,
      or ``fn`` takes no ``temperature`` keyword.
    TypeError: ``fn`` is not callable.

  >>> import jax.numpy as jnp
  >>> register_score("top_logit", lambda z, *, temperature=1.0: -jnp.max(z, -1) / temperature)
  >>> float(logit_scores(jnp.array([[2.0, 0.0]]), names=("top_logit",))["top_logit"][0])
  -2.0
  >>> _ = LOGIT_SCORES.pop("top_logit")
  """
  if callable(fn) and not _validation.accepts_keyword(fn, "temperature"):
    raise ValueError(f"fn must take a keyword argument temperature (fn(logits, *, "
                     f"temperature=1.0)); {getattr(fn, '__name__', fn)!r} does not.")
  _validation.register("logit score", LOGIT_SCORES, name, fn, arg="fn", overwrite=overwrite)


def score_names() -> tuple[str, ...]:
  """The registered logit score names, in registration order (``msp``, the
  baseline, first); read this when building a CLI's choices."""
  return tuple(LOGIT_SCORES)


@conventions.boundary(logits="logits")
def logit_scores(logits: ArrayLike, *, names: Sequence[str] | None = None,
                 temperature: float = 1.0) -> dict[str, np.ndarray]:
  """Every logit-based error score in ``names`` as host arrays ``(N,)``.

  Args:
    logits: ``(N, C)`` class scores.
    names: names of :data:`LOGIT_SCORES` (default: every registered one).
    temperature: ``T`` of ``softmax(z / T)``.

  Returns:
    ``{name: (N,) scores}``, higher = more likely wrong.
  """
  names = score_names() if names is None else _validation.check_names("names", names)
  for n in names:
    _validation.check_choice("names", n, LOGIT_SCORES)
  out = {n: np.asarray(LOGIT_SCORES[n](logits, temperature=temperature)) for n in names}
  for n, v in out.items():  # a registered score must give one score per example
    if v.shape != (np.shape(logits)[0],):
      raise ValueError(f"score {n!r} must map (N, C) logits to (N,) scores; it returned shape "
                       f"{v.shape} for {np.shape(logits)[0]} examples (register_score's "
                       "function reduces over the classes).")
  return out


class GaussianFit(NamedTuple):
  """Class means ``(C, D)`` and the shared precision matrix ``(D, D)``."""
  means: jax.Array
  precision: jax.Array


@conventions.boundary(features="batch", labels="labels")
def fit_mahalanobis(features: ArrayLike, labels: ArrayLike, num_classes: int, *, ridge: float = 1e-6
                    ) -> GaussianFit:
  """Class-conditional Gaussians with one shared covariance (Lee, Lee, Lee and
  Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples
  and Adversarial Attacks", NeurIPS 2018, eq. 1):

  .. math:: \\hat\\mu_c = \\frac{1}{N_c}\\sum_{i: y_i = c} f_i,\\qquad
            \\hat\\Sigma = \\frac1N \\sum_c \\sum_{i: y_i = c}
            (f_i - \\hat\\mu_c)(f_i - \\hat\\mu_c)^\\top

  fitted in float64 on the host; ``ridge * mean(diag)`` is added to the
  diagonal before inverting, so a rank-deficient layer still gives a
  precision matrix, with a warning when ``N - C < D`` (the covariance is
  then rank-deficient and the distances are dominated by the ridge).

  Args:
    features: ``(N, D)`` training features (e.g. the per-channel mean of the
      layer where conductance is taken).
    labels: ``(N,)`` training labels.
    num_classes: ``C``; every class needs at least one example.
  """
  f = np.asarray(features, np.float64)
  y = np.asarray(labels)
  if f.ndim != 2:
    raise ValueError(f"features must be (N, D); got shape {f.shape}.")
  if y.shape != (f.shape[0],):
    raise ValueError(f"labels must be ({f.shape[0]},), one per row of features; got "
                     f"{y.shape}.")
  _validation.check_positive("num_classes", num_classes, integer=True)
  _validation.check_labels("labels", y, num_classes)
  _validation.check_nonnegative("ridge", ridge)
  counts = np.bincount(y, minlength=num_classes)
  if np.any(counts == 0):
    raise ValueError(
        f"every class needs a training example; classes {np.flatnonzero(counts == 0).tolist()} "
        "have none.")
  if len(f) - num_classes < f.shape[1]:
    warnings.warn(
        f"fit_mahalanobis: {len(f)} examples of {num_classes} classes give a shared covariance "
        f"of rank at most {len(f) - num_classes}, below the {f.shape[1]} feature dimensions: "
        "the precision along the missing directions is 1 / (ridge * mean variance), so "
        "distances are dominated by the ridge. Fit on more examples than dimensions plus "
        "classes, reduce the features, or raise ridge.", stacklevel=_validation.user_stacklevel())
  means = np.stack([f[y == c].mean(0) for c in range(num_classes)])
  centred = f - means[y]
  cov = centred.T @ centred / len(f)
  cov += ridge * max(float(np.mean(np.diag(cov))), 1e-12) * np.eye(f.shape[1])
  return GaussianFit(jnp.asarray(means, jnp.float32),
                     jnp.asarray(np.linalg.inv(cov), jnp.float32))


@conventions.boundary(features="batch")
def mahalanobis(fit: GaussianFit, features: ArrayLike) -> jax.Array:
  """``min_c (f - mu_c)^T S^-1 (f - mu_c)``: the squared Mahalanobis distance
  to the closest class mean (Lee et al.'s confidence score, negated)."""
  f = jnp.asarray(features, jnp.float32)
  if f.ndim != 2 or f.shape[1] != fit.means.shape[1]:
    raise ValueError(
        f"features must be (N, {fit.means.shape[1]}) like the fitted ones; got shape "
        f"{tuple(f.shape)}.")
  d = f[:, None, :] - fit.means[None]
  return jnp.einsum("ncd,de,nce->nc", d, fit.precision, d).min(-1)
