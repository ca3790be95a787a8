"""Captum's own tests of ``infidelity`` and ``sensitivity_max``, ported, and
agreement with Captum itself on the same weights and perturbations.

Source: ``pytorch/captum`` at faac0877, ``tests/metrics/test_infidelity.py`` and
``tests/metrics/test_sensitivity.py``, with the models of
``captum/testing/helpers/basic_models.py`` rewritten as JAX functions (NCHW
convolutions as NHWC). Each test names the Captum test it ports and keeps its
expected numbers and tolerance (``assertTensorAlmostEqual(..., delta=0.05)``);
where the answer is known in closed form the test also checks it tightly.

How a port differs: Captum's perturbation functions see the whole batch of
``n_perturb_samples`` repeated inputs; ours take one example and a key, so a
Captum function that returns a fixed matrix of perturbation rows draws its row
at random here (every row gives the expected answer). Captum repeats
``additional_forward_args`` with the inputs; a per-example argument becomes a
second input here that is never perturbed and holds no attribution, a shared
one is closed over. Captum's tuple targets into the
(N, 2, 2, 2) output of ``BasicModel_MultiLayer(multidim_output=True)`` select
``8 * linear2`` (target ``(t, 1, 1)``), so they become class ``t`` of that
output. Not ported: tests whose attribution method the library does not have
(DeepLift, FeatureAblation, GradientShap, GuidedBackprop).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explicable_jax import attribution as A
from explicable_jax.attribution import evaluation as E

relu = jax.nn.relu
DELTA = 0.05   # Captum's tolerance in these tests


def basic_model2(x):       # BasicModel2 on (x1, x2): ReLU(ReLU(x1) - 1 - ReLU(x2))
  return relu(relu(x[0]) - 1 - relu(x[1]))


def basic_model4(args):    # BasicModel4_MultiArgs, additional_input1 = args, index 0
  def f(x):
    return relu(relu(x[0] - 1) - relu(x[1]) / args)[:, 0]
  return f


W1, B1 = jnp.ones((4, 3)), jnp.array([-10.0, 1.0, 1.0, 1.0])
W2, B2 = jnp.ones((2, 4)), jnp.array([-1.0, 1.0])


def multilayer(add_input=None, multidim=False):
  """BasicModel_MultiLayer (linear0 = identity) with ``add_input`` (one row,
  broadcast) added to the input; ``multidim`` scales the outputs by 8, the
  (t, 1, 1) entry of its multidim output."""
  def f(x):
    h = x if add_input is None else x + add_input
    out = relu(h @ W1.T + B1) @ W2.T + B2
    return 8 * out if multidim else out
  return f


def multilayer_with_argument(x):
  """The multidim multilayer model of (x, add_input): Captum's per-example
  ``additional_forward_args`` become a second input that is never perturbed
  and holds no attribution (Captum repeats the argument with the inputs)."""
  return multilayer(multidim=True)(x[0] + x[1])


def unperturbed_argument(perturb):
  """``perturb`` on the first input; the second (the argument) unchanged."""
  def f(key, x, *rest):
    p, xp = perturb(key, x[0], *(r[0] for r in rest))
    return (p, jnp.zeros_like(x[1])), (xp, x[1])
  return f


def one_conv(x):           # BasicModel_ConvNet_One_Conv, NHWC (N, 4, 4, 1)
  y = jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 1, 2)), (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  y = relu(y + jnp.array([-50.0, -75.0]))
  flat = jnp.transpose(y, (0, 3, 1, 2)).reshape(len(x), 8)
  fc = jnp.concatenate([jnp.ones((4, 5)), -jnp.ones((4, 3))], axis=1)
  return relu(flat @ fc.T)


def _per_example(core, fn, x, t, **kw):
  """An input attribution of every example of a batch (or tuple) for targets t."""
  def one(xi, ti):
    score = (lambda v: fn(jax.tree.map(lambda a: a[None], v))[0]) if ti is None else (
        lambda v: fn(jax.tree.map(lambda a: a[None], v))[0, ti])
    return core(score, xi, **kw)
  if t is None:
    return jax.vmap(lambda xi: one(xi, None))(x)
  return jax.vmap(one)(x, t)


def saliency(fn, x, t):        # Captum's Saliency: |gradient|
  return _per_example(A.gradient, fn, x, t, absolute=True)


def ig(fn, x, t, **kw):        # Captum's IntegratedGradients defaults: 50 Gauss-Legendre
  return _per_example(A.integrated_gradients, fn, x, t, **kw)


def local_perturb(key, x):     # _local_perturb_func
  if isinstance(x, tuple):
    p = (0.0009 * jnp.ones_like(x[0]), 0.0121 * jnp.ones_like(x[1]))
    return p, (x[0] - p[0], x[1] - p[1])
  p = 0.0009 * jnp.ones_like(x)
  return p, x - p


@E.infidelity_perturb_func_decorator(False)
def local_perturb_default(key, x):   # _local_perturb_func_default
  return local_perturb(key, x)[1]


def global_perturb1(key, x):   # _global_perturb_func1: everything to zero
  return jax.tree.map(jnp.ones_like, x), jax.tree.map(jnp.zeros_like, x)


@E.infidelity_perturb_func_decorator(True)
def global_perturb1_default(key, x):
  return global_perturb1(key, x)[1]


TWO = (jnp.array([3.0]), jnp.array([1.0]))


def _close(got, want, delta=DELTA):
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=delta)


# ---------------------------------------------------------------------------
# tests/metrics/test_infidelity.py


def test_basic_infidelity_single_and_multiple(key):
  """test_basic_infidelity_single / _multiple: IG of BasicModel2 at (3, 1)
  with the local perturbation: ~0; and the decorated function gives the same.
  Closed form: f = x1 - 1 - x2 near (3, 1), so f(x) - f(x - I) = I1 - I2 and
  the infidelity is (0.0009 phi1 + 0.0121 phi2 - (0.0009 - 0.0121))^2."""
  for n in (1, 3):
    x = tuple(jnp.repeat(a, n) for a in TWO)
    phi = ig(basic_model2, x, None)
    got = E.infidelity(key, basic_model2, local_perturb, x, phi)
    _close(got, np.zeros(n))
    want = (0.0009 * phi[0] + 0.0121 * phi[1] - (0.0009 - 0.0121)) ** 2
    np.testing.assert_allclose(got, want, rtol=1e-3)
    again = E.infidelity(key, basic_model2, local_perturb_default, x, phi)
    np.testing.assert_allclose(again, got, rtol=1e-3)  # x - (x - I) rounds I


def test_basic_infidelity_multiple_with_batching(key):
  """test_basic_infidelity_multiple_with_batching: 20 examples, 5 samples,
  max_examples_per_batch 21 and 60 agree."""
  x = (jnp.full(20, 3.0), jnp.full(20, 1.0))
  phi = ig(basic_model2, x, None)
  a = E.infidelity(key, basic_model2, local_perturb, x, phi, n_perturb_samples=5,
                   max_examples_per_batch=21)
  b = E.infidelity(key, basic_model2, local_perturb, x, phi, n_perturb_samples=5,
                   max_examples_per_batch=60)
  _close(a, np.zeros(20))
  _close(a, b, 0.01)


def test_basic_infidelity_additional_forward_args(key):
  """test_basic_infidelity_additional_forward_args1: BasicModel4 with an extra
  argument, IG, everything perturbed to zero (sensitivity-N): the infidelity
  is IG's completeness gap squared, ~0; 1 and 5 samples and the decorated
  perturbation agree exactly."""
  x = (jnp.array([[1.5, 2.0, 3.3]]), jnp.array([[3.0, 3.5, 2.2]]))
  fn = basic_model4(jnp.array([[1.0, 3.0, 4.0]]))
  phi = ig(fn, x, None)
  one = E.infidelity(key, fn, global_perturb1, x, phi, n_perturb_samples=1,
                     max_examples_per_batch=1)
  five = E.infidelity(key, fn, global_perturb1, x, phi, n_perturb_samples=5,
                      max_examples_per_batch=2)
  custom = E.infidelity(key, fn, global_perturb1_default, x, phi, n_perturb_samples=5,
                        max_examples_per_batch=2)
  _close(one, [0.0])
  np.testing.assert_allclose(five, one, rtol=1e-6)
  np.testing.assert_allclose(custom, five, rtol=1e-6)
  gap = sum(p.sum() for p in phi) - (fn(x) - fn(jax.tree.map(jnp.zeros_like, x)))
  np.testing.assert_allclose(one, gap ** 2, rtol=1e-4, atol=1e-12)


def test_classification_infidelity_tpl_target(key):
  """test_classification_infidelity_tpl_target: saliency of the multilayer
  model with an additional input, targets (0,1,1), (0,1,1), (1,1,1), (0,1,1):
  ~0, with and without batching."""
  x = (jnp.arange(1.0, 13.0).reshape(4, 3), jnp.arange(1.0, 13.0).reshape(4, 3))
  t = jnp.array([0, 0, 1, 0])
  phi = (saliency(lambda v: multilayer_with_argument((v, x[1])), x[0], t),
         jnp.zeros((4, 3)))
  perturb = unperturbed_argument(local_perturb)
  a = E.infidelity(key, multilayer_with_argument, perturb, x, phi, target=t)
  b = E.infidelity(key, multilayer_with_argument, perturb, x, phi, target=t,
                   max_examples_per_batch=2)
  _close(a, np.zeros(4))
  _close(a, b, 1e-5)


def test_classification_infidelity_tpl_target_w_baseline(key):
  """test_classification_infidelity_tpl_target_w_baseline: IG from baseline 1,
  every input perturbed to the baseline (decorated, and as (ones, baselines)):
  [0.10686, 0, 0, 0] and equal to the convergence delta squared."""
  x = (jnp.arange(1.0, 13.0).reshape(4, 3), jnp.arange(1.0, 13.0).reshape(4, 3))
  t = jnp.array([0, 0, 1, 0])
  base = (jnp.ones((4, 3)), x[1])
  phi, delta = jax.vmap(lambda xi, ai, ti, bi: A.integrated_gradients(
      lambda v: multilayer_with_argument((v[None], ai[None]))[0, ti], xi, baselines=bi,
      return_convergence_delta=True))(x[0], x[1], t, base[0])
  phi = (phi, jnp.zeros((4, 3)))

  @E.infidelity_perturb_func_decorator(True)
  def to_baseline(k, xi, bi):
    return bi

  got = E.infidelity(key, multilayer_with_argument, to_baseline, x, phi, baselines=base,
                     target=t, n_perturb_samples=3)
  got2 = E.infidelity(key, multilayer_with_argument,
                      unperturbed_argument(lambda k, xi, bi: (jnp.ones_like(bi), bi)), x, phi,
                      baselines=base, target=t, n_perturb_samples=3)
  _close(got, [0.10686, 0.0, 0.0, 0.0])
  np.testing.assert_allclose(got, delta * delta, rtol=1e-4, atol=1e-10)
  np.testing.assert_allclose(got, got2, rtol=1e-5, atol=1e-10)


def test_basic_infidelity_multiple_with_normalize(key):
  """test_basic_infidelity_multiple_with_normalize: scaling the attributions by
  100 leaves the normalised infidelity unchanged."""
  x = (jnp.full(3, 3.0), jnp.full(3, 1.0))
  phi = ig(basic_model2, x, None)
  a = E.infidelity(key, basic_model2, local_perturb, x, phi, normalize=True)
  b = E.infidelity(key, basic_model2, local_perturb, x, tuple(100 * p for p in phi),
                   normalize=True)
  _close(a, np.zeros(3))
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-9)


def test_sensitivity_n_ig(key):
  """test_sensitivity_n_ig: IG of the multilayer model at [1, 2.5, 3.3], target
  0, infidelity for sensitivity-1, -2 and -3 (features set to zero); Captum's
  rows of the perturbation matrix are drawn at random here. The model is
  linear on every such input (the ReLUs keep their state), so all are 0."""
  x = jnp.array([[1.0, 2.5, 3.3]])
  fn = multilayer()
  phi = ig(fn, x, jnp.array([0]))
  for rows in ([[0, 0, 1], [1, 0, 0], [0, 1, 0]], [[0, 1, 1], [1, 1, 0], [1, 0, 1]],
               [[1, 1, 1]]):
    rows = jnp.array(rows, jnp.float32)

    def perturb(k, xi, rows=rows):
      p = rows[jax.random.randint(k, (), 0, len(rows))]
      return p, (1 - p) * xi

    got = E.infidelity(key, fn, perturb, x, phi, target=0, n_perturb_samples=3)
    _close(got, [0.0])
    np.testing.assert_allclose(got, 0.0, atol=1e-8)


# ---------------------------------------------------------------------------
# tests/metrics/test_sensitivity.py


def ratio_perturb(key, x, radius):   # _perturb_func: + arange(-d//2, d//2) / 100
  def one(a):
    d = a.size
    return a + (jnp.arange(-d // 2, d // 2, dtype=a.dtype) / 100).reshape(a.shape)
  return tuple(one(a) for a in x) if isinstance(x, tuple) else one(x)


def test_basic_sensitivity_max_single_and_multiple(key):
  """test_basic_sensitivity_max_single / _multiple: saliency of BasicModel2
  at (3, 1) is constant within 0.02: sensitivity 0 (default perturbation and
  the ratio one, max_examples_per_batch 21 and 60)."""
  expl = lambda m, x, t: saliency(m, x, None)
  np.testing.assert_array_equal(E.sensitivity_max(key, expl, basic_model2, TWO), [0.0])
  x = (jnp.full(20, 3.0), jnp.full(20, 1.0))
  for batch in (21, 60):
    got = E.sensitivity_max(key, expl, basic_model2, x, perturb_func=ratio_perturb,
                            n_perturb_samples=5, max_examples_per_batch=batch)
    np.testing.assert_array_equal(got, np.zeros(20))


def test_convnet_multi_target(key):
  """test_convnet_multi_target: saliency of the one-convolution net at
  1..16, target 1, 10 samples, 40 rows a batch: 0."""
  x = jnp.tile(jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1), (20, 1, 1, 1))
  expl = lambda m, v, t: saliency(m, v, t)
  got = E.sensitivity_max(key, expl, one_conv, x, target=1, perturb_func=ratio_perturb,
                          max_examples_per_batch=40)
  _close(got, np.zeros(20))


def test_sensitivity_max_multi_dim(key):
  """test_sensitivity_max_multi_dim: IG of the multilayer model, targets
  (0,1,1), (0,1,1), (1,1,1), (0,1,1), one ratio perturbation:
  [0.006, 0.01, 0.001, 0.008]."""
  x = jnp.arange(1.0, 13.0).reshape(4, 3)
  fn = multilayer(multidim=True)
  expl = lambda m, v, t: ig(m, v, t)
  got = E.sensitivity_max(key, expl, fn, x, target=jnp.array([0, 0, 1, 0]),
                          perturb_func=ratio_perturb, n_perturb_samples=1,
                          max_examples_per_batch=4)
  _close(got, [0.006, 0.01, 0.001, 0.008])


def test_sensitivity_max_multi_dim_batching(key):
  """test_sensitivity_max_multi_dim_batching: saliency with an additional
  input of ones, target 0: 1 and 10 samples give the same (0)."""
  x = jnp.arange(1.0, 16.0).reshape(5, 3)
  fn = multilayer(jnp.ones((1, 3)))   # the same argument, ones, for every example
  expl = lambda m, v, t: saliency(m, v, t)
  one = E.sensitivity_max(key, expl, fn, x, target=0, perturb_func=ratio_perturb,
                          n_perturb_samples=1)
  ten = E.sensitivity_max(key, expl, fn, x, target=0, perturb_func=ratio_perturb,
                          n_perturb_samples=10, max_examples_per_batch=10)
  _close(one, np.zeros(5))
  np.testing.assert_array_equal(one, ten)


# ---------------------------------------------------------------------------
# Agreement with Captum itself


def _torch():
  try:
    import captum.metrics  # noqa: F401
    import torch
  except ImportError as e:  # torch/captum are the optional "bench" extra
    pytest.skip(f"torch and captum are not importable ({e}); pip install -e '.[bench]'")
  return torch


def test_infidelity_and_sensitivity_equal_captums(key):
  """A small CNN with the same weights on both sides, the same perturbations
  (drawn by ours, handed to Captum in its order: example-major repeats):
  infidelity (plain and normalised) and sensitivity_max of saliency agree."""
  torch = _torch()
  from captum.attr import Saliency
  from captum.metrics import infidelity, sensitivity_max
  torch.manual_seed(0)
  net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                            torch.nn.Linear(4 * 4 * 4, 3)).eval().double()
  k = net[0].weight.detach().numpy().transpose(2, 3, 1, 0)            # OIHW -> HWIO
  kb = net[0].bias.detach().numpy()
  lw, lb = net[3].weight.detach().numpy(), net[3].bias.detach().numpy()

  def fn(x):   # NHWC, flattened in torch's NCHW order
    y = jax.lax.conv_general_dilated(x, jnp.asarray(k), (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jnp.tanh(y + kb)
    return jnp.transpose(y, (0, 3, 1, 2)).reshape(len(x), -1) @ lw.T + lb

  with jax.enable_x64(True):
    x = jax.random.uniform(jax.random.key(3), (4, 6, 6, 2), jnp.float64)
    t = jnp.array([0, 2, 1, 2])
    n = 5
    to_torch = lambda a: torch.from_numpy(np.array(a).transpose(0, 3, 1, 2).copy())
    xt, tt = to_torch(x), torch.from_numpy(np.array(t))
    phi = saliency(fn, x, t)
    phit = to_torch(phi)
    np.testing.assert_allclose(phit.numpy(), Saliency(net).attribute(xt, target=tt).numpy(),
                               rtol=1e-8, atol=1e-12)

    perturb = E.gaussian_perturb_func(0.05)
    keys = jax.vmap(lambda i: jax.vmap(lambda j: jax.random.fold_in(key, i * n + j))(
        jnp.arange(n)))(jnp.arange(4))
    noise = jax.vmap(jax.vmap(lambda kk, xi: perturb(kk, xi)[0], (0, None)))(keys, x)
    noise_t = to_torch(noise.reshape((4 * n,) + x.shape[1:]))           # example-major

    def captum_perturb(inputs):
      return noise_t, inputs - noise_t

    for normalize in (False, True):
      ours = E.infidelity(key, fn, perturb, x, phi, target=t, n_perturb_samples=n,
                          normalize=normalize)
      theirs = infidelity(net, captum_perturb, xt, phit, target=tt, n_perturb_samples=n,
                          normalize=normalize)
      np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-8)

    radius = 0.02
    deltas = jax.vmap(jax.vmap(lambda kk, xi: E.default_perturb_func(kk, xi, radius) - xi,
                               (0, None)))(keys, x)
    deltas_t = to_torch(deltas.reshape((4 * n,) + x.shape[1:]))
    expl = lambda m, v, tg: saliency(m, v, tg)
    ours = E.sensitivity_max(key, expl, fn, x, target=t, n_perturb_samples=n)
    theirs = sensitivity_max(Saliency(net).attribute, xt,
                             perturb_func=lambda inputs, r: inputs + deltas_t,
                             n_perturb_samples=n, target=tt)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-7)
