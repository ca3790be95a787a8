"""Deliberative explanations: difficulty scores on known distributions, pairs on
a hand-made map, exact top-r thresholding, maps against the attribution suite."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from explicable_jax import attribution, deliberative, models


def test_difficulty_scores_on_known_distributions():
  c = 4
  uniform = jnp.zeros((1, c))
  certain = jnp.array([[100.0, 0.0, 0.0, 0.0]])
  half = jnp.log(jnp.array([[0.5, 0.5, 1e-30, 1e-30]]))
  np.testing.assert_allclose(deliberative.hesitancy(uniform), [1 - 1 / c], rtol=1e-6)
  np.testing.assert_allclose(deliberative.normalized_entropy(uniform), [1.0], rtol=1e-6)
  np.testing.assert_allclose(deliberative.hesitancy(certain), [0.0], atol=1e-6)
  np.testing.assert_allclose(deliberative.normalized_entropy(certain), [0.0], atol=1e-6)
  np.testing.assert_allclose(deliberative.hesitancy(half), [0.5], rtol=1e-6)
  np.testing.assert_allclose(deliberative.normalized_entropy(half), [np.log(2) / np.log(4)],
                             rtol=1e-5)


def test_class_ambiguities_on_a_hand_made_map():
  # K = 4 class maps over a 1x3 image; top-2 classes per location:
  # loc 0: {0, 1}; loc 1: {1, 2}; loc 2: {1, 2} again.
  maps = jnp.array([[[[5.0, 0.1, 0.2]],
                     [[4.0, 3.0, 9.0]],
                     [[0.0, 2.0, 8.0]],
                     [[1.0, 1.0, 1.0]]]])
  pairs = np.asarray(deliberative.class_ambiguities(maps, top=2))[0]
  assert {tuple(p) for p in np.argwhere(pairs)} == {(0, 1), (1, 2)}
  pairs3 = np.asarray(deliberative.class_ambiguities(maps, top=3))[0]
  # loc 0: {0, 1, 3}; loc 1: {1, 2, 3} (3 beats 0 there); loc 2: {1, 2, 3}.
  assert {tuple(p) for p in np.argwhere(pairs3)} == {(0, 1), (0, 3), (1, 3), (1, 2), (2, 3)}


@pytest.mark.parametrize("r", [0.1, 0.25, 0.5])
def test_top_fraction_mask_keeps_exactly_the_largest_fraction(r):
  maps = jax.random.normal(jax.random.key(0), (3, 2, 10, 10))
  mask = deliberative.top_fraction_mask(maps, r)
  k = round(r * 100)
  assert np.all(np.asarray(mask).reshape(6, -1).sum(1) == k)
  flat, m = np.asarray(maps).reshape(6, -1), np.asarray(mask).reshape(6, -1)
  for i in range(6):
    assert flat[i][m[i]].min() >= flat[i][~m[i]].max()


def _cnn():
  model = models.create_model(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=5,
                              widths=[6, 8], dense=12)
  g, p, s = models.split_model(model)
  return models.split_at(g, p, s, "conv_1"), jax.random.uniform(jax.random.key(1), (3, 8, 8, 1))


def test_gradient_maps_are_gradient_x_activation_summed_over_channels():
  (f, h), x = _cnn()
  classes, maps, dmap = deliberative.attribution_maps(f, h, x, top_k=3)
  want = attribution.layer_gradient_x_activation(f, h, x, target=classes[:, 1]).sum(-1)
  np.testing.assert_allclose(maps[:, 1], jnp.maximum(want, 1e-7), rtol=1e-5, atol=1e-7)
  logits = h(f(x))
  np.testing.assert_array_equal(classes[:, 0], jnp.argmax(logits, -1))
  # Difficulty map: activation times the positive part of the entropy's gradient.
  a = f(x)
  g = jax.grad(lambda v: deliberative.normalized_entropy(h(v)).sum())(a)
  np.testing.assert_allclose(dmap, (a * jax.nn.relu(g)).sum(-1), rtol=1e-5, atol=1e-8)


def test_gradient_hessian_maps_are_the_second_order_attribution():
  (f, h), x = _cnn()
  classes, maps, _ = deliberative.attribution_maps(f, h, x, top_k=2, method="gradient_hessian")
  want = attribution.second_order_attribution(f, h, x, target=classes[:, 0])
  np.testing.assert_allclose(maps[:, 0], jnp.maximum(want, 1e-7), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient_hessian"])
def test_difficulty_maps_sum_the_positive_channel_contributions(method):
  (f, h), x = _cnn()
  _, _, dmap = deliberative.attribution_maps(f, h, x, top_k=2, method=method)
  entropy_head = lambda v: deliberative.normalized_entropy(h(v))[:, None]  # noqa: E731
  zero = jnp.zeros(3, jnp.int32)
  if method == "integrated_gradients":
    per_c = attribution.layer_integrated_gradients(f, entropy_head, x, target=zero, n_steps=20)
  else:
    per_c = attribution.second_order_attribution(f, entropy_head, x, target=zero,
                                                 per_channel=True)
  assert float(per_c.min()) < 0, "the test needs negative contributions to clip"
  np.testing.assert_allclose(dmap, jax.nn.relu(per_c).sum(-1), rtol=1e-4, atol=1e-6)
  assert float(dmap.min()) >= 0


def test_insecurities_end_to_end():
  (f, h), x = _cnn()
  out = deliberative.insecurities(f, h, x, r=0.25, top_k=4, top=3)
  assert len(out) == 3
  for items in out:
    assert items, "at least one ambiguity per image"
    strengths = [d["strength"] for d in items]
    assert strengths == sorted(strengths, reverse=True)
    for d in items:
      assert d["mask"].shape == (8, 8) and d["mask"].sum() == 16
      assert d["class_a"] != d["class_b"]


@pytest.mark.parametrize("call, match", [
    (lambda f, h, x: deliberative.insecurities(f, h, x, top_k=9), "top_k must be between 2"),
    (lambda f, h, x: deliberative.insecurities(f, h, x, r=0.0), r"r must be a number in \(0, 1\)"),
    (lambda f, h, x: deliberative.insecurities(f, h, x, r=1.5), "r must be"),
    (lambda f, h, x: deliberative.insecurities(f, h, x[0]), "image batch \\(N, H, W, C\\)"),
    (lambda f, h, x: deliberative.class_ambiguities(jnp.ones((1, 3, 2, 2)), top=4),
     "top must be between 2"),
    (lambda f, h, x: deliberative.attribution_maps(f, h, x, difficulty="doubt"), "difficulty"),
])
def test_bad_input_is_named(call, match):
  (f, h), x = _cnn()
  with pytest.raises(ValueError, match=match):
    call(f, h, x)


def test_a_flat_layer_is_refused():
  model = models.create_model(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=5,
                              widths=[6], dense=12)
  g, p, s = models.split_model(model)
  f, h = models.split_at(g, p, s, "dense")
  with pytest.raises(ValueError, match=r"convolutional feature layer \(N, H, W, C\)"):
    deliberative.insecurities(f, h, jnp.zeros((2, 8, 8, 1)))


def test_hardness_loss_terms_and_their_gradients():
  import optax
  c = 3
  out = jnp.array([[2.0, 0.0, -1.0, 0.3], [0.0, 0.0, 0.0, -1.0]])
  y = jnp.array([0, 2])
  loss = deliberative.make_hardness_loss(c)
  total, aux = loss(out, {"y": y})
  z, s = deliberative.split_hardness_output(out, c)
  ce = optax.softmax_cross_entropy_with_integer_labels(z, y)
  bce = optax.sigmoid_binary_cross_entropy(out[:, c], 1 - jnp.exp(-ce))
  np.testing.assert_allclose(total, s * ce + bce, rtol=1e-6)
  # The class logits get only the weighted cross-entropy's gradient ...
  g = jax.grad(lambda o: loss(o, {"y": y})[0].sum())(out)
  gz = jax.grad(lambda zz: (jax.lax.stop_gradient(s) * optax.softmax_cross_entropy_with_integer_labels(zz, y)).sum())(z)
  np.testing.assert_allclose(g[:, :c], gz, rtol=1e-6)
  # ... and the hardness logit only the predictor's: sigmoid(h) - (1 - p_y).
  np.testing.assert_allclose(g[:, c], s - (1 - jnp.exp(-ce)), rtol=1e-5)


def test_hardness_predictor_learns_which_examples_are_hard():
  import optax
  from explicable_jax import training
  rng = np.random.default_rng(0)
  n = 2000
  x = rng.normal(size=(n, 2)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int32)
  # Near the boundary the class is hard; flip 30% of those labels.
  near = np.abs(x[:, 0]) < 0.3
  y[near & (rng.random(n) < 0.3)] ^= 1
  model = models.create_model(jax.random.key(0), "mlp", input_shape=(2,), num_classes=3,
                              hidden=(32,))
  opt = optax.adam(1e-2)
  state = training.create_train_state(jax.random.key(1), model, opt)
  step = jax.jit(training.make_train_step(deliberative.make_hardness_loss(2), opt))
  for _ in range(300):
    idx = rng.integers(0, n, 256)
    state, _ = step(state, {"x": jnp.asarray(x[idx]), "y": jnp.asarray(y[idx])})
  _, s = deliberative.split_hardness_output(state.apply(jnp.asarray(x))[0], 2)
  s = np.asarray(s)
  assert s[near].mean() > 2 * s[np.abs(x[:, 0]) > 1.5].mean()


def test_hardness_output_must_have_one_extra_column():
  with pytest.raises(ValueError, match="num_classes \\+ 1 = 4 columns"):
    deliberative.split_hardness_output(jnp.zeros((2, 3)), 3)


def test_score_insecurity_by_hand():
  mask = np.zeros((8, 8), bool)
  mask[:4, :4] = True                      # the top-left quarter
  centers = np.array([[1, 1], [2, 6], [6, 1], [-1, -1]])  # parts 0, 1, 2 present
  seg = np.full((8, 8), -1)
  seg[0:3, 0:3] = 0                        # part 0: 9 pixels, inside the mask
  seg[1:4, 5:8] = 1
  shared = np.array([True, True, False, True])  # part 3 shared but absent
  s = deliberative.score_insecurity(mask, shared, centers, seg)
  assert s["recall"] == 0.5                # part 0 in, part 1 out
  assert s["precision"] == 1.0             # the only part point inside is shared
  assert s["iou"] == pytest.approx(9 / (16 + 9))  # |M & S| = 9, |M | S| = 16 + 9
  assert deliberative.score_insecurity(mask, [False, False, True, False], centers) == {
      "recall": 0.0, "precision": 0.0}
  assert deliberative.score_insecurity(mask, [False, False, False, True], centers) is None


def test_random_region_has_the_area_asked():
  rng = np.random.default_rng(0)
  for area in (1, 7, 20, 64):
    m = deliberative.random_region(rng, (8, 8), area)
    assert m.sum() == area
  with pytest.raises(ValueError, match="area must be between 1 and 64"):
    deliberative.random_region(rng, (8, 8), 0)


def test_parts_dataset_ground_truth_matches_the_pixels():
  from explicable_jax.data import parts
  ds = parts.parts_dataset("train", n=50, seed=3)
  table = parts.class_part_table(seed=3)
  for i in range(50):
    c = ds.extras["part_centers"][i]
    seg = ds.extras["part_segments"][i]
    for s in range(len(parts.SLOT_CENTERS)):
      if c[s, 0] >= 0:
        assert table[ds.y[i], s] >= 0          # only the class's own parts appear
        assert (seg == s).sum() > 10
      else:
        assert (seg == s).sum() == 0
  a, b = 0, 1
  shared = parts.shared_parts(table, a, b)
  np.testing.assert_array_equal(shared, (table[a] == table[b]) & (table[a] >= 0))
  # Some class pairs share parts: the ground-truth ambiguities exist.
  assert any(parts.shared_parts(table, i, j).any() for i in range(10) for j in range(i + 1, 10))


def test_load_cub_parts_reads_the_original_format(tmp_path):
  from explicable_jax.data import parts
  (tmp_path / "parts").mkdir()
  (tmp_path / "images.txt").write_text("1 001.Black_footed_Albatross/a.jpg\n"
                                       "2 002.Laysan_Albatross/b.jpg\n")
  (tmp_path / "image_class_labels.txt").write_text("1 1\n2 2\n")
  rows = [f"{i} {p} {10 * p}.0 {p + 0.5} {int(p % 2)}" for i in (1, 2) for p in range(1, 16)]
  (tmp_path / "parts" / "part_locs.txt").write_text("\n".join(rows) + "\n")
  cub = parts.load_cub_parts(str(tmp_path))
  assert cub["labels"].tolist() == [0, 1]
  assert cub["paths"][1] == "002.Laysan_Albatross/b.jpg"
  np.testing.assert_allclose(cub["part_locs"][0, 2], [30.0, 3.5])
  assert cub["visible"][0].tolist() == [bool(p % 2) for p in range(1, 16)]
  with pytest.raises(FileNotFoundError, match="CUB_200_2011 folder"):
    parts.load_cub_parts(str(tmp_path / "missing"))


# --- The original's forms (peiwang062/Deliberative-explanation). -------------


def test_original_hardness_loss_by_hand():
  c = 3
  # Rows: right and sure; right but p_y < 0.55 (raised to the bonus); wrong;
  # wrong; a padding row that must not count in the class balance.
  out = jnp.array([[4.0, 0.0, 0.0, 0.5], [1.0, 0.8, 0.7, -1.0], [0.0, 2.0, 0.0, 0.2],
                   [0.0, 0.0, 3.0, 1.5], [9.0, 0.0, 0.0, 0.0]])
  y = jnp.array([0, 0, 0, 1, 1])
  mask = jnp.array([True, True, True, True, False])
  total, _ = deliberative.make_hardness_loss(c, predictor_loss="original", press=2.0)(
      out, {"y": y, "mask": mask})
  z, s = np.asarray(out[:, :c], np.float64), 1 / (1 + np.exp(-np.asarray(out[:, c], np.float64)))
  p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
  py = p[np.arange(5), y]
  right = z.argmax(1) == np.asarray(y)
  pa = np.where(right, np.maximum(py, 0.55), py)
  assert pa[1] == 0.55 and py[1] < 0.55
  real = np.asarray(mask)
  w1, w2 = (pa[real] < 0.5).mean(), (pa[real] > 0.5).mean()   # 2/4, 2/4
  omega = np.where(pa > 0.5, w1 / 2.0, w2 * 2.0) * 2.0
  want = s * -np.log(py) + omega * (1 - ((1 - pa) * s + (1 - s) * pa))
  np.testing.assert_allclose(np.asarray(total)[real], want[real], rtol=1e-5)
  # Linear in s: it pushes s up on the misclassified rows, down on the rest.
  g = jax.grad(lambda o: deliberative.make_hardness_loss(c, predictor_loss="original")(
      o, {"y": y, "mask": mask})[0][:4].sum())(out)
  assert np.all(np.asarray(g[:2, c]) > 0) and np.all(np.asarray(g[2:4, c]) < 0)


def test_input_space_integrated_gradients_are_the_originals_average():
  (f, h), x = _cnn()
  n = 50
  classes, maps, dmap = deliberative.attribution_maps(
      f, h, x, top_k=2, method="integrated_gradients", n_steps=n, ig_space="input")
  # The original's loop: 51 points from a black image, the layer gradient at
  # each, averaged, times a(x) - a(black).
  def layer_grad(xi, k):
    return jax.grad(lambda a: jnp.take_along_axis(h(a), k[:, None], -1).sum())(f(xi))
  black = jnp.zeros_like(x)
  mean_g = sum(layer_grad(black + (i / n) * (x - black), classes[:, 1]) for i in range(n + 1))
  mean_g = mean_g / (n + 1)
  want = ((f(x) - f(black)) * mean_g).sum(-1)
  np.testing.assert_allclose(maps[:, 1], jnp.maximum(want, 1e-7), rtol=1e-4, atol=1e-6)
  # The difficulty map clips each channel's contribution at 0 (the original
  # sets negative ones to 1e-100).
  ent = lambda a: deliberative.normalized_entropy(h(a)).sum()  # noqa: E731
  mean_d = sum(jax.grad(ent)(f(black + (i / n) * (x - black))) for i in range(n + 1)) / (n + 1)
  np.testing.assert_allclose(dmap, jax.nn.relu((f(x) - f(black)) * mean_d).sum(-1),
                             rtol=1e-4, atol=1e-6)


def test_absolute_second_order_acts_on_the_difficulty_map_only():
  (f, h), x = _cnn()
  # A difficulty whose quadratic term is negative here, so that |.| matters.
  score = lambda z: -deliberative.normalized_entropy(z)  # noqa: E731
  classes, maps, dmap = deliberative.attribution_maps(
      f, h, x, top_k=2, difficulty=score, method="gradient_hessian", second_order="absolute")
  _, grad_maps, _ = deliberative.attribution_maps(f, h, x, top_k=2, method="gradient")
  np.testing.assert_allclose(maps, grad_maps, rtol=1e-6)  # class maps: first order
  head = lambda v: score(h(v))[:, None]  # noqa: E731
  zero = jnp.zeros(3, jnp.int32)
  terms = attribution.second_order_attribution(f, head, x, target=zero, return_terms=True)
  a = f(x)
  g = jax.grad(lambda v: score(h(v)).sum())(a)
  want = (jax.nn.relu(g) * a).sum(-1) + jnp.abs(terms.second) / 2
  assert float(terms.second.max()) < 0, "the test needs a negative quadratic term"
  np.testing.assert_allclose(dmap, want, rtol=1e-4, atol=1e-7)


def test_with_a_piecewise_linear_head_gradient_hessian_class_maps_are_the_gradient_maps():
  # The CNN's head (dense -> ReLU -> logits) is piecewise linear in the
  # layer, so each class logit's Hessian is zero: equation 7's class maps
  # equal gradient x activation. The difficulty maps differ (entropy is not
  # linear in the logits).
  (f, h), x = _cnn()
  _, gh_maps, gh_d = deliberative.attribution_maps(f, h, x, top_k=3, method="gradient_hessian")
  _, g_maps, g_d = deliberative.attribution_maps(f, h, x, top_k=3, method="gradient")
  np.testing.assert_allclose(gh_maps, g_maps, rtol=1e-5, atol=1e-7)
  assert float(jnp.abs(gh_d - g_d).max()) > 1e-3 * float(jnp.abs(g_d).max())
