"""Attacks against closed forms on linear models; corruptions against their
definitions (CIFAR-10-C constants, colorsys for HSV, statistics for noise)."""
import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explicable_jax import robustness

H = W = 6


def _linear_model(seed=0, classes=4):
  w = jax.random.normal(jax.random.key(seed), (H * W * 3, classes))

  def logits_fn(x):
    return x.reshape(x.shape[0], -1) @ w
  return logits_fn, w


def _images(seed=0, n=5):
  return jax.random.uniform(jax.random.key(seed), (n, H, W, 3))


def _ce(logits_fn, x, y):
  z = logits_fn(x)
  return -jax.nn.log_softmax(z)[jnp.arange(len(y)), y]


def test_fgsm_is_the_sign_of_the_closed_form_gradient():
  f, w = _linear_model()
  x, y = _images(), jnp.array([0, 1, 2, 3, 0])
  p = jax.nn.softmax(f(x))
  grad = ((p - jax.nn.one_hot(y, 4)) @ w.T).reshape(x.shape)  # d CE / d x
  want = jnp.clip(x + 0.1 * jnp.sign(grad), 0, 1)
  np.testing.assert_allclose(robustness.fgsm(f, x, y, 0.1), want, atol=1e-6)
  # Without clipping, every pixel moves by exactly epsilon.
  adv = robustness.fgsm(f, x, y, 0.1, clip=None)
  np.testing.assert_allclose(jnp.abs(adv - x), 0.1, atol=1e-6)


def test_fgsm_raises_the_loss_of_a_linear_model():
  f, _ = _linear_model(1)
  x, y = _images(1), jnp.array([0, 1, 2, 3, 0])
  adv = robustness.fgsm(f, x, y, 0.05, clip=None)
  assert np.all(_ce(f, adv, y) > _ce(f, x, y))


def test_pgd_stays_in_the_ball_and_the_valid_range():
  f, _ = _linear_model(2)
  x, y = _images(2), jnp.array([3, 2, 1, 0, 1])
  adv = robustness.pgd(jax.random.key(0), f, x, y, 0.03, steps=5)
  assert float(jnp.max(jnp.abs(adv - x))) <= 0.03 + 1e-6
  assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_pgd_one_step_from_the_centre_is_fgsm():
  f, _ = _linear_model(3)
  x, y = _images(3), jnp.array([0, 0, 1, 1, 2])
  one = robustness.pgd(jax.random.key(0), f, x, y, 0.07, steps=1, step_size=0.07,
                       random_start=False)
  np.testing.assert_allclose(one, robustness.fgsm(f, x, y, 0.07), atol=1e-6)


def test_pgd_unrolled_and_looped_agree(monkeypatch):
  f, _ = _linear_model(4)
  x, y = _images(4), jnp.array([0, 1, 2, 3, 3])
  key = jax.random.key(7)
  unrolled = robustness.pgd(key, f, x, y, 0.05, steps=4)
  monkeypatch.setattr(robustness.attacks, "MAX_UNROLLED_STEPS", 0)
  robustness.attacks._pgd.clear_cache()
  looped = robustness.pgd(key, f, x, y, 0.05, steps=4)
  np.testing.assert_allclose(unrolled, looped, atol=1e-6)


def test_pgd_beats_the_clean_loss_and_matches_fgsm_at_least_on_average():
  f, _ = _linear_model(5)
  x, y = _images(5, n=40), jnp.arange(40) % 4
  adv = robustness.pgd(jax.random.key(1), f, x, y, 0.05, steps=10, clip=None)
  fg = robustness.fgsm(f, x, y, 0.05, clip=None)
  assert np.all(_ce(f, adv, y) > _ce(f, x, y))
  assert float(_ce(f, adv, y).mean()) >= float(_ce(f, fg, y).mean()) - 1e-4


def test_gaussian_noise_statistics_and_clip():
  x = jnp.full((8, 16, 16, 3), 0.5)
  y = robustness.gaussian_noise(jax.random.key(0), x, 0.2)
  assert abs(float((y - x).std()) - 0.2) < 0.01
  assert abs(float((y - x).mean())) < 0.01
  yc = robustness.gaussian_noise(jax.random.key(0), x, 0.2, clip=(0, 1))
  assert float(yc.min()) >= 0 and float(yc.max()) <= 1


@pytest.mark.parametrize("severity", [1, 5])
def test_corrupt_gaussian_noise_has_the_cifar10c_stddev(severity):
  x = jnp.full((8, 32, 32, 3), 0.5)
  y = robustness.corrupt(jax.random.key(1), x, "gaussian_noise", severity)
  c = robustness.CORRUPTION_CONSTANTS["gaussian_noise"][severity - 1]
  assert abs(float((y - x).std()) - c) < 0.05 * c


def test_corrupt_shot_noise_is_poisson():
  x = jnp.full((8, 32, 32, 3), 0.4)
  y = robustness.corrupt(jax.random.key(2), x, "shot_noise", 5)  # c = 50 photons
  assert abs(float(y.mean()) - 0.4) < 0.005
  assert abs(float(y.var()) - 0.4 / 50) < 0.0005  # Var[Poisson(cx)/c] = x / c


def test_defocus_kernel_is_a_normalised_symmetric_disk():
  for radius, alias in robustness.CORRUPTION_CONSTANTS["defocus_blur"]:
    k = robustness.defocus_kernel(radius, alias)
    assert k.shape == (17, 17)
    assert abs(k.sum() - 1) < 1e-6
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1], atol=1e-7)
  # Radius 1 without anti-aliasing blur would be the 5-pixel cross; the
  # 3x3 Gaussian spreads it but keeps the centre the largest weight.
  k = robustness.defocus_kernel(1, 0.2)
  assert k[8, 8] == k.max()


def test_defocus_blur_keeps_constants_and_matches_a_direct_correlation():
  x = jnp.full((1, 32, 32, 3), 0.3)
  np.testing.assert_allclose(
      robustness.corrupt(jax.random.key(0), x, "defocus_blur", 5), x, atol=1e-6)
  img = np.asarray(_images(9, n=1)) * 0.9
  img = np.pad(img, ((0, 0), (5, 5), (5, 5), (0, 0)), mode="edge")[:, :16, :16]
  k = robustness.defocus_kernel(1.5, 0.1)
  padded = np.pad(img, ((0, 0), (8, 8), (8, 8), (0, 0)), mode="reflect")
  want = np.zeros_like(img)
  for i in range(17):
    for j in range(17):
      want += k[i, j] * padded[:, i:i + 16, j:j + 16]
  got = robustness.corrupt(jax.random.key(0), img, "defocus_blur", 5)
  np.testing.assert_allclose(got, np.clip(want, 0, 1), atol=1e-5)


def test_contrast_scales_deviations_around_the_channel_means():
  x = _images(6, n=2) * 0.8 + 0.1
  y = robustness.corrupt(jax.random.key(0), x, "contrast", 2)  # c = 0.5
  m = x.mean(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(y - m, 0.5 * (x - m), atol=1e-6)


def test_brightness_matches_a_colorsys_hsv_round_trip():
  x = np.array(_images(7, n=2))
  x[0, 0, 0] = 0.0  # a black pixel becomes grey
  c = robustness.CORRUPTION_CONSTANTS["brightness"][4]
  want = np.empty_like(x)
  for idx in np.ndindex(x.shape[:3]):
    h, s, v = colorsys.rgb_to_hsv(*x[idx])
    want[idx] = colorsys.hsv_to_rgb(h, s, min(v + c, 1.0))
  got = robustness.corrupt(jax.random.key(0), x, "brightness", 5)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_jpeg_loses_more_at_lower_quality_and_stays_in_range():
  x = np.asarray(_images(8, n=4))
  errs = [float(jnp.abs(robustness.corrupt(jax.random.key(0), x, "jpeg_compression", s)
                        - x).mean()) for s in (1, 5)]
  assert errs[0] < errs[1]
  y = robustness.corrupt(jax.random.key(0), x, "jpeg_compression", 3)
  assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def test_every_corruption_moves_further_from_clean_with_severity():
  # Smooth images (JPEG and blur barely touch pixel noise at low severity).
  base = jax.image.resize(_images(10, n=4), (4, 32, 32, 3), "linear") * 0.8 + 0.1
  for name in robustness.CORRUPTIONS:
    d = [float(jnp.abs(robustness.corrupt(jax.random.key(3), base, name, s) - base).mean())
         for s in (1, 5)]
    assert d[0] < d[1], name


def test_corruption_suite_yields_every_pair_with_its_own_noise():
  x = jnp.full((2, 8, 8, 3), 0.5)
  out = list(robustness.corruption_suite(jax.random.key(0), x,
                                         corruptions=("gaussian_noise",),
                                         severities=(1, 2)))
  assert [(n, s) for n, s, _ in out] == [("gaussian_noise", 1), ("gaussian_noise", 2)]
  a, b = out[0][2] - x, out[1][2] - x
  assert float(jnp.abs(a / 0.04 - b / 0.06).max()) > 0.1  # different keys


def test_accuracy_under_noise_is_split_independent_and_per_example():
  # Noise (unlike FGSM) uses the key: the result must not depend on the batch
  # size, and must equal example i perturbed alone with fold_in(key, i).
  f, _ = _linear_model(11)
  x = _images(11, n=12)
  y = jnp.argmax(f(x), -1)
  assert robustness.accuracy_under(f, x, y) == 1.0
  noise = lambda k, xb, yb: robustness.gaussian_noise(k, xb, 0.5)
  key = jax.random.key(3)
  a = robustness.accuracy_under(f, x, y, perturb=noise, key=key, batch_size=5)
  b = robustness.accuracy_under(f, x, y, perturb=noise, key=key, batch_size=12)
  by_hand = np.mean([int(jnp.argmax(f(noise(jax.random.fold_in(key, i), x[i:i + 1], None)), -1)[0])
                     == int(y[i]) for i in range(12)])
  assert a == b == by_hand < 1.0
  attack = lambda k, xb, yb: robustness.fgsm(f, xb, yb, 0.2)
  assert robustness.accuracy_under(f, x, y, perturb=attack, key=key, batch_size=5) < 1.0


def test_a_corruption_gets_the_same_noise_whatever_else_is_asked_for():
  x = _images(2, n=3)
  alone = list(robustness.corruption_suite(jax.random.key(0), x, corruptions=("shot_noise",),
                                           severities=(2,)))
  with_others = list(robustness.corruption_suite(
      jax.random.key(0), x, corruptions=("gaussian_noise", "shot_noise"), severities=(2,)))
  np.testing.assert_array_equal(alone[0][2], with_others[1][2])


@pytest.mark.parametrize("call, match", [
    (lambda: robustness.corrupt(jax.random.key(0), jnp.zeros((1, 4, 4, 3)), "fog", 1),
     "corruption must be one of"),
    (lambda: robustness.corrupt(jax.random.key(0), jnp.zeros((1, 4, 4, 3)), "contrast", 6),
     "severity must be one of"),
    (lambda: robustness.corrupt(jax.random.key(0), jnp.zeros((4, 4, 3)), "contrast", 1),
     "rank 4|image batch"),
    (lambda: robustness.fgsm(lambda x: x, jnp.zeros((2, 4, 4, 3)), jnp.zeros(3, int), 0.1),
     r"labels must have shape \(2,\)|one row per example"),
    (lambda: robustness.fgsm(lambda x: x, jnp.zeros((2, 4, 4, 3)), jnp.zeros(2, int), -0.1),
     "epsilon must be a non-negative"),
    (lambda: robustness.fgsm(lambda x: x, jnp.zeros((2, 4, 4, 3)), jnp.zeros(2, int), 0.1,
                             clip=(1, 0)), "low < high"),
    (lambda: robustness.pgd(jax.random.key(0), lambda x: x, jnp.zeros((2, 4, 4, 3)),
                            jnp.zeros(2, int), 0.1, steps=0), "steps must be a positive"),
    (lambda: robustness.accuracy_under(lambda x: x, jnp.zeros((2, 4, 4, 3)),
                                       jnp.zeros(2, int), perturb=lambda k, x, y: x),
     "key is required"),
])
def test_bad_input_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()
