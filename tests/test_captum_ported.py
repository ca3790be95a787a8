"""Captum's own unit tests, ported: the same models, inputs and expected numbers.

Source: ``pytorch/captum`` at faac0877, ``tests/attr/`` (test_integrated_gradients_basic,
test_saliency, test_input_x_gradient, layer/test_grad_cam, layer/test_layer_conductance,
layer/test_layer_gradient_x_activation, layer/test_layer_integrated_gradients,
neuron/test_neuron_conductance, test_approximation_methods) and the models of
``captum/testing/helpers/basic_models.py``, rewritten as JAX functions. Layouts: Captum's
convolution tests are NCHW, ours NHWC, so expected maps are transposed; a Captum "layer" is a
``(features_fn, head_fn)`` cut of the same forward pass. Each test names the Captum test it
ports. Not ported (torch-only): futures, hooks, ``grad_kwargs``, unused-layer gradients,
``attribute_to_layer_input`` (here: cut before the layer instead), DataParallel, JIT, and the
neuron selector functions (our ``neuron_index`` is an index).

Deliberate differences (README, "For Captum users"): our Grad-CAM defaults to ``relu=True``
(Captum's ``relu_attributions=False``) and conductance to ``riemann_right``, so the tests pass
Captum's settings explicitly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explicable_jax import attribution as A
from explicable_jax import models
from explicable_jax.attribution import batched

relu = jax.nn.relu
METHODS = ("riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid",
           "gausslegendre")


# ---------------------------------------------------------------------------
# captum/testing/helpers/basic_models.py

def basic_model(x):                       # BasicModel
  return 1 - relu(1 - x)


def basic_model2(x1, x2):                 # BasicModel2: ReLU(ReLU(x1) - 1 - ReLU(x2))
  return relu(relu(x1) - 1 - relu(x2))


def basic_model3(x1, x2):                 # BasicModel3: ReLU(ReLU(x1 - 1) - ReLU(x2))
  return relu(relu(x1 - 1) - relu(x2))


def basic_model4(x1, x2, x3, index=0):    # BasicModel4_MultiArgs
  return relu(relu(x1 - 1) - relu(x2) / x3)[:, index]


def basic_model5(x1, x2, scales, index=0):  # BasicModel5_MultiArgs
  return relu(relu(x1 - 1) * scales[0] - relu(x2) * scales[1])[:, index]


def basic_model6(x1, x2):                 # BasicModel6_MultiTensor
  return (1 - relu(1 - (x1 + x2)))[:, 1]


# BasicModel_MultiLayer: torch Linear(W, b) is x @ W.T + b.
W1, B1 = jnp.ones((4, 3)), jnp.array([-10.0, 1.0, 1.0, 1.0])
W2, B2 = jnp.ones((2, 4)), jnp.array([-1.0, 1.0])
MULTILAYER = {                      # stage name -> function of the previous stage
    "linear0": lambda x: x,        # the identity transform
    "linear1": lambda h: h @ W1.T + B1,
    "relu": relu,
    "linear2": lambda h: h @ W2.T + B2,
}


def _chain(names):
  def run(h):
    for n in names:
      h = MULTILAYER[n](h)
    return h
  return run


def multilayer(pre=lambda x: x):
  """BasicModel_MultiLayer as a Classifier cut after each of its layers;
  ``pre`` maps the (tuple of) inputs to its one input (the MultiInput wrappers)."""
  names = list(MULTILAYER)
  splits = {n: (lambda p, x, i=i: _chain(names[:i + 1])(pre(x)),
                lambda p, h, i=i: _chain(names[i + 1:])(h)) for i, n in enumerate(names)}
  return models.from_functions(lambda p, x: _chain(names)(pre(x)), {}, splits=splits,
                               num_classes=2, input_range=None)


def multilayer_multi_relu():
  """BasicModel_MultiLayer(multi_input_module=True): the ``multi_relu`` layer
  returns the pair (ReLU(linear1(x)), ReLU(linear1_alt(x))), which are summed."""
  features = lambda p, x: (relu(x @ W1.T + B1), relu(x @ W1.T + B1))
  head = lambda p, h: (h[0] + h[1]) @ W2.T + B2
  return models.from_functions(lambda p, x: head(p, features(p, x)), {},
                               splits={"multi_relu": (features, head)}, num_classes=2, input_range=None)


# BasicModel_ConvNet_One_Conv: conv 1 -> 2 channels, 3x3, weights 1, biases -50, -75;
# ReLU; view(-1, 8) in NCHW order; fc 8 -> 4 (weights 1 on the first five, -1 on the
# last three); ReLU.
FC1 = jnp.concatenate([jnp.ones((4, 5)), -jnp.ones((4, 3))], axis=1)


def _conv1(x):  # NHWC (N, 4, 4, 1) -> (N, 2, 2, 2)
  k = jnp.ones((3, 3, 1, 2))
  y = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + jnp.array([-50.0, -75.0])


def _conv_head(h):  # after relu1
  flat = jnp.transpose(h, (0, 3, 1, 2)).reshape(h.shape[0], 8)  # torch's NCHW view
  return relu(flat @ FC1.T)


def one_conv(pre=lambda x: x):
  splits = {"input": (lambda p, x: pre(x), lambda p, h: _conv_head(relu(_conv1(h)))),
            "conv1": (lambda p, x: _conv1(pre(x)), lambda p, h: _conv_head(relu(h))),
            "relu1": (lambda p, x: relu(_conv1(pre(x))), lambda p, h: _conv_head(h))}
  return models.from_functions(lambda p, x: _conv_head(relu(_conv1(pre(x)))), {},
                               splits=splits, num_classes=4, input_range=None)


def nchw_to_nhwc(a):
  return np.transpose(np.asarray(a, np.float32), (0, 2, 3, 1))


ARANGE_IMAGE = jnp.arange(16.0).reshape(1, 4, 4, 1)


# ---------------------------------------------------------------------------
# tests/attr/test_approximation_methods.py

def test_riemann_and_gauss_legendre_nodes_match_captum():
  """test_riemann_0/test_riemann_2/test_riemann_3/test_gauss_legendre."""
  alphas, w = A.integration_points("riemann_left", 3)
  np.testing.assert_allclose(alphas, [0, 1 / 3, 2 / 3])
  np.testing.assert_allclose(w, [1 / 3] * 3)
  alphas, w = A.integration_points("riemann_right", 3)
  np.testing.assert_allclose(alphas, [1 / 3, 2 / 3, 1])
  alphas, _ = A.integration_points("riemann_middle", 3)
  np.testing.assert_allclose(alphas, [1 / 6, 0.5, 5 / 6])
  alphas, w = A.integration_points("gausslegendre", 3)
  np.testing.assert_allclose(alphas, [0.11270167, 0.5, 0.88729833], rtol=1e-7)
  np.testing.assert_allclose(w, [0.2777777777, 0.4444444444, 0.2777777777], rtol=1e-7)
  # Captum's trapezoid: nodes k/(n-1), weights 1/n halved at the ends (sum (n-1)/n);
  # ours are the textbook 1/(n-1) (sum 1): the one documented difference.
  alphas, w = A.integration_points("riemann_trapezoid", 3)
  np.testing.assert_allclose(alphas, [0, 0.5, 1])
  np.testing.assert_allclose(w, [0.25, 0.5, 0.25])


# ---------------------------------------------------------------------------
# tests/attr/test_integrated_gradients_basic.py (vanilla and NoiseTunnel)

def _ig_and_check(score_fn, x, baselines, method, *, multiply_by_inputs=True):
  """_compute_attribution_and_evaluate, vanilla: delta ~ 0 and equal to the
  standalone delta; returns the attributions."""
  kw = dict(baselines=baselines, method=method, n_steps=500)
  if not multiply_by_inputs:
    return A.integrated_gradients(score_fn, x, multiply_by_inputs=False, **kw)
  attr, delta = A.integrated_gradients(score_fn, x, return_convergence_delta=True, **kw)
  again = A.integrated_gradients(score_fn, x, **kw)
  for a, b in zip(jax.tree.leaves(attr), jax.tree.leaves(again)):
    np.testing.assert_allclose(a, b, atol=0.05)
  for a, xi in zip(jax.tree.leaves(attr), jax.tree.leaves(x)):
    assert a.shape == jnp.shape(xi)
  assert abs(float(delta)) < 0.07
  return attr


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("multiply_by_inputs", [True, False])
def test_ig_multivariable_vanilla(method, multiply_by_inputs):
  """test_multivariable_vanilla[_wo_mutliplying_by_inputs]: BasicModel2 and BasicModel3
  at (3, 1) from (0, 0): [1.5], [-0.5] ([0.5], [-0.5] without the inputs); implementation
  invariance: both models' attributions have the same sum."""
  x, base = (jnp.array(3.0), jnp.array(1.0)), (0.0, 0.0)
  sums = []
  for model in (basic_model2, basic_model3):
    a1, a2 = _ig_and_check(lambda v: model(*v), x, base, method,
                           multiply_by_inputs=multiply_by_inputs)
    np.testing.assert_allclose(a1, 1.5 if multiply_by_inputs else 0.5, atol=0.05)
    np.testing.assert_allclose(a2, -0.5, atol=0.05)
    sums.append(float(a1 + a2))
  np.testing.assert_allclose(sums[0], sums[1], atol=1e-5)


@pytest.mark.parametrize("method", ["riemann_trapezoid", "gausslegendre"])
def test_ig_univariable(method):
  """test_univariable_*: BasicModel at 1 and 0 from 0, at -1 from 1e-5: delta ~ 0."""
  for x, b in ((1.0, 0.0), (0.0, 0.0), (-1.0, 0.00001)):
    _ig_and_check(basic_model, jnp.array(x), b, method)


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_right"])
def test_ig_multi_argument(method):
  """test_multi_argument_*: BasicModel4/5 with extra forward arguments, batched,
  baselines mixing scalars and tensors: every example's delta ~ 0."""
  x1 = jnp.array([[1.5, 2.0, 34.3], [3.4, 1.2, 2.0]])
  x2 = jnp.array([[3.0, 3.5, 23.2], [2.3, 1.2, 0.3]])
  x3 = jnp.arange(1.0, 7.0).reshape(2, 3)
  cases = [
      (lambda v, i: basic_model4(v[0][None], v[1][None], x3[i:i + 1], 1)[0], (0.0, 0.0)),
      (lambda v, i: basic_model5(v[0][None], v[1][None], [2, 3], 1)[0], (0.0, 0.00001)),
      (lambda v, i: basic_model5(v[0][None], v[1][None], [2, 3], 1)[0],
       (jnp.zeros(3), 0.00001)),
  ]
  for fn, base in cases:
    for i in range(2):
      _ig_and_check(lambda v: fn(v, i), (x1[i], x2[i]), base, method)


@pytest.mark.parametrize("method", ["riemann_middle", "riemann_trapezoid"])
def test_ig_multi_tensor_input(method):
  """test_multi_tensor_input_vanilla: BasicModel6 on two tensors."""
  x = (jnp.array([1.5, 2.0, 3.3]), jnp.array([3.0, 3.5, 2.2]))
  _ig_and_check(lambda v: basic_model6(v[0][None], v[1][None])[0], x, None, method)


BATCH = jnp.array([[1.5, 2.0, 1.3], [0.5, 0.1, 2.3], [1.5, 2.0, 1.3]])


@pytest.mark.parametrize("method", ["riemann_left", "gausslegendre"])
def test_ig_batched_input_matches_one_example_at_a_time(method):
  """test_batched_input_vanilla / _compute_attribution_batch_helper_evaluate:
  BasicModel_MultiLayer, target 0, internal batch sizes None, 10, 20: the batch
  equals the examples one by one and the summed |delta| agrees."""
  clf = multilayer()
  for ibs in (None, 10, 20):
    attr, delta = batched.integrated_gradients(
        clf, BATCH, target=0, method=method, n_steps=100, internal_batch_size=ibs,
        return_convergence_delta=True)
    total = 0.0
    for i in range(3):
      a_i, d_i = batched.integrated_gradients(
          clf, BATCH[i:i + 1], target=0, method=method, n_steps=100,
          internal_batch_size=ibs, return_convergence_delta=True)
      np.testing.assert_allclose(attr[i], a_i[0], atol=0.05)
      total += float(jnp.abs(d_i).sum())
    assert abs(float(jnp.abs(delta).sum()) - total) < 0.005
    assert float(jnp.abs(delta).max()) < 0.07


def test_ig_batched_tuple_inputs():
  """test_batched_multi_input_vanilla: BasicModel_MultiLayer(x, add_input) on two
  batched tensors: one attribution per input, deltas ~ 0, and the standalone
  compute_convergence_delta agrees with the returned one."""
  x1 = jnp.array([[1.5, 2.1, 1.9], [0.5, 0.0, 0.7], [1.5, 2.1, 1.1]])
  x2 = jnp.array([[0.3, 1.9, 2.4], [0.5, 0.6, 2.1], [1.2, 2.1, 0.2]])
  clf = multilayer(pre=lambda v: v[0] + v[1])
  (a1, a2), delta = batched.integrated_gradients(
      clf, (x1, x2), target=0, method="riemann_right", n_steps=500,
      return_convergence_delta=True)
  assert a1.shape == x1.shape and a2.shape == x2.shape and delta.shape == (3,)
  assert float(jnp.abs(delta).max()) < 0.07
  external = batched.compute_convergence_delta(clf, (a1, a2), (x1, x2), target=0)
  np.testing.assert_allclose(delta, external, atol=1e-4)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_of_ig_returns_a_delta_per_noisy_sample(nt_type):
  """The NoiseTunnel half of _compute_attribution_and_evaluate: five samples with
  stdevs 2e-8: one delta per sample and example (Captum: N * n_samples), each ~ 0;
  attributions with and without the deltas agree."""
  clf = multilayer()
  ig = lambda s, v, **kw: A.integrated_gradients(s, v, n_steps=500, **kw)
  key = jax.random.key(0)
  attr, deltas = batched.smoothgrad(key, clf, BATCH, target=0, n_samples=5,
                                    stdevs=0.00000002, nt_type=nt_type,
                                    attribution_fn=ig, return_convergence_delta=True)
  assert deltas.shape == (3, 5)
  assert float(jnp.abs(deltas).max()) < 0.07
  plain = batched.smoothgrad(key, clf, BATCH, target=0, n_samples=5, stdevs=0.00000002,
                             nt_type=nt_type, attribution_fn=ig, internal_batch_size=3)
  np.testing.assert_allclose(attr, plain, atol=0.05)
  assert attr.shape == BATCH.shape


def test_noise_tunnel_on_tuple_inputs():
  """test_multivariable_smoothgrad: the noise tunnel over IG of BasicModel2's two
  inputs, with per-sample deltas ~ 0 and stdevs given per input."""
  score = lambda v: basic_model2(*v)
  ig = lambda s, v, **kw: A.integrated_gradients(s, v, n_steps=500, method="riemann_left",
                                                 **kw)
  (a1, a2), deltas = A.smoothgrad(jax.random.key(1), score, (jnp.array(3.0), jnp.array(1.0)),
                                  n_samples=5, stdevs=(0.00000002, 0.00000002),
                                  attribution_fn=ig, return_convergence_delta=True)
  np.testing.assert_allclose([a1, a2], [1.5, -0.5], atol=0.05)
  assert deltas.shape == (5,) and float(jnp.abs(deltas).max()) < 0.07


def test_ig_batched_smoothgrad_without_multiplying_by_inputs():
  """test_batched_input_smoothgrad_wo_mutliplying_by_inputs: with stdevs 0 the local
  attributions times the inputs are the global ones."""
  clf = multilayer()
  key = jax.random.key(0)
  local = batched.smoothgrad(key, clf, BATCH, target=0, n_samples=5, stdevs=0.0,
                             attribution_fn=lambda s, v: A.integrated_gradients(
                                 s, v, n_steps=500, multiply_by_inputs=False))
  glob = batched.smoothgrad(key, clf, BATCH, target=0, n_samples=5, stdevs=0.0,
                            attribution_fn=lambda s, v: A.integrated_gradients(
                                s, v, n_steps=500))
  np.testing.assert_allclose(local * BATCH, glob, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# tests/attr/test_saliency.py and test_input_x_gradient.py

BASIC_INPUT = jnp.array([1.0, 2.0, 3.0, 0.0, -1.0, 7.0])
BASIC_GRADS = np.array([-0.0, -0.0, -0.0, 1.0, 1.0, -0.0])  # "manually precomputed"


def test_saliency_basic_vanilla():
  """test_saliency_test_basic_vanilla (Captum's default takes |grad|)."""
  g = jax.vmap(lambda v: A.gradient(basic_model, v, absolute=True))(BASIC_INPUT)
  np.testing.assert_allclose(g, np.abs(BASIC_GRADS), atol=0.001)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "vargrad"])
def test_saliency_basic_noise_tunnel_keeps_shape(nt_type):
  """test_saliency_test_basic_smoothgrad / _vargrad: shapes (Captum checks only
  those); and away from the kink at 1, with noise this small, SmoothGrad is the
  gradient and VarGrad ~ 0 (at 1 the noise straddles the kink)."""
  out = jax.vmap(lambda k, v: A.smoothgrad(k, basic_model, v, n_samples=10,
                                           stdevs=0.0000002, nt_type=nt_type))(
      jax.random.split(jax.random.key(0), 6), BASIC_INPUT)
  assert out.shape == BASIC_INPUT.shape
  away = np.abs(np.asarray(BASIC_INPUT) - 1.0) > 1e-3
  expected = BASIC_GRADS if nt_type == "smoothgrad" else np.zeros(6)
  np.testing.assert_allclose(np.asarray(out)[away], expected[away], atol=1e-3)


MULTI_X1 = jnp.array([[1.5, 2.0, 34.3], [3.4, 1.2, 2.0]])
MULTI_X2 = jnp.array([[3.0, 3.5, 23.2], [2.3, 1.2, 0.3]])


def _model5_clf():
  return models.from_functions(
      lambda p, v: jnp.stack([basic_model5(v[0], v[1], [2, 3], 1)] * 2, -1), {},
      num_classes=2, input_range=None)


def test_saliency_multi_variable_vanilla():
  """test_saliency_test_basic_multi_variable_vanilla: BasicModel5 on two inputs
  against autograd (compute_gradients), absolute."""
  clf = _model5_clf()
  g1, g2 = batched.saliency(clf, (MULTI_X1, MULTI_X2), target=0, absolute=True)
  r1, r2 = jax.grad(lambda a, b: basic_model5(a, b, [2, 3], 1).sum(), (0, 1))(
      MULTI_X1, MULTI_X2)
  np.testing.assert_allclose(g1, np.abs(r1), atol=0.5)
  np.testing.assert_allclose(g2, np.abs(r2), atol=0.5)


@pytest.mark.parametrize("chunk", [1, 2, 3, 6])
def test_saliency_noise_tunnel_internal_batch_size_does_not_change_results(chunk):
  """test_saliency_test_basic_multivar_sg_n_samples_batch_size_{1,2,3,6}: the noise
  tunnel's sample batch size (ours: internal_batch_size) does not change results."""
  clf = _model5_clf()
  x = (jnp.repeat(jnp.array([[10.5, 12.0, 34.3], [43.4, 51.2, 32.0]]), 3, axis=0),
       jnp.repeat(jnp.array([[1.0, 3.5, 23.2], [2.3, 1.2, 0.3]]), 3, axis=0))
  for nt_type in ("smoothgrad", "smoothgrad_sq", "vargrad"):
    kw = dict(target=0, n_samples=6, stdevs=0.0000002, nt_type=nt_type)
    a = batched.smoothgrad(jax.random.key(0), clf, x, internal_batch_size=chunk, **kw)
    b = batched.smoothgrad(jax.random.key(0), clf, x, **kw)
    for u, v in zip(a, b):
      np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def test_input_x_gradient_basic_and_multi_variable():
  """test_input_x_gradient_test_basic_vanilla / _multi_variable_vanilla:
  x * grad, against the precomputed grads and autograd."""
  out = jax.vmap(lambda v: A.gradient_x_input(basic_model, v))(BASIC_INPUT)
  np.testing.assert_allclose(out, BASIC_INPUT * BASIC_GRADS, atol=1e-6)
  clf = _model5_clf()
  g1, g2 = batched.gradient_x_input(clf, (MULTI_X1, MULTI_X2), target=0)
  r1, r2 = jax.grad(lambda a, b: basic_model5(a, b, [2, 3], 1).sum(), (0, 1))(
      MULTI_X1, MULTI_X2)
  np.testing.assert_allclose(g1, MULTI_X1 * r1, atol=1e-5)
  np.testing.assert_allclose(g2, MULTI_X2 * r2, atol=1e-5)


# ---------------------------------------------------------------------------
# tests/attr/layer/test_grad_cam.py  (target 0; Captum's default relu=False)

def test_grad_cam_simple_input_non_conv():
  out = batched.grad_cam(multilayer(), jnp.array([[0.0, 100.0, 0.0]]), layer="linear0",
                         target=0, relu=False)
  np.testing.assert_allclose(out, [400.0], atol=0.01)


def test_grad_cam_simple_multi_input_non_conv():
  """A layer that returns a tuple (MultiRelu): one map per output."""
  out = batched.grad_cam(multilayer_multi_relu(), jnp.array([[0.0, 6.0, 0.0]]),
                         layer="multi_relu", target=0, relu=False)
  np.testing.assert_allclose(out[0], [21.0], atol=0.01)
  np.testing.assert_allclose(out[1], [21.0], atol=0.01)


def test_grad_cam_simple_input_conv():
  out = batched.grad_cam(one_conv(), ARANGE_IMAGE, layer="conv1", target=0, relu=False)
  np.testing.assert_allclose(out, [[[11.25, 13.5], [20.25, 22.5]]], atol=0.01)


def test_grad_cam_split_channels():
  out = batched.grad_cam(one_conv(), ARANGE_IMAGE, layer="conv1", target=0, relu=False,
                         attr_dim_summation=False)
  expected = [[[[-3.75, 3.0], [23.25, 30.0]], [[15.0, 10.5], [-3.0, -7.5]]]]
  np.testing.assert_allclose(out, nchw_to_nhwc(expected), atol=0.01)


def test_grad_cam_conv_relu_layer():
  out = batched.grad_cam(one_conv(), ARANGE_IMAGE, layer="relu1", target=0, relu=False)
  np.testing.assert_allclose(out, [[[0.0, 4.0], [28.0, 32.5]]], atol=0.01)


@pytest.mark.parametrize("final_relu", [False, True])
def test_grad_cam_at_the_input_of_conv1(final_relu):
  """test_simple_input_conv_without_final_relu / _fc_with_final_relu
  (attribute_to_layer_input=True on conv1, i.e. a cut before it): 0.5625 * input,
  the negative entry zeroed by the final ReLU."""
  x = ARANGE_IMAGE.at[0, 1, 1, 0].set(-4.0)
  out = batched.grad_cam(one_conv(), x, layer="input", target=0, relu=final_relu)
  expected = 0.5625 * np.asarray(x[..., 0])
  if final_relu:
    expected[0, 1, 1] = 0.0
  np.testing.assert_allclose(out, expected, atol=0.01)


def test_grad_cam_simple_multi_input_conv():
  """(inp, inp2) tuple inputs, added by the model."""
  clf = one_conv(pre=lambda v: v[0] + v[1])
  out = batched.grad_cam(clf, (ARANGE_IMAGE, jnp.ones((1, 4, 4, 1))), layer="conv1",
                         target=0, relu=False)
  np.testing.assert_allclose(out, [[[14.5, 19.0], [32.5, 37.0]]], atol=0.01)


# ---------------------------------------------------------------------------
# tests/attr/layer/test_layer_conductance.py (target 0, gausslegendre, n = 500,
# internal batch sizes None, 4, 20; |delta| < 0.01)

def _assert_conductance(clf, layer, x, expected, baselines=None):
  for ibs in (None, 4, 20):
    attr, delta = batched.layer_conductance(
        clf, x, layer=layer, target=0, baselines=baselines, n_steps=500,
        method="gausslegendre", internal_batch_size=ibs, return_convergence_delta=True)
    assert float(jnp.abs(delta).max()) < 0.01, delta
    for a, e in zip(attr if isinstance(attr, tuple) else (attr,),
                    expected if isinstance(expected, tuple) else (expected,)):
      np.testing.assert_allclose(a, e, atol=0.1)


X100 = jnp.array([[0.0, 100.0, 0.0]])


@pytest.mark.parametrize("layer, expected", [
    ("linear0", [[0.0, 390.0, 0.0]]),            # test_simple_input_conductance
    ("linear1", [[90.0, 100.0, 100.0, 100.0]]),  # test_simple_linear_conductance
    ("relu", [[90.0, 100.0, 100.0, 100.0]]),     # test_simple_relu_conductance
    ("linear2", [[390.0, 0.0]]),                 # test_simple_output_conductance
])
def test_layer_conductance_simple(layer, expected):
  _assert_conductance(multilayer(), layer, X100, expected)


def test_layer_conductance_with_scalar_baseline():
  _assert_conductance(multilayer(), "linear0", X100, [[0.0, 390.0, 0.0]], baselines=0.0)


def test_layer_conductance_of_a_tuple_layer():
  """test_simple_input_multi_conductance: MultiRelu's two outputs."""
  expected = ([[90.0, 100.0, 100.0, 100.0]], [[90.0, 100.0, 100.0, 100.0]])
  _assert_conductance(multilayer_multi_relu(), "multi_relu", X100, expected)


def test_layer_conductance_multi_input_linear2():
  """test_simple_multi_input_linear2_conductance: scale 4 * (x1 + x2 + x3)."""
  clf = multilayer(pre=lambda v: 4 * (v[0] + v[1] + v[2]))
  x = (jnp.array([[0.0, 10.0, 0.0]]), jnp.array([[0.0, 10.0, 0.0]]),
       jnp.array([[0.0, 5.0, 0.0]]))
  _assert_conductance(clf, "linear2", x, [[390.0, 0.0]])


@pytest.mark.parametrize("batch", [False, True])
def test_layer_conductance_multi_input_relu(batch):
  """test_simple_multi_input_relu_conductance[_batch]: inputs (x1, x2), x3 and
  scale 5 as extra forward arguments. Our models take no extra arguments, so x3
  is a third input whose baseline is itself: it stays fixed along the path, as
  Captum's extra argument does, and gets no attribution."""
  x1 = jnp.array([[0.0, 10.0, 1.0], [0.0, 0.0, 10.0]])
  x2 = jnp.array([[0.0, 4.0, 5.0], [0.0, 0.0, 10.0]])
  x3 = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
  expected = [[90.0, 100.0, 100.0, 100.0], [100.0, 100.0, 100.0, 100.0]]
  n = 2 if batch else 1
  clf = multilayer(pre=lambda v: 5 * (v[0] + v[1] + v[2]))
  _assert_conductance(clf, "relu", (x1[:n], x2[:n], x3[:n]), expected[:n],
                      baselines=(0.0, 0.0, x3[:n]))


def test_layer_conductance_of_several_layers():
  """A list of layers gives one result per layer, each as for that layer alone."""
  out = batched.layer_conductance(multilayer(), X100, layer=["linear0", "linear2"],
                                  target=0, n_steps=500, method="gausslegendre")
  np.testing.assert_allclose(out[0], [[0.0, 390.0, 0.0]], atol=0.1)
  np.testing.assert_allclose(out[1], [[390.0, 0.0]], atol=0.1)


# ---------------------------------------------------------------------------
# tests/attr/neuron/test_neuron_conductance.py (target 0, gausslegendre, n = 500,
# internal batch sizes None, 5, 20)

def _assert_neuron(clf, layer, x, neuron, expected, multiply_by_inputs=True,
                   baselines=None):
  for ibs in (None, 5, 20):
    attr = batched.neuron_conductance(
        clf, x, layer=layer, neuron_index=neuron, target=0, n_steps=500, baselines=baselines,
        method="gausslegendre", internal_batch_size=ibs,
        multiply_by_inputs=multiply_by_inputs)
    for a, e in zip(attr if isinstance(attr, tuple) else (attr,),
                    expected if isinstance(expected, tuple) else (expected,)):
      np.testing.assert_allclose(a, e, atol=0.1)


@pytest.mark.parametrize("layer, neuron, x, expected", [
    ("linear2", (0,), [[0.0, 100.0, 0.0]], [[0.0, 390.0, 0.0]]),
    ("linear1", 0, [[0.0, 100.0, 0.0]], [[0.0, 90.0, 0.0]]),
    ("relu", (3,), [[0.0, 70.0, 30.0]], [[0.0, 70.0, 30.0]]),
])
def test_neuron_conductance_simple(layer, neuron, x, expected):
  _assert_neuron(multilayer(), layer, jnp.array(x), neuron, expected)


def test_neuron_conductance_without_multiplying_by_inputs():
  """test_simple_conductance_input_linear2_wo_mult_by_inputs: 3.96 each."""
  _assert_neuron(multilayer(), "linear2", jnp.array([[100.0, 100.0, 100.0]]), (0,),
                 [[3.96, 3.96, 3.96]], multiply_by_inputs=False)


def test_neuron_conductance_multi_input_linear2():
  clf = multilayer(pre=lambda v: 4 * (v[0] + v[1] + v[2]))
  x = (jnp.array([[0.0, 10.0, 0.0]]), jnp.array([[0.0, 10.0, 0.0]]),
       jnp.array([[0.0, 5.0, 0.0]]))
  _assert_neuron(clf, "linear2", x, (0,),
                 ([[0.0, 156.0, 0.0]], [[0.0, 156.0, 0.0]], [[0.0, 78.0, 0.0]]))


@pytest.mark.parametrize("batch", [False, True])
def test_neuron_conductance_multi_input_relu(batch):
  """test_simple_conductance_multi_input_[batch_]relu; x3 as in
  test_layer_conductance_multi_input_relu (its attribution is zero)."""
  x1 = jnp.array([[0.0, 10.0, 1.0], [0.0, 0.0, 10.0]])
  x2 = jnp.array([[0.0, 4.0, 5.0], [0.0, 0.0, 10.0]])
  x3 = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
  n = 2 if batch else 1
  clf = multilayer(pre=lambda v: 5 * (v[0] + v[1] + v[2]))
  expected = (np.array([[0.0, 50.0, 5.0], [0.0, 0.0, 50.0]])[:n],
              np.array([[0.0, 20.0, 25.0], [0.0, 0.0, 50.0]])[:n], np.zeros((n, 3)))
  _assert_neuron(clf, "relu", (x1[:n], x2[:n], x3[:n]), (3,), expected,
                 baselines=(0.0, 0.0, x3[:n]))


# ---------------------------------------------------------------------------
# tests/attr/layer/test_layer_gradient_x_activation.py and
# test_layer_integrated_gradients.py

def test_layer_gradient_x_activation_simple():
  """test_simple_input_gradient_activation / _linear_ / _output_ / _relu_: on
  [[0, 100, 0]]: linear0 [[0, 400, 0]], linear1 [[90, 101, 101, 101]], linear2
  [[392, 0]]; on [[3, 4, 0]]: relu [[0, 8, 8, 8]]; test_multi_layer_linear_...: the
  list [linear0, linear1] gives both."""
  clf = multilayer()
  gxa = lambda x, layer: batched.layer_gradient_x_activation(clf, x, layer=layer, target=0)
  np.testing.assert_allclose(gxa(X100, "linear0"), [[0.0, 400.0, 0.0]], atol=0.01)
  np.testing.assert_allclose(gxa(X100, "linear1"), [[90.0, 101.0, 101.0, 101.0]], atol=0.01)
  np.testing.assert_allclose(gxa(X100, "linear2"), [[392.0, 0.0]], atol=0.01)
  np.testing.assert_allclose(gxa(jnp.array([[3.0, 4.0, 0.0]]), "relu"),
                             [[0.0, 8.0, 8.0, 8.0]], atol=0.01)
  both = gxa(X100, ["linear0", "linear1"])
  np.testing.assert_allclose(both[0], [[0.0, 400.0, 0.0]], atol=0.01)
  np.testing.assert_allclose(both[1], [[90.0, 101.0, 101.0, 101.0]], atol=0.01)


def test_layer_gradient_x_activation_tuple_layer():
  """test_simple_multi_gradient_activation: MultiRelu on [[3, 4, 0]] gives
  ([[0, 8, 8, 8]], [[0, 8, 8, 8]])."""
  out = batched.layer_gradient_x_activation(multilayer_multi_relu(),
                                            jnp.array([[3.0, 4.0, 0.0]]),
                                            layer="multi_relu", target=0)
  np.testing.assert_allclose(out[0], [[0.0, 8.0, 8.0, 8.0]], atol=0.01)
  np.testing.assert_allclose(out[1], [[0.0, 8.0, 8.0, 8.0]], atol=0.01)


def test_layer_integrated_gradients_compare_with_layer_conductance():
  """test_compare_with_layer_conductance_attr_to_outputs: at linear2 on [[50, 50, 50]]
  with 1500 steps, layer IG and layer conductance agree within 0.01 and their deltas
  within 0.5 (both Captum's default gausslegendre)."""
  clf = multilayer()
  x = jnp.array([[50.0, 50.0, 50.0]])
  lc, d1 = batched.layer_conductance(clf, x, layer="linear2", target=0, n_steps=1500,
                                     method="gausslegendre", return_convergence_delta=True)
  lig, d2 = batched.layer_integrated_gradients(clf, x, layer="linear2", target=0,
                                               n_steps=1500, return_convergence_delta=True)
  np.testing.assert_allclose(lc, lig, atol=0.01)
  np.testing.assert_allclose(d1, d2, atol=0.5)


def test_layer_integrated_gradients_tuple_layer_matches_expected():
  """test_multiple_tensors_compare_with_expected: MultiRelu on [[0, 100, 0]]."""
  out = batched.layer_integrated_gradients(multilayer_multi_relu(), X100,
                                           layer="multi_relu", target=0)
  for a in out:
    np.testing.assert_allclose(a, [[90.0, 100.0, 100.0, 100.0]], atol=0.01)


def test_layer_integrated_gradients_of_two_parallel_layers_on_tuple_inputs():
  """test_multiple_layers_multiple_inputs_shared_input (layer outputs):
  BasicModel_MultiLayer_TrueMultiInput, m1(x1) + m234(x2, x3, x1), attributed to the
  two sub-models' outputs (here one tuple layer) equals IG of (a, b) -> a + b at those
  outputs; and their sum is input IG's total (completeness)."""
  m1 = _chain(list(MULTILAYER))
  m234 = lambda a, b, c: m1(a + b + c)
  features = lambda p, v: (m1(v[0]), m234(v[1], v[2], v[0]))
  head = lambda p, h: h[0] + h[1]
  clf = models.from_functions(lambda p, v: head(p, features(p, v)), {},
                              splits={"m1, m234": (features, head)}, num_classes=2, input_range=None)
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  x = tuple(jax.random.normal(k, (5, 3)) for k in (k1, k2, k3))
  lig = batched.layer_integrated_gradients(clf, x, layer="m1, m234", target=0)
  sum_clf = models.from_functions(lambda p, v: v[0] + v[1], {}, num_classes=2, input_range=None)
  ends = features(None, x)
  ref = batched.integrated_gradients(sum_clf, ends, target=0,
                                     baselines=features(None, tuple(map(jnp.zeros_like, x))))
  for a, b in zip(lig, ref):
    np.testing.assert_allclose(a, b, atol=1e-5)
  ig = batched.integrated_gradients(clf, x, target=0, n_steps=500)
  np.testing.assert_allclose(sum(a.sum() for a in lig), sum(a.sum() for a in ig), atol=0.05)
