"""Attribution evaluation metrics: known answers on models whose attributions
are known in closed form, agreement with scipy where it has the statistic, and
the Decoy digits swatch as the ground truth of a decoy-trained model.

Captum's own tests of ``infidelity`` and ``sensitivity_max`` are ported in
tests/test_captum_metrics.py, with the agreement test against Captum itself.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.ndimage
import scipy.stats

from explicable_jax import data, losses, models, training
from explicable_jax.attribution import batched
from explicable_jax.attribution import evaluation as E

W = jax.random.normal(jax.random.key(1), (6, 3))
B = jnp.array([0.1, -0.2, 0.3])


def affine():
  """f(x) = x W + b: gradients are W's columns everywhere, integrated
  gradients (x - x') W exactly."""
  return models.from_functions(lambda p, x: x @ p["w"] + p["b"], {"w": W, "b": B},
                               num_classes=3)


def square_norm(x):
  """f(x) = sum x^2, one score per example (Captum's target=None)."""
  return (x * x).reshape(x.shape[0], -1).sum(1)


X = jax.random.normal(jax.random.key(2), (4, 6))
BASE = jax.random.normal(jax.random.key(3), (4, 6))
saliency = lambda m, x, t: batched.saliency(m, x, target=t)
ig = lambda m, x, t: batched.integrated_gradients(m, x, target=t)


def _key_ij(key, i, j, n):
  """The documented key of draw j of example i, n draws per example."""
  return jax.random.fold_in(key, i * n + j)


# ---------------------------------------------------------------------------
# infidelity


def test_integrated_gradients_have_zero_infidelity_on_an_affine_model(key):
  """IG of an affine model is exact: with perturbations in units of x - x'
  (Captum's decorator, multiply_by_inputs=True), I^T IG = f(x) - f(x - I) for
  any perturbed input: noisy ones and Captum's subset-to-baseline ones."""
  clf = affine()
  attr = batched.integrated_gradients(clf, X, target=1, baselines=BASE)
  noisy = E.infidelity_perturb_func_decorator(True)(
      lambda k, x, b: x - 0.3 * jax.random.normal(k, x.shape))
  subset = E.infidelity_perturb_func_decorator(True)(
      lambda k, x, b: jnp.where(jax.random.bernoulli(k, 0.5, x.shape), b, x))
  for perturb in (noisy, subset):
    got = E.infidelity(key, clf, perturb, X, attr, baselines=BASE, target=1)
    np.testing.assert_allclose(got, 0.0, atol=1e-10)
  # The gradient is not a global attribution: the same perturbations find it out.
  grads = batched.saliency(clf, X, target=1)
  assert float(E.infidelity(key, clf, noisy, X, grads, baselines=BASE, target=1).min()) > 1e-3


def test_infidelity_closed_form_on_a_quadratic(key):
  """f(x) = |x|^2, phi = 2x (its gradient), I = c_j 1 with c_j from the
  documented key of sample j: I^T phi - (f(x) - f(x - I)) = -D c_j^2, so the
  infidelity is mean_j (D c_j^2)^2; normalised, beta = sum a d / sum a^2."""
  x = jax.random.normal(key, (3, 5))
  d, n = x.shape[1], 7

  def perturb(k, xi):
    c = jax.random.uniform(k, (), minval=0.1, maxval=0.5)
    return c * jnp.ones_like(xi), xi - c

  draw = jax.vmap(jax.vmap(lambda i, j: jax.random.uniform(
      _key_ij(key, i, j, n), (), minval=0.1, maxval=0.5), (None, 0)), (0, None))
  c = np.asarray(draw(jnp.arange(3), jnp.arange(n)))
  got = E.infidelity(key, square_norm, perturb, x, 2 * x, n_perturb_samples=n)
  np.testing.assert_allclose(got, ((d * c ** 2) ** 2).mean(1), rtol=1e-4)
  a = 2 * c * np.asarray(x).sum(1, keepdims=True)
  drop = a - d * c ** 2
  beta = (a * drop).sum(1) / (a * a).sum(1)
  want = ((beta[:, None] * a - drop) ** 2).mean(1)
  got = E.infidelity(key, square_norm, perturb, x, 2 * x, n_perturb_samples=n, normalize=True)
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)
  # Normalised infidelity ignores the scale of the attributions; plain does not.
  scaled = E.infidelity(key, square_norm, perturb, x, 20 * x, n_perturb_samples=n,
                        normalize=True)
  np.testing.assert_allclose(scaled, got, rtol=1e-4, atol=1e-7)


def test_infidelity_does_not_depend_on_the_batching_and_jits(key):
  clf = models.from_functions(lambda p, x: jnp.tanh(x @ p), W, num_classes=3)
  grads = batched.saliency(clf, X, target="predicted")
  perturb = E.gaussian_perturb_func(0.1)
  full = E.infidelity(key, clf, perturb, X, grads, target="predicted", n_perturb_samples=5)
  chunked = E.infidelity(key, clf, perturb, X, grads, target="predicted", n_perturb_samples=5,
                         max_examples_per_batch=9)  # 2 samples per pass, the last padded
  jitted = jax.jit(lambda k, c, x, a: E.infidelity(k, c, perturb, x, a, target="predicted",
                                                   n_perturb_samples=5))(key, clf, X, grads)
  np.testing.assert_allclose(chunked, full, rtol=1e-5)
  np.testing.assert_allclose(jitted, full, rtol=1e-4)
  # One example alone draws what it drew in the batch (keys fold in its index 0).
  one = E.infidelity(key, clf, perturb, X[:1], grads[:1], target="predicted",
                     n_perturb_samples=5)
  np.testing.assert_allclose(one, full[:1], rtol=1e-5)


def test_pixel_maps_count_for_every_channel(key):
  """A (N, H, W) map of (N, H, W, C) images: I^T phi sums I_c phi over channels."""
  x = jax.random.uniform(key, (2, 3, 3, 2))
  fn = lambda v: (v * jnp.arange(2.0)).reshape(len(v), -1).sum(1)   # uses channel 1 only
  perturb = lambda k, xi: (jnp.full_like(xi, 0.1), xi - 0.1)
  pixel = jnp.ones((2, 3, 3))           # 1 per pixel = [1, 1] per channel pair
  full = jnp.ones((2, 3, 3, 2))
  np.testing.assert_allclose(E.infidelity(key, fn, perturb, x, pixel, n_perturb_samples=2),
                             E.infidelity(key, fn, perturb, x, full, n_perturb_samples=2))
  # exact attributions (0 on channel 0, 1 on channel 1) have zero infidelity
  exact = jnp.broadcast_to(jnp.arange(2.0), x.shape)
  np.testing.assert_allclose(E.infidelity(key, fn, perturb, x, exact, n_perturb_samples=2), 0,
                             atol=1e-10)


# ---------------------------------------------------------------------------
# sensitivity_max


def test_gradient_sensitivity_is_zero_on_an_affine_model(key):
  np.testing.assert_array_equal(E.sensitivity_max(key, saliency, affine(), X, target=2), 0.0)
  # IG carries x: its sensitivity is |delta W_t| / |x W_t| for a fixed delta
  delta = jnp.linspace(-0.02, 0.02, 6)
  got = E.sensitivity_max(key, ig, affine(), X, target=2, n_perturb_samples=3,
                          perturb_func=lambda k, x, r: x + delta)
  w = np.asarray(W[:, 2])
  want = np.linalg.norm(np.asarray(delta) * w) / np.linalg.norm(np.asarray(X) * w, axis=1)
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_sensitivity_of_the_gradient_of_a_quadratic_is_the_largest_noise(key):
  """phi = 2x: ||phi(x) - phi(x + d_j)|| / ||phi(x)|| = ||d_j|| / ||x||, with
  d_j ~ U[-r, r] drawn from the documented keys."""
  x = jax.random.normal(key, (3, 8))
  grad = lambda m, v, t: jax.vmap(jax.grad(lambda u: m(u[None])[0]))(v)
  n = 10
  got = E.sensitivity_max(key, grad, square_norm, x)
  draw = jax.jit(jax.vmap(jax.vmap(lambda i, j: E.default_perturb_func(
      _key_ij(key, i, j, n), x[i]) - x[i], (None, 0)), (0, None)))
  noise = np.asarray(draw(jnp.arange(3), jnp.arange(n)))          # (3, n, 8)
  assert np.abs(noise).max() <= 0.02
  want = np.linalg.norm(noise, axis=2).max(1) / np.linalg.norm(np.asarray(x), axis=1)
  np.testing.assert_allclose(got, want, rtol=1e-4)
  chunked = E.sensitivity_max(key, grad, square_norm, x, max_examples_per_batch=7)
  np.testing.assert_allclose(chunked, got, rtol=1e-6)
  l1 = E.sensitivity_max(key, grad, square_norm, x, norm_ord=1)
  want1 = np.abs(noise).sum(2).max(1) / np.abs(np.asarray(x)).sum(1)
  np.testing.assert_allclose(l1, want1, rtol=1e-4)


# ---------------------------------------------------------------------------
# deletion, insertion, faithfulness correlation


def test_deletion_and_insertion_curves_of_a_linear_score():
  """Logit w.x at x = 1 from baseline 0: after removing the k largest weights
  the score is the sum of the others; one feature per step."""
  w = jnp.array([0.5, 3.0, -1.0, 2.0, 0.0, 1.0, -2.0, 4.0])
  fn = lambda x: jnp.stack([x @ w, jnp.zeros(len(x))], 1)
  x = jnp.ones((1, 8))
  order = np.sort(np.asarray(w))[::-1]
  deletion = E.deletion_curve(fn, x, w[None], target=0, n_steps=8, softmax=False)
  np.testing.assert_allclose(deletion.fractions, np.arange(9) / 8)
  np.testing.assert_allclose(deletion.scores[0],
                             float(w.sum()) - np.concatenate([[0], np.cumsum(order)]),
                             atol=1e-6)
  insertion = E.insertion_curve(fn, x, w[None], target=0, n_steps=8, softmax=False)
  np.testing.assert_allclose(insertion.scores[0], np.concatenate([[0], np.cumsum(order)]),
                             atol=1e-6)
  auc = float(E.area_under_curve(deletion)[0])
  curve = float(w.sum()) - np.concatenate([[0], np.cumsum(order)])
  assert auc == pytest.approx(np.trapezoid(curve, dx=1 / 8), abs=1e-5)
  # The true order deletes fastest: a reversed map has a larger area.
  worse = E.deletion_curve(fn, x, -w[None], target=0, n_steps=8, softmax=False)
  assert float(E.area_under_curve(worse)[0]) > auc + 1
  # Chunked steps, probabilities: the same curve through softmax.
  chunked = E.deletion_curve(fn, x, w[None], target=0, n_steps=8, internal_batch_size=3)
  np.testing.assert_allclose(chunked.scores[0], jax.nn.sigmoid(deletion.scores[0]), rtol=1e-5)


def test_pixel_maps_remove_whole_pixels():
  x = jnp.ones((1, 2, 2, 3))
  fn = lambda v: jnp.stack([v.sum((1, 2, 3)), jnp.zeros(len(v))], 1)
  pixel = jnp.array([[[4.0, 3.0], [2.0, 1.0]]])
  curve = E.deletion_curve(fn, x, pixel, target=0, n_steps=4, softmax=False)
  np.testing.assert_allclose(curve.scores[0], [12, 9, 6, 3, 0])
  entries = E.deletion_curve(fn, x, jnp.ones((1, 2, 2, 3)), target=0, n_steps=4, softmax=False)
  np.testing.assert_allclose(entries.scores[0], [12, 9, 6, 3, 0])  # 3 entries a step


def test_faithfulness_correlation_of_exact_and_reversed_maps(key):
  """For an affine logit and baseline 0, gradient x input on a subset S is the
  score drop of S exactly: correlation 1 (and -1 for its negative); a
  constant map has no correlation (NaN)."""
  clf = affine()
  gxi = batched.gradient_x_input(clf, X, target=0)
  kw = {"target": 0, "n_perturb_samples": 30, "subset_size": 2}
  np.testing.assert_allclose(E.faithfulness_correlation(key, clf, X, gxi, **kw), 1.0,
                             atol=1e-5)
  np.testing.assert_allclose(E.faithfulness_correlation(key, clf, X, -gxi, **kw), -1.0,
                             atol=1e-5)
  assert np.isnan(E.faithfulness_correlation(key, clf, X, jnp.ones_like(X), **kw)).all()
  chunked = E.faithfulness_correlation(key, clf, X, gxi, max_examples_per_batch=10, **kw)
  np.testing.assert_allclose(chunked, 1.0, atol=1e-5)


# ---------------------------------------------------------------------------
# sanity checks


@pytest.fixture(scope="module")
def mlp():
  return models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1), num_classes=10,
                           hidden=[20, 10])


def test_layer_groups_follow_the_split_points(mlp):
  groups = E.layer_groups(mlp, (8, 8, 1))
  assert [g[0] for g in groups] == list(mlp.layers)
  masks = np.stack([g[1] for g in groups])
  assert (masks.sum(0) == 1).all()       # every weight array in exactly one layer
  assert (masks.sum(1) == 2).all()       # kernel and bias


def test_a_map_that_ignores_the_model_passes_no_randomisation_check(mlp):
  x = jax.random.uniform(jax.random.key(4), (3, 8, 8, 1))
  for cascading in (True, False):
    r = E.model_parameter_randomisation(jax.random.key(9), lambda m, v, t: v * 1.0, mlp, x,
                                        target="predicted", cascading=cascading)
    assert r.layers == ("logits", "dense_1", "dense_0")
    np.testing.assert_allclose(r.spearman, 1.0, atol=1e-6)
    np.testing.assert_allclose(r.ssim, 1.0, atol=1e-5)


def test_gradients_change_with_the_weights(mlp):
  """Cascading: the last step has every layer re-drawn, so its maps are the
  gradients of the fully re-initialised model; independent: the first layer
  alone."""
  x = jax.random.uniform(jax.random.key(4), (3, 8, 8, 1))
  key = jax.random.key(9)
  cascade = E.model_parameter_randomisation(key, saliency, mlp, x, target="predicted")
  assert float(cascade.spearman.mean()) < 0.6
  fresh = models.classifier(key, "mlp", input_shape=(8, 8, 1), num_classes=10, hidden=[20, 10])
  t = mlp.logits(x).argmax(-1)
  a = E.comparable_maps(batched.saliency(mlp, x, target=t))
  b = E.comparable_maps(batched.saliency(fresh, x, target=t))
  np.testing.assert_allclose(cascade.spearman[-1], E.spearman_rank_correlation(a, b),
                             rtol=1e-5)
  independent = E.model_parameter_randomisation(key, saliency, mlp, x, target="predicted",
                                                cascading=False)
  np.testing.assert_allclose(independent.spearman[0], cascade.spearman[0])  # the same step
  assert not np.allclose(independent.spearman[1], cascade.spearman[1])


def test_random_logit_draws_another_class(key):
  """A one-hot map at the target's position: similarity 1 only if the drawn
  class were the target, which it never is; a map that ignores the target
  keeps similarity 1."""
  clf = models.from_functions(lambda p, x: x.reshape(len(x), -1)[:, :10], {}, num_classes=10)
  x = jax.random.uniform(key, (20, 8, 8, 1))
  onehot = lambda m, v, t: jax.nn.one_hot(t, 64).reshape(v.shape)
  s = E.random_logit(key, onehot, clf, x, target="predicted", similarity="spearman")
  np.testing.assert_allclose(s, -1 / 63, atol=1e-6)
  same = E.random_logit(key, lambda m, v, t: v, clf, x, target="predicted")
  np.testing.assert_allclose(same, 1.0, atol=1e-5)


def test_spearman_and_ssim_match_scipy(key):
  a = jnp.round(jax.random.uniform(key, (3, 9, 10)) * 5)   # ties
  b = a + jax.random.normal(jax.random.key(5), a.shape)
  want = [scipy.stats.spearmanr(np.ravel(u), np.ravel(v))[0] for u, v in zip(a, b)]
  np.testing.assert_allclose(E.spearman_rank_correlation(a, b), want, rtol=1e-5)

  def skimage_ssim(u, v, r):   # skimage.metrics.structural_similarity's computation
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    f = lambda z: scipy.ndimage.uniform_filter(z, size=7, mode="reflect")
    cov = 49 / 48
    ux, uy = f(u), f(v)
    vx, vy, vxy = cov * (f(u * u) - ux * ux), cov * (f(v * v) - uy * uy), cov * (f(u * v) - ux * uy)
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s[3:-3, 3:-3].mean()

  want = [skimage_ssim(u, v, max(u.max(), v.max()) - min(u.min(), v.min()))
          for u, v in zip(np.asarray(a), np.asarray(b))]
  np.testing.assert_allclose(E.ssim(a, b), want, rtol=1e-4)
  np.testing.assert_allclose(E.ssim(a, a), 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------
# complexity and localisation


def test_gini_and_entropy_closed_forms(key):
  d = 16
  onehot = jnp.eye(d)[3][None]
  np.testing.assert_allclose(E.sparseness(onehot), 1 - 1 / d, rtol=1e-6)
  np.testing.assert_allclose(E.sparseness(jnp.full((1, d), -2.0)), 0.0, atol=1e-6)
  np.testing.assert_allclose(E.entropy(onehot), 0.0, atol=1e-7)
  np.testing.assert_allclose(E.entropy(jnp.full((1, d), 0.3)), np.log(d), rtol=1e-6)
  a = jax.random.normal(key, (4, 3, 5))
  v = np.sort(np.abs(np.asarray(a)).reshape(4, -1), 1)
  k = np.arange(1, 16)
  gini = ((2 * k - 15 - 1) * v).sum(1) / (15 * v.sum(1))
  np.testing.assert_allclose(E.sparseness(a), gini, rtol=1e-5)
  np.testing.assert_allclose(E.entropy(a), scipy.stats.entropy(v, axis=1), rtol=1e-5)
  assert np.isnan(E.sparseness(jnp.zeros((1, 4)))).all()


def test_localisation_of_hand_made_maps():
  a = jnp.array([[[0.1, 0.5, 0.0], [0.2, 0.9, 0.3]],
                 [[0.8, 0.1, 0.1], [0.0, 0.0, 0.0]]])            # (2, 2, 3)
  mask = jnp.array([[[False, True, False], [False, True, False]],
                    [[False, True, True], [False, False, False]]])
  np.testing.assert_allclose(E.relevance_mass_accuracy(a, mask), [1.4 / 2.0, 0.2 / 1.0],
                             rtol=1e-6)
  np.testing.assert_allclose(E.relevance_rank_accuracy(a, mask), [1.0, 0.5])  # top-2
  np.testing.assert_allclose(E.pointing_game(a, mask), [1.0, 0.0])
  empty = jnp.zeros_like(mask)
  assert np.isnan(E.pointing_game(a, empty)).all()
  assert np.isnan(E.relevance_mass_accuracy(a, empty)).all()
  # ties: any maximum inside is a hit
  tie = jnp.array([[1.0, 1.0, 0.0]])
  np.testing.assert_allclose(E.pointing_game(tie, jnp.array([[False, True, False]])), [1.0])
  # channels: a (N, H, W, 1) mask for (N, H, W, C) maps, an input mask for pixel maps
  img = jnp.broadcast_to(a[..., None], (2, 2, 3, 2))
  np.testing.assert_allclose(E.relevance_mass_accuracy(img, mask[..., None]),
                             E.relevance_mass_accuracy(a, mask), rtol=1e-6)
  np.testing.assert_allclose(
      E.relevance_mass_accuracy(a, jnp.broadcast_to(mask[..., None], (2, 2, 3, 2))),
      E.relevance_mass_accuracy(a, mask), rtol=1e-6)


@pytest.fixture(scope="module")
def decoy_models():
  """An MLP trained with cross-entropy on Decoy digits (the swatch encodes
  the label) and one trained with the RRR penalty on the swatch, 600 Adam
  steps of 64 images each (about 28 epochs), in one jitted scan."""
  train = data.load("decoy_digits", "train")
  x = jnp.asarray(data.to_float(train.x))
  y = jnp.asarray(train.y)
  ann = jnp.asarray(train.extras["annotation"], jnp.float32)
  rng = np.random.default_rng(0)
  idx = jnp.asarray(np.stack([rng.permutation(len(x))[:64] for _ in range(600)]))
  out = {}
  for name, loss in (("cross_entropy", losses.cross_entropy_loss),
                     ("rrr", losses.make_rrr_loss(1000.0 / 255 ** 2))):
    clf = models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1), num_classes=10,
                            hidden=[50, 30])
    opt = optax.adam(3e-3)
    step = training.make_train_step(loss, opt)
    state = training.create_train_state(jax.random.key(1), clf, opt)
    state = jax.jit(lambda s, step=step: jax.lax.scan(
        lambda s, i: (step(s, {"x": x[i], "y": y[i], "annotation": ann[i]})[0], None),
        s, idx)[0])(state)
    out[name] = state.classifier
  return out


def test_decoy_swatch_holds_the_decoy_models_gradients_not_the_rrr_models(decoy_models):
  test = data.load("decoy_digits", "test")
  x, mask = data.to_float(test.x), test.extras["annotation"]
  share = float(mask.mean())           # the swatch's share of the pixels (4 / 64)
  scores = {}
  for name, clf in decoy_models.items():
    g = jnp.abs(batched.saliency(clf, x, target="predicted"))
    scores[name] = (float(jnp.nanmean(E.relevance_mass_accuracy(g, mask))),
                    float(jnp.nanmean(E.relevance_rank_accuracy(g, mask))),
                    float(jnp.nanmean(E.pointing_game(g, mask))))
  ce, rrr = scores["cross_entropy"], scores["rrr"]
  assert ce[0] > share, scores         # more gradient mass on the swatch than its area
  assert rrr[0] < 0.2 * share, scores  # the RRR model's gradients avoid it
  assert ce[1] > 5 * rrr[1] and ce[2] > 5 * rrr[2] + 0.02, scores


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("call, error, match", [
    (lambda k: E.infidelity(None, affine(), E.gaussian_perturb_func(), X, X, target=0),
     TypeError, "key must be a PRNG key"),
    (lambda k: E.infidelity(k, affine(), E.gaussian_perturb_func(), X, X[:, :3], target=0),
     ValueError, r"attributions must have shape \(4, 6\)"),
    (lambda k: E.infidelity(k, affine(), E.gaussian_perturb_func(), X, X, target=None),
     ValueError, "target=None needs a model that returns one score"),
    (lambda k: E.sensitivity_max(k, saliency, affine(), X, target=0, norm_ord=3),
     ValueError, "norm_ord must be one of"),
    (lambda k: E.sensitivity_max(k, saliency, affine(), X, target=0, n_perturb_samples=0),
     ValueError, "n_perturb_samples must be a positive integer"),
    (lambda k: E.faithfulness_correlation(k, affine(), X, X, target=0, subset_size=6),
     ValueError, r"subset_size must be less than the number of features \(6\)"),
    (lambda k: E.deletion_curve(affine(), (X, X), X, target=0),
     ValueError, "inputs must be one array"),
    (lambda k: E.pointing_game(X, jnp.full_like(X, 0.5)),
     ValueError, "mask must be boolean"),
    (lambda k: E.ssim(X, X), ValueError, r"\(N, H, W\) maps"),
    (lambda k: E.model_parameter_randomisation(k, saliency, lambda v: v, X, target=0),
     TypeError, "model must be a models.Classifier"),
])
def test_bad_input_is_named(call, error, match, key):
  with pytest.raises(error, match=match):
    call(key)


# ---------------------------------------------------------------------------
# the results page (experiments/attribution_evaluation)


def _page_maker():
  import os
  import sys
  root = os.path.join(os.path.dirname(__file__), "..")
  import importlib.util
  folder = os.path.join(root, "experiments", "attribution_evaluation")
  sys.path.insert(0, folder)  # for its own imports of sibling modules
  try:
    # By path under its own name: other experiments have a make_page.py too.
    spec = importlib.util.spec_from_file_location(
        "attribution_evaluation_make_page", os.path.join(folder, "make_page.py"))
    make_page = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_page)
  finally:
    sys.path.pop(0)
  return make_page, root


def test_results_page_is_what_its_committed_outputs_give():
  """Every number and sentence of attribution_evaluation.md is written by
  make_page.py from the committed results: an edit by hand, or a rerun
  without the page, fails."""
  import subprocess
  import sys
  _, root = _page_maker()
  r = subprocess.run([sys.executable, "experiments/attribution_evaluation/make_page.py",
                      "--check"], cwd=root, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stdout + r.stderr


def test_results_page_sentences_follow_the_numbers():
  """The best method and its ties come from paired intervals: a method whose
  per-image difference from the best straddles 0 is "no detectable
  difference"; one consistently worse is not tied; the sanity verdicts are
  the table's; the decoy is localised only when the relevance mass beats
  both a uniform map and the RRR model's."""
  from explicable_jax.app.audit import faithfulness as F
  page, _ = _page_maker()

  def row(values, passes=True, metric="deletion AUC"):
    return {"passes": passes, "per_image": {metric: values},
            "intervals": {metric: F.interval(values)}}

  best = [0.10, 0.20, 0.30, 0.20, 0.15]
  res = {"threshold": 0.5, "methods": {
      "a": row(best), "tied": row([0.12, 0.18, 0.31, 0.21, 0.14]),
      "worse": row([v + 0.2 for v in best], passes=False),
      F.RANDOM: row([0.6, 0.7, 0.5, 0.6, 0.65], passes=False)}}
  s = page.best_sentence("model", res, "deletion AUC")
  assert "the best on the model is a" in s
  assert "no detectable difference from it for tied (" in s and "worse" not in s.split(".")[0]
  assert "3 of 3 methods beat the random ranking" in s
  sanity = page.sanity_sentence("model", {"threshold": 0.5, "methods": {
      k: {**v, "intervals": {"randomisation": F.interval([0.9, 1.0])}}
      for k, v in res["methods"].items()}})
  assert "2 of 3 methods pass" in sanity and "worse fail" in sanity and "fails, as it must" in sanity

  def loc(decoy_mass, rrr_mass):
    one = lambda v: {"per_image": {"relevance mass": v, "pointing game": [0.0] * len(v)},
                     "intervals": {"relevance mass": F.interval(v),
                                   "pointing game": F.interval([0.0] * len(v))}}
    return ({"methods": {"m": one(decoy_mass), F.RANDOM: one([0.02] * len(decoy_mass))}},
            {"methods": {"m": one(rrr_mass), F.RANDOM: one([0.02] * len(rrr_mass))}})
  table, sentences = page.localisation_rows(*loc([0.3, 0.4, 0.35], [0.01, 0.02, 0.01]), 0.02)
  assert "| yes |" in table and "1 of 1 methods localise the decoy" in sentences[0]
  table, sentences = page.localisation_rows(*loc([0.3, 0.01, 0.2], [0.2, 0.3, 0.01]), 0.02)
  assert "| no detectable difference |" in table and "0 of 1 methods" in sentences[0]
