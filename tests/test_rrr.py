"""Right for the Right Reasons: the penalty against finite differences and a
hand-built model; training with it moves a model off an annotated decoy."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from explicable_jax import data, losses, models, training


def _mlp(seed=0, d=5, c=3):
  k1, k2 = jax.random.split(jax.random.key(seed))
  w1 = jax.random.normal(k1, (d, 7)) * 0.5
  w2 = jax.random.normal(k2, (7, c)) * 0.5

  def f(x):
    return jnp.tanh(x @ w1) @ w2
  return f


def _fd_grad(fn, x, eps=1e-5):
  """Central finite differences of a scalar fn of one example, float64."""
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = eps
    g[i] = (fn(x + e) - fn(x - e)) / (2 * eps)
  return g


@pytest.mark.parametrize("scale, classes", [("log", "sum"), ("linear", "max"),
                                            ("log", "true"), ("linear", "sum")])
def test_input_gradients_match_finite_differences(scale, classes):
  jax.config.update("jax_enable_x64", True)
  try:
    f = _mlp()
    x = np.asarray(jax.random.normal(jax.random.key(1), (4, 5)), np.float64)
    y = np.array([0, 2, 1, 1])
    got = losses.input_gradients(f, jnp.asarray(x), scale=scale, classes=classes,
                                 labels=y if classes == "true" else None)
    for i in range(4):
      def one(xi, i=i):
        logp = np.asarray(jax.nn.log_softmax(f(jnp.asarray(xi)[None]))[0])
        v = logp if scale == "log" else np.exp(logp)
        return v.sum() if classes == "sum" else (v.max() if classes == "max" else v[y[i]])
      np.testing.assert_allclose(got[i], _fd_grad(one, x[i]), rtol=1e-6, atol=1e-8)
  finally:
    jax.config.update("jax_enable_x64", False)


def test_penalty_is_the_squared_annotated_gradient():
  f = _mlp(2)
  x = jax.random.normal(jax.random.key(3), (6, 5))
  a = (jax.random.uniform(jax.random.key(4), (6, 5)) < 0.4).astype(jnp.float32)
  g = losses.input_gradients(f, x)
  pen = losses.input_gradient_penalty(f, x, a)
  np.testing.assert_allclose(pen, jnp.sum((a * g) ** 2, axis=1), rtol=1e-6)
  norm = losses.input_gradient_penalty(f, x, a, normalize=True)
  np.testing.assert_allclose(norm, pen / jnp.maximum(a.sum(1), 1), rtol=1e-6)
  np.testing.assert_allclose(losses.input_gradient_penalty(f, x, jnp.zeros_like(x)), 0.0)
  np.testing.assert_allclose(losses.certainty_penalty(f, x), jnp.sum(g ** 2, axis=1), rtol=1e-6)


def test_logits_and_log_probabilities_give_the_same_penalty():
  f = _mlp(5)
  x = jax.random.normal(jax.random.key(6), (3, 5))
  a = jnp.ones_like(x)
  logp_model = lambda x: jax.nn.log_softmax(f(x))  # noqa: E731
  np.testing.assert_allclose(losses.input_gradient_penalty(f, x, a),
                             losses.input_gradient_penalty(logp_model, x, a), rtol=1e-5)


def test_linear_model_penalty_closed_form():
  # log-softmax of a linear model: d/dx sum_k log p_k = sum_k (W_k - C * sum_j p_j W_j) ...
  # for two classes with W = [w, -w]: sum_k log p_k = log p0 + log p1 and
  # d/dx = (1 - 2 p0) * w - (1 - 2 p1) * w = 2 (p1 - p0) w.
  w = jnp.array([1.0, -2.0, 0.5])
  f = lambda x: jnp.stack([x @ w, -(x @ w)], -1)  # noqa: E731
  x = jnp.array([[0.3, 0.1, -0.2]])
  p = jax.nn.softmax(f(x))[0]
  want = 2 * (p[1] - p[0]) * w
  np.testing.assert_allclose(losses.input_gradients(f, x)[0], want, rtol=1e-5)


def test_rrr_training_moves_the_model_off_an_annotated_decoy():
  # Feature 0 is a perfect decoy in training (equals the label) and random at
  # test; feature 1 carries the label with noise. Annotating feature 0 must
  # push the model onto feature 1.
  rng = np.random.default_rng(0)
  n = 2000
  y = rng.integers(0, 2, n)
  real = y + 0.35 * rng.normal(size=n)
  x_train = np.stack([y * 2.0 - 1, real], 1).astype(np.float32)
  x_test = np.stack([rng.choice([-1.0, 1.0], n), real], 1).astype(np.float32)
  ann = np.zeros_like(x_train)
  ann[:, 0] = 1
  results = {}
  for lam in (0.0, 100.0):
    model = models.create_model(jax.random.key(0), "mlp", input_shape=(2,), num_classes=2,
                                hidden=(16,))
    opt = optax.adam(1e-2)
    state = training.create_train_state(jax.random.key(1), model, opt)
    step = jax.jit(training.make_train_step(losses.make_rrr_loss(lam), opt))
    for epoch in range(30):
      for i in range(0, n, 200):
        batch = {"x": jnp.asarray(x_train[i:i + 200]), "y": jnp.asarray(y[i:i + 200]),
                 "annotation": jnp.asarray(ann[i:i + 200])}
        state, m = step(state, batch)
    results[lam] = float(np.mean(training.predict(state, x_test).argmax(-1) == y))
    if lam:
      assert float(m["gradient_penalty"]) < 1e-2
  assert results[0.0] < 0.7, results     # the plain model follows the decoy
  assert results[100.0] > 0.85, results  # the penalised one reads the real feature


@pytest.mark.parametrize("call, match", [
    (lambda: losses.input_gradient_penalty(_mlp(), jnp.zeros((2, 5)), jnp.zeros((2, 4))),
     r"annotation must have the input's shape \(2, 5\)"),
    (lambda: losses.make_rrr_loss(-1.0), "lam must be a non-negative"),
    (lambda: losses.make_rrr_loss(float("nan")), "lam must be a non-negative"),
    (lambda: losses.input_gradients(_mlp(), jnp.zeros((2, 5)), classes="true"),
     "labels are required"),
    (lambda: losses.input_gradients(_mlp(), jnp.zeros((2, 5)), scale="exp"), "scale"),
    (lambda: losses.input_gradients(_mlp(), jnp.zeros((2, 5)), classes="true",
                                    labels=np.array([0, 13])),
     r"labels must lie in \[0, 3\) for 3 classes; got values from 0 to 13"),
    (lambda: losses.input_gradients(_mlp(), jnp.zeros((2, 5)), classes="max",
                                    labels=np.array([0, 1])),
     "labels are read only with classes='true'"),
])
def test_bad_input_is_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_toy_colors_obey_the_rules_and_annotate_them():
  from explicable_jax.data import rrr
  ds = rrr.toy_colors("train", n=3000, seed=1)
  r1, r2 = rrr.toy_colors_rules(ds.x)
  assert np.all(r1[ds.y == 0] & r2[ds.y == 0])
  assert np.all(~r1[ds.y == 1] & ~r2[ds.y == 1])
  assert 0.45 < ds.y.mean() < 0.55
  assert set(map(tuple, ds.x.reshape(-1, 3))) <= set(map(tuple, rrr.TOY_COLORS))
  np.testing.assert_array_equal(ds.extras["annotation"][0], rrr.toy_colors_rule_mask("corners"))
  other = rrr.toy_colors("train", n=3000, seed=1, rule="top_middle")
  np.testing.assert_array_equal(other.x, ds.x)  # same images, other annotation
  assert other.extras["annotation"][0, 0, 1:4].all() and other.extras["annotation"].sum() == 3000 * 9
  test = rrr.toy_colors("test", n=3000, seed=1)
  assert not np.array_equal(test.x, ds.x)


def test_rule_scores_of_hand_made_explanations():
  from explicable_jax.data import rrr
  g = np.zeros((2, 5, 5, 3))
  g[0, 0, 0, 1] = 1.0       # only a corner
  g[1, 0, 2, 0] = 1.0       # a top-middle pixel ...
  g[1, 2, 2, 2] = 0.9       # ... and the centre, also above 0.67 of the max
  s = rrr.toy_colors_rule_scores(g)
  assert s["rule1"] == pytest.approx(0.5)   # (1 + 0) / 2
  assert s["rule2"] == pytest.approx(0.25)  # (0 + 1/2) / 2
  np.testing.assert_array_equal(rrr.explanation_mask(np.array([[1.0, -0.7, 0.6]])),
                                [[True, True, False]])


def test_decoy_mnist_swatch_encodes_the_label_in_training_only():
  from explicable_jax.data import rrr
  train = rrr.decoy_mnist("train", seed=0)  # MNIST where available, else 8x8 digits
  ann = train.extras["annotation"]
  side = 4 if train.x.shape[1] == 28 else 2
  assert np.all(ann.reshape(len(ann), -1).sum(1) == side * side)
  shade = np.array([train.x[i][ann[i]].max() for i in range(200)])
  np.testing.assert_array_equal(shade, 255 - 25 * train.y[:200])
  test = rrr.decoy_mnist("test", seed=0)
  tann = test.extras["annotation"]
  tshade = np.array([test.x[i][tann[i]].max() for i in range(len(test))]).astype(float)
  assert abs(np.corrcoef(tshade, test.y)[0, 1]) < 0.1


def test_extras_follow_take_and_batches_with_padding():
  x = np.arange(10, dtype=np.float32)[:, None]
  # (Any side array: "annotation" itself must be a mask, data.MASK_EXTRAS.)
  ds = data.Dataset(x, np.arange(10) % 2, 2, ("a", "b"), extras={"weight": x * 10})
  sub = ds.take(np.array([3, 7]))
  np.testing.assert_array_equal(sub.extras["weight"][:, 0], [30, 70])
  last = list(data.batches(ds, 4))[-1]
  np.testing.assert_array_equal(last["weight"][:, 0], [80, 90, 80, 80])
  np.testing.assert_array_equal(last["mask"], [True, True, False, False])
  with pytest.raises(ValueError, match="one row per example"):
    data.Dataset(x, np.arange(10) % 2, 2, ("a", "b"), extras={"annotation": x[:3]})
  with pytest.raises(ValueError, match="may not be named 'mask'"):
    data.Dataset(x, np.arange(10) % 2, 2, ("a", "b"), extras={"mask": x})


def test_find_another_explanation_penalises_the_union_of_earlier_masks():
  from explicable_jax import rrr
  from explicable_jax.data import rrr as drrr
  train = drrr.toy_colors("train", n=4000, seed=0)
  test = drrr.toy_colors("test", n=1000, seed=0)
  found = rrr.find_another_explanation(
      jax.random.key(0), train, n_models=2, make_model=rrr.mlp_factory(train.input_shape, 2),
      optimizer=optax.adam(1e-3), lam=1000.0, epochs=20, batch_size=256, eval_ds=test)
  first, second = found
  assert first.eval_accuracy > 0.9                      # one rule is enough
  scores = drrr.toy_colors_rule_scores(rrr.model_input_gradients(first.state, test.x))
  assert max(scores.values()) > 0.8                      # and its explanation shows which
  assert not first.annotation.any()
  np.testing.assert_array_equal(second.annotation, first.mask)
  # The second model barely uses what the first one's explanation covered.
  g2 = rrr.model_input_gradients(second.state, train.x[:500])
  g1 = rrr.model_input_gradients(first.state, train.x[:500])
  m = first.mask[:500]
  assert np.abs(g2[m]).mean() < 0.05 * np.abs(g1[m]).mean()


def test_find_another_explanation_stops_on_an_empty_mask():
  from explicable_jax import rrr
  from explicable_jax.data import rrr as drrr
  train = drrr.toy_colors("train", n=256, seed=0)

  def constant_model(key):
    model = models.create_model(key, "mlp", input_shape=train.input_shape, num_classes=2,
                                hidden=(4,))
    g, p, s = models.split_model(model)
    return models.merge_model(g, jax.tree.map(jnp.zeros_like, p), s)
  with pytest.raises(ValueError, match="explanation mask is empty"):
    rrr.find_another_explanation(jax.random.key(0), train, n_models=2,
                                 make_model=constant_model, optimizer=optax.sgd(0.0),
                                 epochs=1, batch_size=128)


def test_newsgroups_tfidf_from_the_local_copy(shared_data):
  train = data.load("newsgroups", "train", data_dir=shared_data)
  test = data.load("newsgroups", "test", data_dir=shared_data)
  assert train.x.shape == (1079, len(train.feature_names)) and test.x.shape[0] == 717
  assert train.class_names == ("alt.atheism", "soc.religion.christian")
  norms = np.linalg.norm(train.x, axis=1)
  np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)  # TfidfVectorizer's l2 rows
  assert "god" in train.feature_names
  from sklearn.linear_model import LogisticRegression
  assert LogisticRegression(C=10, max_iter=500).fit(train.x, train.y).score(test.x, test.y) > 0.85


def test_certainty_loss_is_the_rrr_loss_with_every_feature_annotated():
  f = _mlp(7)
  x = jax.random.normal(jax.random.key(8), (4, 5))
  y = jnp.array([0, 1, 2, 0])
  logits = f(x)
  params = {"w": jnp.ones(3)}
  cert, aux = losses.make_certainty_loss(0.5, l2=0.1)(logits, {"x": x, "y": y}, params,
                                                       model_fn=f)
  rrr, _ = losses.make_rrr_loss(0.5, l2=0.1)(
      logits, {"x": x, "y": y, "annotation": jnp.ones_like(x)}, params, model_fn=f)
  np.testing.assert_allclose(cert, rrr, rtol=1e-6)
  want = losses.cross_entropy(logits, y) + 0.5 * losses.certainty_penalty(f, x) + 0.1 * 3
  np.testing.assert_allclose(cert, want, rtol=1e-5)
  with pytest.raises(ValueError, match="batch has no 'annotation' entry"):
    losses.make_rrr_loss(1.0)(logits, {"x": x, "y": y}, params, model_fn=f)


# --- The authors' protocol (dtak/rrr): options and their known answers. -----


@pytest.mark.parametrize("classes", ["max", "true"])
@pytest.mark.parametrize("scale", ["log", "linear"])
def test_input_gradients_stay_exact_when_the_model_is_sure(scale, classes):
  # A linear model z = x W with a logit gap of about 30 (p rounds to 1 in
  # float32). The exact gradient of log p_k is sum_{j != k} p_j (W_k - W_j),
  # computed here in float64 from the gaps; log_softmax's own derivative
  # would give -p_j W_j only (its k-th entry 1 - p_k rounds to 0).
  w = np.array([[3.0, -2.0, 0.5], [1.0, 4.0, -1.0], [-2.0, 0.5, 2.0], [0.3, -0.7, 1.1]])
  x = np.array([[6.0, 0.5, -1.0, 2.0], [0.2, 5.0, 0.1, -3.0]])
  labels = np.array([0, 1])
  g = np.asarray(losses.input_gradients(lambda v: v @ jnp.asarray(w, jnp.float32),
                                        jnp.asarray(x, jnp.float32), scale=scale,
                                        classes=classes,
                                        labels=jnp.asarray(labels) if classes == "true"
                                        else None))
  z = x @ w
  for n in range(2):
    k = int(np.argmax(z[n])) if classes == "max" else int(labels[n])
    gaps = z[n] - z[n, k]
    p = np.exp(gaps - np.logaddexp.reduce(gaps))
    want = sum(p[j] * (w[:, k] - w[:, j]) for j in range(3) if j != k)
    if scale == "linear":
      want = p[k] * want
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(g[n], want, rtol=1e-4, atol=1e-30)


def test_rrr_loss_with_lambda_zero_is_cross_entropy_plus_the_weight_penalty():
  f = _mlp()
  params = {"w": jnp.ones((2, 3)), "b": jnp.full((3,), 2.0)}  # ||theta||^2 = 6 + 12
  x = jax.random.normal(jax.random.key(0), (4, 5))
  batch = {"x": x, "y": jnp.array([0, 1, 2, 0]), "annotation": jnp.ones_like(x)}
  total, aux = losses.make_rrr_loss(0.0, l2=0.01)(f(x), batch, params, model_fn=f)
  np.testing.assert_allclose(total, losses.cross_entropy(f(x), batch["y"]) + 0.01 * 18.0,
                             rtol=1e-6)
  assert "gradient_penalty" not in aux  # no double backward pass was traced


def test_normal_init_draws_every_weight_and_bias_from_n_0_sigma():
  m = models.create_model(jax.random.key(0), "mlp", input_shape=(400,), num_classes=50,
                          hidden=(300,), init="normal", init_stddev=0.1)
  leaves = [m.hidden_layers[0].kernel[...], m.hidden_layers[0].bias[...],
            m.out.kernel[...], m.out.bias[...]]
  for v in leaves:
    v = np.asarray(v).ravel()
    # The sample standard deviation of n draws is within 5 standard errors.
    assert abs(v.std() - 0.1) < 5 * 0.1 / np.sqrt(2 * len(v)), (len(v), v.std())
    assert abs(v.mean()) < 5 * 0.1 / np.sqrt(len(v))
  he = models.create_model(jax.random.key(0), "mlp", input_shape=(400,), num_classes=50,
                           hidden=(300,))
  np.testing.assert_array_equal(he.hidden_layers[0].bias[...], 0.0)
  assert abs(float(he.hidden_layers[0].kernel[...].std()) - np.sqrt(2 / 400)) < 2e-3


def test_fit_without_shuffling_visits_fixed_slices_and_keeps_the_last_partial_one():
  # A model whose update records nothing but the step counter: with 10
  # examples, batch 4 and drop_remainder=False an epoch is 3 steps, and the
  # batches are the data set's own slices [0:4], [4:8], [8:10] + padding.
  seen = []

  def step(state, batch):
    jax.debug.callback(lambda y, m: seen.append((np.asarray(y).tolist(), np.asarray(m).tolist())),
                       batch["y"], batch["mask"], ordered=True)
    return state.replace(step=state.step + 1), {
        "finite": jnp.array(True), "loss": jnp.array(0.0), "accuracy": jnp.array(0.0)}
  ds = data.Dataset(np.zeros((10, 2), np.float32), np.arange(10) % 10, 10,
                    tuple("abcdefghij"))
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=(2,), num_classes=10,
                          hidden=(3,))
  state = training.create_train_state(jax.random.key(1), clf, optax.sgd(0.1))
  out, _ = training.fit(state, ds, train_step=step, epochs=2, batch_size=4, progress=False,
                     shuffle=False, drop_remainder=False, mesh=None)
  assert int(out.step) == 6
  ys = [y for y, _ in seen]
  assert ys[:3] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 8, 8]] and ys[3:] == ys[:3]
  assert seen[2][1] == [True, True, False, False]


def test_find_another_explanation_takes_one_lambda_per_model_and_the_mask_gradient():
  from explicable_jax import rrr
  from explicable_jax.data import rrr as drrr
  train = drrr.toy_colors("train", n=1024, seed=0)
  found = rrr.find_another_explanation(
      jax.random.key(0), train, n_models=2, make_model=rrr.mlp_factory(train.input_shape, 2),
      optimizer=optax.adam(1e-3), lam=(0.0, 5.0), epochs=3, batch_size=256,
      mask_scale="linear", mask_classes="max")
  assert [f.lam for f in found] == [0.0, 5.0]
  # The first model's mask is its own explanation from the gradient of the
  # largest probability, which the second one is penalised on.
  g = rrr.model_input_gradients(found[0].state, train.x, scale="linear", classes="max")
  np.testing.assert_array_equal(found[0].mask, rrr.explanation_mask(g, 0.67))
  np.testing.assert_array_equal(found[1].annotation, found[0].mask)


def test_newsgroups_vectoriser_options_follow_the_original(shared_data):
  from explicable_jax.data import rrr as drrr
  theirs = drrr.newsgroups("train", data_dir=shared_data, min_df=1, max_features=5000,
                           lowercase=False, sublinear_tf=False)
  assert theirs.x.shape[1] == len(theirs.feature_names) == 5000
  assert any(w != w.lower() for w in theirs.feature_names)  # case is kept
  ours = drrr.newsgroups("train", data_dir=shared_data)
  assert all(w == w.lower() for w in ours.feature_names)
