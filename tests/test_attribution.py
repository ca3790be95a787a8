"""Attribution methods against closed forms, axioms, jax.hessian, finite
differences and (where installed) Captum."""
import re

import chex

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explicable_jax import attribution as A
from explicable_jax import models

W = jnp.array([1.0, -2.0, 3.0, 0.5])
X = jnp.array([0.5, 1.0, -1.5, 2.0])
B = jnp.array([0.1, -0.2, 0.3, 0.0])


def linear(x):
  return W @ x + 0.7


def quadratic(x):
  return jnp.sum(W * x ** 2)


# ---------------------------------------------------------------- quadrature


@pytest.mark.parametrize("method", A.METHODS)
def test_integration_points_integrate_constants_and_stay_in_unit_interval(method):
  alphas, weights = A.integration_points(method, 7)
  np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
  assert alphas.min() >= 0.0 and alphas.max() <= 1.0


def test_integration_points_match_captum_definitions():
  np.testing.assert_allclose(A.integration_points("riemann_left", 4)[0], [0, .25, .5, .75])
  np.testing.assert_allclose(A.integration_points("riemann_right", 4)[0], [.25, .5, .75, 1])
  np.testing.assert_allclose(A.integration_points("riemann_middle", 4)[0], [.125, .375, .625, .875])
  alphas, weights = A.integration_points("riemann_trapezoid", 5)
  np.testing.assert_allclose(alphas, [0, .25, .5, .75, 1])
  np.testing.assert_allclose(weights, [.125, .25, .25, .25, .125])


def test_gauss_legendre_is_exact_for_polynomials_of_degree_2n_minus_1():
  alphas, weights = A.integration_points("gausslegendre", 3)
  # int_0^1 a^5 = 1/6, exact with 3 nodes.
  np.testing.assert_allclose(np.sum(weights * alphas ** 5), 1 / 6, rtol=1e-12)


# ------------------------------------------------------------ input methods


def test_gradient_and_gradient_x_input_on_a_linear_score():
  chex.assert_trees_all_close(A.gradient(linear, X), W)
  chex.assert_trees_all_close(A.gradient(linear, -X, absolute=True), jnp.abs(W))
  chex.assert_trees_all_close(A.gradient_x_input(linear, X), W * X)


@pytest.mark.parametrize("method", A.METHODS)
def test_integrated_gradients_is_exact_on_a_linear_score(method):
  ig, delta = A.integrated_gradients(linear, X, baselines=B, n_steps=5, method=method,
                                     return_convergence_delta=True)
  chex.assert_trees_all_close(ig, W * (X - B), atol=1e-6)
  assert abs(float(delta)) < 1e-5


@pytest.mark.parametrize("method", ["riemann_middle", "riemann_trapezoid", "gausslegendre"])
def test_integrated_gradients_closed_form_on_a_quadratic(method):
  # IG_i = (x_i - b_i) * int 2 w_i (b_i + a (x_i - b_i)) da = w_i (x_i^2 - b_i^2):
  # exact for rules that integrate linear functions exactly.
  ig = A.integrated_gradients(quadratic, X, baselines=B, n_steps=4, method=method)
  chex.assert_trees_all_close(ig, W * (X ** 2 - B ** 2), atol=1e-5)


def test_riemann_left_and_right_errors_on_a_quadratic_are_the_known_ones():
  # Left sums of int_0^1 a da with n steps give (n - 1) / (2n), right (n + 1) / (2n).
  n = 4
  left = A.integrated_gradients(quadratic, X, n_steps=n, method="riemann_left")
  right = A.integrated_gradients(quadratic, X, n_steps=n, method="riemann_right")
  chex.assert_trees_all_close(left, W * X ** 2 * (n - 1) / n, atol=1e-5)
  chex.assert_trees_all_close(right, W * X ** 2 * (n + 1) / n, atol=1e-5)


def test_integrated_gradients_delta_shrinks_with_more_steps():
  f = lambda x: jnp.sum(jnp.sin(3 * x) * W) + jnp.prod(jnp.tanh(x))
  deltas = [abs(float(A.integrated_gradients(
      f, X, n_steps=n, method="riemann_trapezoid", return_convergence_delta=True)[1]))
            for n in (4, 16, 64)]
  assert deltas[0] > 4 * deltas[1] > 16 * deltas[2] > 0  # O(1/n^2) for the trapezoid rule.


def test_integrated_gradients_chunks_give_the_same_answer():
  f = lambda x: jnp.sum(jnp.sin(3 * x) * W)
  full = A.integrated_gradients(f, X, n_steps=10, method="gausslegendre")
  for chunk in (1, 3, 10, 50):
    chex.assert_trees_all_close(
        A.integrated_gradients(f, X, n_steps=10, internal_batch_size=chunk), full, atol=1e-6)


def test_integrated_gradients_vmaps_over_examples_and_targets(key):
  model = models.create_model(key, "mlp", input_shape=(4,), num_classes=3, hidden=(8,))
  g, p, s = models.split_model(model)
  logits_fn = lambda x: models.apply_model(g, p, s, x)[0]
  xs = jax.random.normal(key, (5, 4))
  ts = jnp.array([0, 1, 2, 1, 0])
  batched = jax.jit(jax.vmap(lambda x, t: A.integrated_gradients(
      A.class_score_fn(logits_fn, t), x, n_steps=8)))(xs, ts)
  for i in range(5):
    one = A.integrated_gradients(A.class_score_fn(logits_fn, int(ts[i])), xs[i], n_steps=8)
    chex.assert_trees_all_close(batched[i], one, atol=1e-5)


def test_smoothgrad_of_a_linear_score_is_its_gradient_with_zero_variance(key):
  chex.assert_trees_all_close(A.smoothgrad(key, linear, X, n_samples=8), W, atol=1e-6)
  chex.assert_trees_all_close(
      A.smoothgrad(key, linear, X, n_samples=8, nt_type="smoothgrad_sq"), W ** 2, atol=1e-5)
  chex.assert_trees_all_close(
      A.smoothgrad(key, linear, X, n_samples=8, nt_type="vargrad"), jnp.zeros(4), atol=1e-5)


def test_smoothgrad_matches_the_mean_over_its_own_noise(key):
  # gradient of sum w x^2 at x + s e is 2 w (x + s e); with the same key the
  # noise is reproducible, so the mean is known exactly.
  sigma, n = 0.3, 16
  noise = jax.random.normal(key, (n, 4))
  expected = jnp.mean(2 * W * (X + sigma * noise), axis=0)
  got = A.smoothgrad(key, quadratic, X, n_samples=n, stdevs=sigma, internal_batch_size=5)
  chex.assert_trees_all_close(got, expected, atol=1e-5)


# ------------------------------------------------------------ layer methods
# A two-class model whose layer is linear in x (a = x @ M) and whose head is
# quadratic, F_c(a) = sum_j V[c, j] a_j^2. With a zero baseline a(alpha) =
# alpha a, so the conductance of neuron j is int 2 V a_j (alpha a_j) da =
# V a_j^2, and each rule's discrete sum has a closed form.

M = jnp.array([[1.0, 0.5, -1.0], [0.0, 2.0, 1.0]])
V = jnp.array([[1.0, -0.5, 2.0], [0.3, 0.3, -1.0]])
XB = jnp.array([[1.0, -1.0], [0.5, 2.0]])


def quad_features(x):
  return x @ M


def quad_head(a):
  return (a ** 2) @ V.T


@pytest.mark.parametrize("method,factor", [
    ("riemann_right", lambda n: (n + 1) / n),
    ("riemann_left", lambda n: (n - 1) / n),
    ("riemann_trapezoid", lambda n: 1.0),
    ("riemann_middle", lambda n: 1.0),
])
@pytest.mark.parametrize("target", [0, 1])
def test_layer_conductance_closed_forms(method, factor, target):
  n = 5
  cond, delta = A.layer_conductance(quad_features, quad_head, XB, target=target, n_steps=n,
                                    method=method, return_convergence_delta=True)
  a = quad_features(XB)
  chex.assert_trees_all_close(cond, V[target] * a ** 2 * factor(n), atol=1e-5)
  chex.assert_trees_all_close(delta, cond.sum(1) - quad_head(a)[:, target], atol=1e-5)


def test_layer_conductance_gausslegendre_is_captums_left_rule_on_gauss_nodes():
  n = 6
  nodes = A.integration_points("gausslegendre", n + 1)[0]
  factor = 2 * np.sum(nodes[:-1] * np.diff(nodes))
  cond = A.layer_conductance(quad_features, quad_head, XB, target=0, n_steps=n,
                             method="gausslegendre")
  chex.assert_trees_all_close(cond, V[0] * quad_features(XB) ** 2 * factor, atol=1e-5)


def test_layer_conductance_chunks_and_per_example_targets():
  full = A.layer_conductance(quad_features, quad_head, XB, target=jnp.array([0, 1]),
                             n_steps=7, method="riemann_trapezoid")
  for ibs in (2, 4, 6, 100):
    chunked = A.layer_conductance(quad_features, quad_head, XB, target=jnp.array([0, 1]),
                                  n_steps=7, method="riemann_trapezoid",
                                  internal_batch_size=ibs)
    chex.assert_trees_all_close(chunked, full, atol=1e-5)
  a = quad_features(XB)
  chex.assert_trees_all_close(full[1], V[1] * a[1] ** 2, atol=1e-5)


def _cnn(key):
  model = models.create_model(key, "cnn", input_shape=(8, 8, 1), num_classes=4,
                              widths=(4, 6), dense=8)
  return models.split_model(model)


def test_layer_conductance_completeness_improves_with_steps(key):
  g, p, s = _cnn(key)
  f, h = models.split_at(g, p, s, "conv_0")  # A non-affine head: conv, pool, dense.
  x = jax.random.uniform(key, (3, 8, 8, 1))
  delta = lambda n: jax.jit(lambda x: A.layer_conductance(
      f, h, x, target="predicted", n_steps=n, method="riemann_trapezoid",
      return_convergence_delta=True)[1])(x)
  scores = [np.abs(delta(n)).max() for n in (2, 64)]
  assert scores[1] < scores[0] / 10


def _resnet8(key):
  model = models.create_model(key, "resnet", depth=8, widths=(4, 4, 8), input_shape=(8, 8, 1),
                              num_classes=3)
  return models.split_model(model)


def test_affine_head_shortcut_matches_the_step_by_step_sum(key):
  g, p, s = _resnet8(key)
  x = jax.random.uniform(key, (3, 8, 8, 1))
  f, h = models.split_at(g, p, s, "layer3.0")  # Then average pooling and a dense layer.
  t = jnp.zeros(3, jnp.int32)
  assert A.head_gradient_is_constant(h, jax.eval_shape(f, x), t)
  f0, h0 = models.split_at(g, p, s, "layer2.0")
  assert not A.head_gradient_is_constant(h0, jax.eval_shape(f0, x), t)
  @jax.jit
  def both(x):
    return [(A.layer_conductance(f, h, x, target="predicted", method=m),
             A.layer_conductance(f, h, x, target="predicted", method=m,
                                 shortcut_affine_head=False))
            for m in ("riemann_right", "riemann_trapezoid", "gausslegendre")]
  for fast, slow in both(x):
    chex.assert_trees_all_close(fast, slow, atol=1e-5)


def test_per_feature_map_sum_and_mean():
  cond = jnp.arange(2 * 3 * 4 * 5, dtype=jnp.float32).reshape(2, 3, 4, 5)
  chex.assert_trees_all_close(A.per_feature_map(cond), cond.sum((1, 2)))
  chex.assert_trees_all_close(A.per_feature_map(cond, reduce="mean"), cond.sum((1, 2)) / 12)


def test_neuron_conductances_sum_to_the_layer_conductance_of_that_neuron():
  features = lambda x: jnp.tanh(x @ M)
  head = lambda a: jnp.stack([jnp.sum(jnp.sin(a) * V[0], -1), jnp.sum(a ** 3 * V[1], -1)], -1)
  layer = A.layer_conductance(features, head, XB, target=1, n_steps=400,
                              method="riemann_trapezoid", shortcut_affine_head=False)
  for j in range(3):
    neuron = A.neuron_conductance(features, head, XB, neuron_index=j, target=1,
                                  n_steps=400, internal_batch_size=300)
    chex.assert_trees_all_close(neuron.sum(1), layer[:, j], atol=1e-3)


def test_layer_integrated_gradients_closed_form_and_completeness():
  # Path in layer space a' + alpha (a - a'), zero a': LIG_j = V a_j^2 exactly.
  lig, delta = A.layer_integrated_gradients(quad_features, quad_head, XB, target=0,
                                            n_steps=3, return_convergence_delta=True)
  chex.assert_trees_all_close(lig, V[0] * quad_features(XB) ** 2, atol=1e-5)
  chex.assert_trees_all_close(delta, jnp.zeros(2), atol=1e-5)


def test_layer_gradient_x_activation():
  a = quad_features(XB)
  chex.assert_trees_all_close(
      A.layer_gradient_x_activation(quad_features, quad_head, XB, target=1),
      a * 2 * V[1] * a, atol=1e-6)


def test_grad_cam_against_a_hand_computation(key):
  # Layer = input (N, H, W, C); head = dense(mean over positions of a^2).
  dense = jax.random.normal(key, (3, 5))
  head = lambda a: (a ** 2).mean((1, 2)) @ dense
  x = jax.random.normal(jax.random.fold_in(key, 1), (2, 4, 3, 3))
  target = np.array([4, 1])
  cam = A.grad_cam(lambda z: z, head, x, target=target)
  xn = np.asarray(x)
  for n in range(2):
    grads = 2 * xn[n] * np.asarray(dense)[:, target[n]] / 12  # d head / d a
    weights = grads.mean((0, 1))
    expected = np.maximum((xn[n] * weights).sum(-1), 0)
    np.testing.assert_allclose(cam[n], expected, rtol=1e-5, atol=1e-6)
  raw = A.grad_cam(lambda z: z, head, x, target=target, relu=False)
  assert float(raw.min()) < 0 <= float(cam.min())


def test_upsample_nearest_repeats_and_keeps_constants():
  maps = jnp.arange(4.0).reshape(1, 2, 2)
  up = A.upsample(maps, (4, 4), method="nearest")
  chex.assert_trees_all_close(up[0], jnp.repeat(jnp.repeat(maps[0], 2, 0), 2, 1))
  chex.assert_trees_all_close(A.upsample(jnp.ones((2, 3, 3)), (9, 9)), jnp.ones((2, 9, 9)))


# ------------------------------------------------------------- second order


def _second_order_model(key):
  k1, k2 = jax.random.split(key)
  w1 = jax.random.normal(k1, (2 * 2 * 3, 7)) * 0.5
  w2 = jax.random.normal(k2, (7, 4))

  def head(a):
    return jax.nn.log_softmax(jnp.tanh(a.reshape(a.shape[0], -1) @ w1) @ w2)
  return head


def test_second_order_attribution_matches_jax_hessian(key):
  head = _second_order_model(key)
  a = jax.random.normal(jax.random.fold_in(key, 7), (3, 2, 2, 3))
  target = jnp.array([0, 3, 1])
  m = A.second_order_attribution(lambda z: z, head, a, target=target, internal_batch_size=3)
  for n in range(3):
    score = lambda v: head(v[None])[0, target[n]]
    g = jax.grad(score)(a[n])
    hess = jax.hessian(score)(a[n]).reshape(4, 3, 4, 3)
    flat_a = a[n].reshape(4, 3)
    flat_g = g.reshape(4, 3)
    for p in range(4):
      expected = flat_g[p] @ flat_a[p] + 0.5 * flat_a[p] @ hess[p, :, p, :] @ flat_a[p]
      np.testing.assert_allclose(m[n].reshape(4)[p], expected, rtol=1e-4, atol=1e-5)


def test_second_order_per_channel_terms_match_jax_hessian(key):
  head = _second_order_model(key)
  a = jax.random.normal(jax.random.fold_in(key, 7), (2, 2, 2, 3))
  target = jnp.array([2, 0])
  per_c = A.second_order_attribution(lambda z: z, head, a, target=target, per_channel=True)
  assert per_c.shape == (2, 2, 2, 3)
  total = A.second_order_attribution(lambda z: z, head, a, target=target)
  np.testing.assert_allclose(per_c.sum(-1), total, rtol=1e-5, atol=1e-6)
  for n in range(2):
    score = lambda v: head(v[None])[0, target[n]]
    g = jax.grad(score)(a[n]).reshape(4, 3)
    hess = jax.hessian(score)(a[n]).reshape(4, 3, 4, 3)
    flat_a = a[n].reshape(4, 3)
    for p in range(4):
      expected = g[p] * flat_a[p] + 0.5 * flat_a[p] * (hess[p, :, p, :] @ flat_a[p])
      np.testing.assert_allclose(per_c[n].reshape(4, 3)[p], expected, rtol=1e-4, atol=1e-5)


def test_second_order_term_matches_finite_differences(key):
  head = _second_order_model(key)
  a = jax.random.normal(jax.random.fold_in(key, 8), (1, 2, 2, 3))
  terms = A.second_order_attribution(lambda z: z, head, a, target=2, return_terms=True)
  a64 = np.asarray(a, np.float64)
  eps = 1e-2
  for p in range(4):
    mask = np.zeros((1, 2, 2, 1))
    mask.flat[p] = 1
    v = a64 * mask
    f = lambda s: float(head(jnp.asarray(a64 + s * v, jnp.float32))[0, 2])
    fd = (f(eps) - 2 * f(0.0) + f(-eps)) / eps ** 2
    np.testing.assert_allclose(terms.second[0].reshape(4)[p], fd, rtol=2e-2, atol=2e-3)


def test_second_order_term_vanishes_for_an_affine_head(key):
  g, p, s = _resnet8(key)
  f, h = models.split_at(g, p, s, "layer3.0")
  x = jax.random.uniform(key, (2, 8, 8, 1))
  terms = A.second_order_attribution(f, h, x, target="predicted", return_terms=True)
  chex.assert_trees_all_close(terms.second, jnp.zeros_like(terms.second), atol=1e-6)
  chex.assert_trees_all_close(terms.first,
                              A.layer_gradient_x_activation(f, h, x, target="predicted").sum(-1),
                              atol=1e-6)


# --------------------------------------------------------- tracing, errors


def test_jitted_attributions_do_not_retrace_for_new_inputs_of_the_same_shape(key):
  g, p, s = _cnn(key)
  f, h = models.split_at(g, p, s, "conv_0")

  @jax.jit
  @chex.assert_max_traces(n=1)
  def all_methods(x):
    return (A.layer_conductance(f, h, x, target="predicted", n_steps=3,
                                internal_batch_size=4),
            A.grad_cam(f, h, x, target=0),
            A.second_order_attribution(f, h, x, target="predicted"))

  for i in range(3):
    jax.block_until_ready(all_methods(jax.random.uniform(jax.random.fold_in(key, i),
                                                         (2, 8, 8, 1))))
  with pytest.raises(AssertionError):  # a new shape traces again: the counter works
    all_methods(jnp.zeros((3, 8, 8, 1)))


@pytest.mark.parametrize("call,match", [
    (lambda: A.integrated_gradients(linear, X, method="simpson"), "method"),
    (lambda: A.integrated_gradients(linear, X, n_steps=0), "n_steps"),
    (lambda: A.integrated_gradients(linear, X, internal_batch_size=0), "internal_batch_size"),
    (lambda: A.integrated_gradients(linear, X, baselines=jnp.ones(3)), "baselines"),
    (lambda: A.integrated_gradients(lambda x: x * 2, X), "score_fn"),
    (lambda: A.integrated_gradients(linear, X, n_steps=1, method="riemann_trapezoid"), "n_steps"),
    (lambda: A.gradient(linear, jnp.arange(4)), "x"),
    (lambda: A.smoothgrad(jax.random.key(0), linear, X, nt_type="mean"), "nt_type"),
    (lambda: A.smoothgrad(jax.random.key(0), linear, X, stdevs=-1.0), "stdevs"),
    (lambda: A.layer_conductance(quad_features, quad_head, XB, target=jnp.array([0, 1, 1])),
     "target"),
    (lambda: A.layer_conductance(quad_features, quad_head, XB, target=2), "target"),
    (lambda: A.layer_conductance(quad_features, quad_head, XB, target="best"), "target"),
    (lambda: A.layer_conductance(quad_features, quad_head, XB, target=None), "target"),
    (lambda: A.layer_conductance(quad_features, quad_head, XB, target=0, method="left"),
     "method"),
    (lambda: A.layer_conductance(quad_features, quad_head, XB[0], target=0), "head_fn"),
    (lambda: A.neuron_conductance(quad_features, quad_head, XB, neuron_index=3, target=0),
     "neuron_index"),
    (lambda: A.grad_cam(lambda x: x.sum(-1), lambda h: h[:, None], XB, target=0),
     "channel axis"),
    (lambda: A.per_feature_map(jnp.ones((2, 3))), "attributions"),
    (lambda: A.per_feature_map(jnp.ones((2, 3, 3, 1)), reduce="max"), "reduce"),
    (lambda: A.upsample(jnp.ones((2, 3, 3)), (0, 4)), "size"),
])
def test_bad_arguments_are_named_in_the_error(call, match):
  with pytest.raises((ValueError, TypeError), match=match):
    call()


# ------------------------------------------------------------ against Captum


def test_agreement_with_captum_on_a_small_network():
  torch = pytest.importorskip("torch")
  captum_attr = pytest.importorskip("captum.attr")
  rng = np.random.default_rng(0)
  w1, b1 = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=6).astype(np.float32)
  w2, b2 = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
  x = rng.normal(size=(5, 4)).astype(np.float32)
  target = np.array([0, 2, 1, 1, 0])

  net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Softplus(), torch.nn.Linear(6, 3),
                            torch.nn.Tanh())
  with torch.no_grad():
    net[0].weight.copy_(torch.from_numpy(w1.T))
    net[0].bias.copy_(torch.from_numpy(b1))
    net[2].weight.copy_(torch.from_numpy(w2.T))
    net[2].bias.copy_(torch.from_numpy(b2))
  features = lambda z: jax.nn.softplus(z @ w1 + b1)
  head = lambda a: jnp.tanh(a @ w2 + b2)
  xt, tt = torch.from_numpy(x), torch.from_numpy(target)

  lc = captum_attr.LayerConductance(net, net[1])
  for ours, theirs in (("riemann_left", "riemann_trapezoid"), ("gausslegendre", "gausslegendre")):
    expected = lc.attribute(xt, target=tt, n_steps=8, method=theirs).detach().numpy()
    got = A.layer_conductance(features, head, x, target=target, n_steps=8, method=ours)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)

  ig = captum_attr.IntegratedGradients(net).attribute(xt, target=tt, n_steps=20).detach().numpy()
  logits_fn = lambda z: head(features(z))
  got = jax.vmap(lambda xi, ti: A.integrated_gradients(
      A.class_score_fn(logits_fn, ti), xi, n_steps=20))(x, target)
  np.testing.assert_allclose(got, ig, rtol=1e-4, atol=1e-5)

  nc = captum_attr.NeuronConductance(net, net[1])
  expected = nc.attribute(xt, neuron_selector=2, target=tt, n_steps=20,
                          method="gausslegendre").detach().numpy()
  got = A.neuron_conductance(features, head, x, neuron_index=2, target=target, n_steps=20,
                             method="gausslegendre")
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  # Captum's trapezoid weights are 1/n (halved at the ends) on nodes spaced
  # 1/(n - 1), so they sum to (n - 1)/n; ours are the textbook rule.
  expected = nc.attribute(xt, neuron_selector=2, target=tt, n_steps=20,
                          method="riemann_trapezoid").detach().numpy()
  got = A.neuron_conductance(features, head, x, neuron_index=2, target=target, n_steps=20)
  np.testing.assert_allclose(got * 19 / 20, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", A.METHODS)
def test_integrated_gradients_of_a_linear_model_is_exact_in_float32(method):
  # The plain float32 weighted sum is off by ~1.2e-7 relative (the weights add
  # to 0.99999988); the centred sum is exact for a constant gradient.
  w = jax.random.normal(jax.random.key(0), (20,))
  x = jax.random.normal(jax.random.key(1), (20,))
  for chunk in (None, 7):
    ig = A.integrated_gradients(lambda v: v @ w, x, n_steps=50, method=method,
                                          internal_batch_size=chunk)
    np.testing.assert_array_equal(ig, w * x)


def test_multiply_by_inputs_false_gives_the_path_averaged_gradient():
  w = jax.random.normal(jax.random.key(0), (6,))
  x = jax.random.normal(jax.random.key(1), (6,))
  f = lambda v: jnp.sum(jnp.sin(v) * w)  # gradient w cos(v)
  local = A.integrated_gradients(f, x, n_steps=64, multiply_by_inputs=False)
  # int_0^1 w cos(a x) da = w sin(x) / x
  np.testing.assert_allclose(local, w * jnp.sin(x) / x, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(A.integrated_gradients(f, x, n_steps=64), x * local,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="return_convergence_delta needs multiply_by_inputs"):
    A.integrated_gradients(f, x, multiply_by_inputs=False,
                                     return_convergence_delta=True)
  features = lambda xb: jnp.sin(xb)
  head = lambda h: jnp.stack([h @ w, -(h @ w)], -1)
  xb = x[None]
  lig = A.layer_integrated_gradients(features, head, xb, target=0,
                                               multiply_by_inputs=False)
  np.testing.assert_allclose(lig, jnp.broadcast_to(w, (1, 6)), rtol=1e-6)  # an affine head


def test_grad_cam_per_channel_maps_sum_to_the_map():
  key = jax.random.key(0)
  kernel = jax.random.normal(key, (4, 3))
  features = lambda xb: jnp.tanh(xb)
  head = lambda h: jnp.einsum("nhwc,ck->nk", h ** 2, kernel)
  x = jax.random.normal(jax.random.key(1), (2, 5, 5, 4))
  per = A.grad_cam(features, head, x, target=1, relu=False, attr_dim_summation=False)
  assert per.shape == (2, 5, 5, 4)
  np.testing.assert_allclose(per.sum(-1), A.grad_cam(features, head, x, target=1,
                                                                relu=False), rtol=1e-5, atol=1e-6)
  relu_per = A.grad_cam(features, head, x, target=1, attr_dim_summation=False)
  np.testing.assert_allclose(relu_per, jnp.maximum(per, 0))


def test_layer_methods_at_an_embedding_take_token_ids():
  # Token ids are integers; layer IG and gradient x activation interpolate and
  # differentiate the embedding, never the input.
  emb = jax.random.normal(jax.random.key(0), (7, 3))
  w = jax.random.normal(jax.random.key(1), (3, 2))
  features = lambda ids: emb[ids]                       # (N, T, 3)
  head = lambda h: jnp.tanh(h).sum(1) @ w               # (N, 2)
  ids = jnp.array([[1, 4, 2], [6, 0, 3]])
  lig, delta = A.layer_integrated_gradients(features, head, ids, target=1, baselines=0,
                                            n_steps=64, return_convergence_delta=True)
  gap = head(features(ids))[:, 1] - head(features(jnp.zeros_like(ids)))[:, 1]
  np.testing.assert_allclose(lig.sum((1, 2)), gap, rtol=1e-4, atol=1e-5)
  assert float(jnp.abs(delta).max()) < 1e-4
  gxa = A.layer_gradient_x_activation(features, head, ids, target=0)
  g = jax.grad(lambda h: head(h)[:, 0].sum())(features(ids))
  np.testing.assert_allclose(gxa, g * features(ids), rtol=1e-6)
  with pytest.raises(ValueError, match="floating-point"):
    A.layer_conductance(features, head, ids, target=0)


def test_compute_convergence_delta_matches_the_returned_delta():
  from explicable_jax import models
  from explicable_jax.attribution import batched
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=4,
                          widths=(4,), dense=8)
  x = jax.random.uniform(jax.random.key(1), (3, 8, 8, 1))
  ig, delta = batched.integrated_gradients(clf, x, target=2, n_steps=20,
                                           return_convergence_delta=True)
  np.testing.assert_allclose(batched.compute_convergence_delta(clf, ig, x, target=2), delta,
                             atol=1e-5)
  cond, cdelta = batched.layer_conductance(clf, x, layer="conv_0", target=2,
                                           return_convergence_delta=True)
  np.testing.assert_allclose(batched.compute_convergence_delta(clf, cond, x, target=2), cdelta,
                             atol=1e-5)
  with pytest.raises(ValueError, match="one row per example"):
    batched.compute_convergence_delta(clf, ig[:2], x, target=2)


def test_neuron_conductance_without_the_input_factor():
  # y = sum(w1 * x) (one neuron), F = 2 y: dF/dy dy/dx = 2 w1 along the path.
  w1 = jax.random.normal(jax.random.key(0), (5,))
  features = lambda xb: (xb * w1).sum(-1, keepdims=True)
  head = lambda h: jnp.concatenate([2 * h, -h], -1)
  x = jax.random.normal(jax.random.key(1), (2, 5))
  local = A.neuron_conductance(features, head, x, neuron_index=0, target=0,
                               multiply_by_inputs=False)
  np.testing.assert_allclose(local, jnp.broadcast_to(2 * w1, (2, 5)), rtol=1e-5)
  np.testing.assert_allclose(A.neuron_conductance(features, head, x, neuron_index=0, target=0),
                             x * local, rtol=1e-5)


def test_attributions_run_at_the_set_precision_and_keep_their_deltas(key):
  """Every matmul and convolution of an attribution is traced at "highest"
  by default (TPU's bf16 and GPU's TF32 would break completeness); the
  setting can be changed, and the convergence delta holds under it."""
  from explicable_jax import deliberative
  clf = models.classifier(key, "cnn", input_shape=(8, 8, 1), num_classes=3, widths=(4,),
                          dense=8)
  f, h = clf.split(clf.layers[0])
  x = jax.random.uniform(key, (2, 8, 8, 1))

  def precisions(fn):
    txt = jax.jit(fn).lower(x).as_text()
    return set(re.findall(r"precision = \[(\w+), \w+\]", txt))

  ig = lambda v: A.layer_conductance(f, h, v, target=0, n_steps=8)
  sec = lambda v: A.second_order_attribution(f, h, v, target=0)
  maps = lambda v: deliberative.attribution_maps(f, h, v, top_k=2, method="gradient_hessian")
  assert A.get_precision() == "highest"
  for fn in (ig, sec, maps):
    assert precisions(fn) == {"HIGHEST"}, fn
  assert precisions(clf.logits) == {"DEFAULT"}  # a plain forward pass is untouched
  with A.precision("default"):
    # A new function (a traced one keeps the precision it was traced with).
    assert precisions(lambda v: A.layer_conductance(f, h, v, target=0, n_steps=8)) == {
        "DEFAULT"}
  assert A.get_precision() == "highest"  # scoped: restored on leaving the block
  _, delta = A.layer_conductance(f, h, x, target=0, n_steps=200, method="gausslegendre",
                                 return_convergence_delta=True)
  np.testing.assert_allclose(delta, 0.0, atol=1e-4)
  with pytest.raises(ValueError, match="precision must be one of"):
    with A.precision("float64"):
      pass
  with pytest.warns(DeprecationWarning, match="attribution.precision"):
    A.set_precision("highest")
