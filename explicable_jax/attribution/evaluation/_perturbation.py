"""Captum's two metrics, ``infidelity`` and ``sensitivity_max`` (Yeh et al., 2019)."""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import conventions
from explicable_jax import _validation
from explicable_jax.attribution.evaluation import _shared
from explicable_jax.attribution._common import Baselines, InputsLike, Target

__all__ = [
    "NORM_ORDS", "default_perturb_func", "gaussian_perturb_func", "infidelity",
    "infidelity_perturb_func_decorator", "sensitivity_max",
]

NORM_ORDS = ("fro", 1, 2, np.inf)


@conventions.boundary()
def infidelity_perturb_func_decorator(multiply_by_inputs: bool = True) -> Callable:
  """Turns a function that only perturbs into one that also returns the
  perturbation, as Captum's decorator of the same name does.

  The decorated ``perturb_func(key, x[, baseline]) -> x_perturbed`` (one
  example) becomes ``(key, x[, baseline]) -> (I, x_perturbed)`` with

  .. math::

     I = \\frac{x - \\tilde x}{x - x'} \\ \\text{(multiply_by_inputs)}
     \\qquad\\text{or}\\qquad I = x - \\tilde x,

  dividing by 1 where ``x - x' == 0`` (``x' = 0`` without baselines). Use
  ``multiply_by_inputs=True`` for attributions that carry the ``(x - x')``
  factor (integrated gradients, gradient x input) and ``False`` for local
  ones (saliency, Grad-CAM, ``multiply_by_inputs=False`` integrated gradients).

  Args:
    multiply_by_inputs: divide the input change by ``x - x'``.

  Returns:
    A decorator.
  """
  if not isinstance(multiply_by_inputs, bool):
    raise TypeError(f"multiply_by_inputs must be True or False; got {multiply_by_inputs!r}.")

  def decorate(perturb_func: Callable) -> Callable:
    if not callable(perturb_func):
      raise TypeError(f"perturb_func must be a function; got {type(perturb_func).__name__}.")

    @functools.wraps(perturb_func)
    def with_perturbations(key, x, baseline=None):
      xp = perturb_func(key, x) if baseline is None else perturb_func(key, x, baseline)
      multi = isinstance(x, (tuple, list))
      xs, xps = (tuple(x), tuple(xp)) if multi else ((x,), (xp,))
      bs = ((None,) * len(xs) if baseline is None
            else tuple(baseline) if multi else (baseline,))
      pert = tuple(
          _shared.safe_div(a - ap, a if b is None else a - b) if multiply_by_inputs else a - ap
          for a, ap, b in zip(xs, xps, bs))
      return (pert if multi else pert[0]), xp
    return with_perturbations
  return decorate


@conventions.boundary(stddev="perturbation")
def gaussian_perturb_func(stddev: float = 0.003) -> Callable:
  """``(key, x) -> (I, x - I)`` with ``I ~ N(0, stddev^2)`` per entry: the
  perturbation of Captum's infidelity tutorial and Yeh et al.'s "noisy"
  perturbations, for local attributions (saliency, Grad-CAM). Works for one
  array or a tuple of arrays."""
  _validation.check_positive("stddev", stddev)

  def perturb(key, x):
    leaves = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    keys = jax.random.split(key, len(leaves)) if len(leaves) > 1 else (key,)
    noise = tuple(stddev * jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves))
    xp = tuple(a - e for a, e in zip(leaves, noise))
    return (noise, xp) if isinstance(x, (tuple, list)) else (noise[0], xp[0])
  return perturb


@conventions.boundary(inputs="batch", attributions="maps", baselines="baseline")
def infidelity(key: jax.Array, forward_func: Any, perturb_func: Callable, inputs: InputsLike,
               attributions: InputsLike, *,
               baselines: Baselines = None, target: Target = None, n_perturb_samples: int = 10,
               max_examples_per_batch: int | None = None, normalize: bool = False) -> jax.Array:
  """Explanation infidelity (Yeh et al., NeurIPS 2019), as Captum's ``infidelity``.

  .. math::

     \\mathrm{INFD}(\\Phi, f, x) = \\mathbb E_{I \\sim \\mu_I}\\Big[\\big(I^\\top
        \\Phi(f, x) - (f(x) - f(x - I))\\big)^2\\Big]

  estimated with ``n_perturb_samples`` draws of ``(I, x - I) =
  perturb_func(key_ij, x_i)`` per example. With ``normalize=True`` the
  attributions are first scaled by the optimal
  ``beta = E[I^T Phi (f(x) - f(x - I))] / E[(I^T Phi)^2]`` (``beta = E[...]``
  when the denominator is 0), which makes the value invariant to the scale of
  ``Phi``:
  ``E[(beta I^T Phi - (f(x) - f(x - I)))^2]``.

  Its parameters are Captum's, under Captum's names (``captum.metrics.infidelity``), so a Captum
  call translates name for name; every one after the inputs is keyword-only with Captum's
  default, and a config object would break that correspondence.

  Args:
    key: PRNG key; sample ``j`` of example ``i`` draws from
      ``fold_in(key, i * n_perturb_samples + j)``.
    forward_func: a :class:`~explicable_jax.models.Classifier` (its logits)
      or a function of a batch returning ``(N, C)`` scores, or ``(N,)`` with
      ``target=None``.
    perturb_func: ``(key, x) -> (I, x_perturbed)`` for one example (``x``
      a tuple for tuple inputs), or ``(key, x, baseline) -> ...`` when
      ``baselines`` are given; :func:`infidelity_perturb_func_decorator`
      turns a function that returns only ``x_perturbed`` into one.
    inputs: a batch ``(N, ...)`` or Captum's tuple of batches.
    attributions: ``Phi``, like ``inputs``, or per input a map whose shape
      is a leading part of the input's (a pixel map ``(N, H, W)`` of
      ``(N, H, W, C)`` images counts for every channel).
    baselines: passed to ``perturb_func``: a scalar, one example's shape, or
      one per example (``None``: not passed).
    target: a class index, ``N`` indices, ``"predicted"`` or ``None`` (the
      model returns one score per example).
    n_perturb_samples: draws of ``I`` per example.
    max_examples_per_batch: rows (examples x draws) per forward pass;
      ``None`` runs every draw in one pass.
    normalize: scale ``Phi`` by the optimal ``beta`` first.

  Returns:
    ``(N,)`` infidelities.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    >>> model, x = (lambda x: x @ w), jnp.ones((2, 3))
    >>> def perturb(key, xi):
    ...   noise = 0.1 * jax.random.normal(key, xi.shape)
    ...   return noise, xi - noise
    >>> phi = jnp.tile(w[:, 0], (2, 1))  # class 0's gradient: exact for a linear model
    >>> infidelity(jax.random.key(0), model, perturb, x, phi, target=0).round(6).tolist()
    [0.0, 0.0]
  """
  key = _validation.check_key("key", key, call="infidelity(key, forward_func, perturb_func, "
                                                "inputs, attributions, ...)")
  _validation.check_signature(
      "perturb_func", perturb_func, 2 if baselines is None else 3,
      "(key, x) -> (perturbation, perturbed x)" if baselines is None else
      "(key, x, baseline) -> (perturbation, perturbed x), since baselines were given (drop "
      "baselines for a (key, x) function)")
  if not isinstance(normalize, bool):
    raise TypeError(f"normalize must be True or False; got {normalize!r}.")
  n_samples = _shared.check_samples("n_perturb_samples", n_perturb_samples)
  model_dyn, model_static = _shared.split_model("forward_func", forward_func)
  x = _shared.Inputs("inputs", inputs)
  fn = _shared.forward({**model_dyn, **model_static}["model"])
  _shared.check_target(fn, x, target)
  phi = _shared.like_inputs("attributions", attributions, x, prefix=True)
  b = None if baselines is None else _shared.per_example_baselines(baselines, x)
  target_dyn, target_static = _shared.split_target(target)
  return _shared.jit_call(
      _infidelity,
      dynamic=dict(key=key, inputs=x.value, phi=phi, b=b, **model_dyn, **target_dyn),
      static=dict(perturb_func=perturb_func, n_samples=n_samples, normalize=normalize,
                  per_chunk=_shared.samples_per_chunk(max_examples_per_batch, x.n, n_samples),
                  **model_static, **target_static))


def _infidelity(*, key, inputs, phi, b, model, target, perturb_func, n_samples, per_chunk,
                normalize):
  x = _shared.Inputs("inputs", inputs)
  fn = _shared.forward(model)
  n = x.n
  t = _shared.targets(fn, x, target)
  f_x = _shared.scores(fn, x.value, t)

  def perturb(k, xi, bi):
    xi = x.wrap(xi)
    out = perturb_func(k, xi) if bi is None else perturb_func(k, xi, x.wrap(bi))
    if not (isinstance(out, tuple) and len(out) == 2):
      raise TypeError(
          "perturb_func must return (perturbations, perturbed_inputs), Captum's form; it "
          "returned " + (f"a tuple of {len(out)}" if isinstance(out, tuple) else "one array"
                         if hasattr(out, "shape") else type(out).__name__)
          + ": a function that only perturbs is wrapped with "
          "infidelity_perturb_func_decorator(), which adds the perturbations.")
    return out

  def chunk(js):
    k = js.shape[0]
    ks = _shared.sample_keys(key, n, js, n_samples)                            # (k, N)
    one = lambda kk: jax.vmap(perturb, in_axes=(0, 0, None if b is None else 0))(
        kk, x.leaves, b)
    pert, xp = jax.vmap(one)(ks)
    pert, xp = x.unwrap(pert), x.unwrap(xp)
    for name, got in (("perturbation", pert), ("perturbed input", xp)):
      for p, xi in zip(got, x.leaves):
        if p.shape[2:] != xi.shape[1:]:
          raise ValueError(f"perturb_func must return a {name} of the example's shape "
                           f"{tuple(xi.shape[1:])}; got {tuple(p.shape[2:])}.")
    a = sum((ph[None] * p).reshape(k, n, -1).sum(-1)
            for ph, p in zip(_to_input_rank(phi, x), pert))
    rows = x.wrap(tuple(v.reshape((k * n,) + v.shape[2:]) for v in xp))
    f_p = _shared.scores(fn, rows, None if t is None else jnp.tile(t, k)).reshape(k, n)
    return a, f_x[None] - f_p                                     # (k, N) each

  a, d = _shared.over_samples(chunk, n_samples, per_chunk)        # (n_samples, N)
  if not normalize:
    return ((a - d) ** 2).sum(0) / n_samples
  aa, ad, dd = (a * a).sum(0), (a * d).sum(0), (d * d).sum(0)
  beta = _shared.safe_div(ad, aa)
  return (beta * beta * aa - 2 * beta * ad + dd) / n_samples


def _to_input_rank(phi, x):
  """Prefix-shaped maps broadcast to their input's rank."""
  return tuple(_shared.expand(p, xi.ndim) for p, xi in zip(phi, x.leaves))


@conventions.boundary(x="batch", perturb_radius="perturbation")
def default_perturb_func(key: jax.Array, x: jax.Array, perturb_radius: float = 0.02):
  """``x + U(-r, r)`` per entry: Captum's default perturbation of
  ``sensitivity_max`` (``r = perturb_radius``), for one example or a tuple."""
  key = _validation.check_key("key", key, call="default_perturb_func(key, x)")
  leaves = tuple(x) if isinstance(x, (tuple, list)) else (x,)
  keys = jax.random.split(key, len(leaves)) if len(leaves) > 1 else (key,)
  out = tuple(a + jax.random.uniform(k, a.shape, a.dtype, -perturb_radius, perturb_radius)
              for k, a in zip(keys, leaves))
  return out if isinstance(x, (tuple, list)) else out[0]


def _norm(v: jax.Array, norm_ord) -> jax.Array:
  return jnp.linalg.norm(v, ord=2 if norm_ord == "fro" else norm_ord, axis=-1)


@conventions.boundary(inputs="batch", perturb_radius="perturbation")
def sensitivity_max(key: jax.Array, explanation_func: Callable, model: Any, inputs: InputsLike, *,
                    target: Target = None, perturb_func: Callable = default_perturb_func,
                    perturb_radius: float = 0.02, n_perturb_samples: int = 10,
                    norm_ord: str | int | float = "fro",
                    max_examples_per_batch: int | None = None) -> jax.Array:
  """Max-sensitivity of an explanation (Yeh et al., NeurIPS 2019), as Captum's
  ``sensitivity_max``.

  .. math::

     \\mathrm{SENS}_{\\max}(\\Phi, f, x, r) = \\max_{j \\le n}
        \\frac{\\lVert \\Phi(f, x) - \\Phi(f, x + \\delta_j)\\rVert}
             {\\lVert \\Phi(f, x)\\rVert},\\quad
        \\delta_j \\sim U[-r, r]^d

  (the denominator taken as 1 where ``Phi(f, x) = 0``). The explanation is
  recomputed on every perturbed input for the same target (Captum expands
  ``target`` with the inputs); with ``target="predicted"`` that is the
  prediction at the unperturbed input.

  Its parameters are Captum's, under Captum's names (``captum.metrics.sensitivity_max``), so a
  Captum call translates name for name; every one after the inputs is keyword-only with Captum's
  default, and a config object would break that correspondence.

  Args:
    key: PRNG key; draw ``j`` of example ``i`` uses
      ``fold_in(key, i * n_perturb_samples + j)``.
    explanation_func: ``explain(model, x, target) -> maps`` for a batch and
      ``(N,)`` targets (``None`` with ``target=None``); every method of
      :mod:`~explicable_jax.attribution.batched` fits with a lambda, e.g.
      ``lambda m, x, t: batched.saliency(m, x, target=t)``.
    model: what ``explanation_func`` explains (a
      :class:`~explicable_jax.models.Classifier` or a batch function).
    inputs: a batch ``(N, ...)`` or a tuple of batches.
    target: a class index, ``N`` indices, ``"predicted"`` or ``None``.
    perturb_func: ``(key, x, perturb_radius) -> x_perturbed`` for one
      example (default: uniform noise in ``[-r, r]``).
    perturb_radius: ``r``.
    n_perturb_samples: ``n``, the perturbed copies per example.
    norm_ord: ``"fro"`` (the 2-norm of the flattened maps, Captum's
      default), ``1``, ``2`` or ``inf``.
    max_examples_per_batch: rows (examples x copies) per call of
      ``explanation_func``; ``None``: all copies in one call.

  Returns:
    ``(N,)`` sensitivities.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    >>> model, x = (lambda x: x @ w), jnp.array([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    >>> times_input = lambda m, x, t: x * w[:, 0]  # gradient x input of class 0
    >>> s = sensitivity_max(jax.random.key(0), times_input, model, x, target=0)
    >>> # ||w0 * d|| / ||w0 * x|| with |d_i| <= 0.02: at most 0.02 for these x
    >>> s.shape, bool((s > 0).all() and (s <= 0.02).all())
    ((2,), True)
  """
  key = _validation.check_key("key", key, call="sensitivity_max(key, explanation_func, "
                                                "model, inputs, ...)")
  explanation_func = _shared.check_explanation_func(explanation_func)
  _validation.check_signature("perturb_func", perturb_func, 3,
                              "perturb_func(key, x, perturb_radius) -> x_perturbed")
  if norm_ord not in NORM_ORDS:
    _validation.check_choice("norm_ord", norm_ord, NORM_ORDS)
  _validation.check_nonnegative("perturb_radius", perturb_radius)
  n_samples = _shared.check_samples("n_perturb_samples", n_perturb_samples)
  x = _shared.Inputs("inputs", inputs)
  model_dyn, model_static = _shared.split_model("model", model)
  _shared.check_target(_shared.forward({**model_dyn, **model_static}["model"]), x, target)
  target_dyn, target_static = _shared.split_target(target)
  return _shared.jit_call(
      _sensitivity_max, dynamic=dict(key=key, inputs=x.value, **model_dyn, **target_dyn),
      static=dict(explain=explanation_func, perturb_func=perturb_func, radius=perturb_radius,
                  n_samples=n_samples, norm_ord=norm_ord,
                  per_chunk=_shared.samples_per_chunk(max_examples_per_batch, x.n, n_samples),
                  **model_static, **target_static))


def _sensitivity_max(*, key, inputs, model, target, explain, perturb_func, radius, n_samples,
                     norm_ord, per_chunk):
  x = _shared.Inputs("inputs", inputs)
  fn = _shared.forward(model)
  n = x.n
  t = _shared.targets(fn, x, target)
  phi = _shared.flat(x.unwrap(_shared.explained(explain, model, x.value, t, n,
                                                input_shaped=True)), n)  # (N, D)
  phi_norm = _norm(phi, norm_ord)
  phi_norm = jnp.where(phi_norm == 0, jnp.ones_like(phi_norm), phi_norm)

  def chunk(js):
    k = js.shape[0]
    ks = _shared.sample_keys(key, n, js, n_samples)
    one = lambda k1, *xi: x.unwrap(perturb_func(k1, x.wrap(xi), radius))
    xp = jax.vmap(lambda kk: jax.vmap(one)(kk, *x.leaves))(ks)     # (k, N, ...) per input
    rows = x.wrap(tuple(v.reshape((k * n,) + v.shape[2:]) for v in xp))
    phi_p = _shared.flat(x.unwrap(explain(model, rows, None if t is None else jnp.tile(t, k))),
                         k * n).reshape(k, n, -1)
    return _norm(phi[None] - phi_p, norm_ord) / phi_norm[None]     # (k, N)

  return _shared.over_samples(chunk, n_samples, per_chunk).max(0)
