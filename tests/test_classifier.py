"""The one model contract on a user's own models: an NNX CNN, a linen CNN and
a plain-function model go through every method with no glue."""
import dataclasses
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from explicable_jax import (_batching, data, deliberative, losses,
                            models, mutation, robustness, rrr, training)
from explicable_jax.attribution import batched

SHAPE = (8, 8, 1)


class UserCNN(nnx.Module):
  """A user's NNX model: no num_classes attribute, no rngs keyword."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 8, (3, 3), rngs=rngs)
    self.bn = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
    self.conv2 = nnx.Conv(8, 16, (3, 3), rngs=rngs)
    self.drop = nnx.Dropout(0.1, rngs=rngs)
    self.out = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.bn(self.conv1(x)))
    x = nnx.relu(self.conv2(x))
    return self.out(self.drop(x.mean(axis=(1, 2))))


def _user_nnx():
  return models.from_nnx(UserCNN(nnx.Rngs(0)), layers=["conv1", "conv2", "out"],
                         input_shape=SHAPE)


def _user_linen():
  import flax.linen as nn

  class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
      x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(
          nn.Conv(8, (3, 3), name="conv1")(x)))
      x = nn.relu(nn.Conv(16, (3, 3), name="conv2")(x))
      return nn.Dense(10, name="head")(x.mean(axis=(1, 2)))

  module = LinenCNN()
  variables = module.init(jax.random.key(0), jnp.zeros((1, *SHAPE)))
  return models.from_linen(module, variables, layers=["conv1", "conv2"],
                           input_shape=SHAPE)


def _conv(p, x):
  return jax.lax.conv_general_dilated(x, p["kernel"], (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]


def _user_functions():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"conv1": {"kernel": 0.3 * jax.random.normal(k1, (3, 3, 1, 8)), "bias": jnp.zeros(8)},
            "conv2": {"kernel": 0.1 * jax.random.normal(k2, (3, 3, 8, 16)), "bias": jnp.zeros(16)},
            "head": {"kernel": 0.2 * jax.random.normal(k3, (16, 10)), "bias": jnp.zeros(10)}}

  def features1(p, x):
    return jax.nn.relu(_conv(p["conv1"], x))

  def head1(p, h):
    h = jax.nn.relu(_conv(p["conv2"], h)).mean(axis=(1, 2))
    return h @ p["head"]["kernel"] + p["head"]["bias"]

  def apply(p, x):
    return head1(p, features1(p, x))

  return models.from_functions(apply, params, splits={"conv1": (features1, head1)},
                               input_shape=SHAPE, num_classes=10)


MAKERS = {"nnx": _user_nnx, "linen": _user_linen, "functions": _user_functions}


@pytest.fixture(scope="module")
def digits():
  return data.load("digits", "train"), data.load("digits", "test")


@pytest.mark.parametrize("kind", list(MAKERS))
def test_every_method_runs_on_a_users_model(kind, digits, tmp_path):
  train, test = digits
  clf = MAKERS[kind]()
  assert clf.num_classes == 10
  # Train and evaluate.
  opt = optax.adam(1e-2)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  step = training.make_train_step(losses.cross_entropy_loss, opt)
  state, _ = training.fit(state, train, train_step=step, epochs=8, batch_size=64, progress=False)
  clf = state.classifier
  acc = training.evaluate(clf, test)["accuracy"]
  assert acc > 0.5, acc  # chance is 0.1
  logits = training.predict(clf, test.x[:50])
  np.testing.assert_allclose(logits, np.asarray(clf.logits(jnp.asarray(test.x[:50]))),
                             rtol=1e-4, atol=1e-4)
  x = jnp.asarray(test.x[:6])
  layer = clf.layers[0]
  # The split is the model.
  f, h = clf.split(layer)
  np.testing.assert_allclose(h(f(x)), clf.logits(x), rtol=1e-4, atol=1e-5)
  # Layer conductance at an inner layer: completeness (sum = F(x) - F(x')).
  # The trapezoid rule: along a path through ReLU kinks Gauss-Legendre nodes
  # converge slowly (on the trained linen model: a delta of 0.48 at 50 nodes,
  # 0.095 at 200, 0.019 at 1000, against 0.016 / 0.007 / 0.001 for the
  # trapezoid rule), which made this check depend on the trained weights.
  cond, delta = batched.layer_conductance(clf, x, layer=layer, target="predicted",
                                          n_steps=50, method="riemann_trapezoid",
                                          return_convergence_delta=True)
  assert cond.shape[0] == 6
  assert float(jnp.abs(delta).max()) < 0.05 * float(jnp.abs(cond.sum((1, 2, 3))).max() + 1e-3)
  cam = batched.grad_cam(clf, x, layer=layer, target=0)
  assert cam.shape == (6, 8, 8) and bool(jnp.all(cam >= 0))
  # Input IG: completeness against the model's own scores.
  t = batched.targets(clf, x, "predicted")
  ig, d = batched.integrated_gradients(clf, x, target=t, n_steps=64,
                                       method="riemann_trapezoid",  # as above: ReLU kinks
                                       return_convergence_delta=True)
  gap = (jnp.take_along_axis(clf.logits(x), t[:, None], 1)[:, 0]
         - jnp.take_along_axis(clf.logits(jnp.zeros_like(x)), t[:, None], 1)[:, 0])
  np.testing.assert_allclose(ig.reshape(6, -1).sum(1), gap, rtol=0.02, atol=0.02)
  np.testing.assert_allclose(d, ig.reshape(6, -1).sum(1) - gap, atol=1e-4)
  # LCR over NAI mutants: a mutant equal to the model changes nothing; NAI changes some.
  muts, _ = mutation.make_mutants(jax.random.key(2), clf, 4, "NAI", 0.3)
  lcr = mutation.label_change_rate(clf, muts, test.x[:100])
  same = jax.tree.map(lambda a: a[None], clf.params)
  np.testing.assert_array_equal(mutation.label_change_rate(clf, same, test.x[:100]), 0.0)
  assert lcr.shape == (100,) and 0 < lcr.mean() < 1
  x100 = jnp.asarray(test.x[:100])
  original = np.asarray(clf.logits(x100)).argmax(-1)
  want = np.mean([np.asarray(clf.with_params(jax.tree.map(lambda a: a[i], muts)).logits(
      x100)).argmax(-1) != original for i in range(4)], 0)
  np.testing.assert_allclose(lcr, want)
  # An RRR fine-tune (left half annotated) against the same fine-tune with
  # lambda = 0: the penalised input gradients must shrink.
  mask = np.zeros((len(train), *SHAPE), bool)
  mask[:, :, :4] = True
  annotated = dataclasses.replace(train, extras={"annotation": mask})

  def annotated_gradient_mass(lam):
    o = optax.adam(3e-3)
    st = training.create_train_state(jax.random.key(3), clf, o)
    st, _ = training.fit(st, annotated, epochs=2, batch_size=64, progress=False,
                      train_step=training.make_train_step(losses.make_rrr_loss(lam), o))
    g = rrr.model_input_gradients(st.classifier, train.x[:200])
    return float((g[:, :, :4] ** 2).sum())

  assert annotated_gradient_mass(10.0) < 0.5 * annotated_gradient_mass(0.0)
  # Insecurities at the split layer.
  ins = deliberative.insecurities(*clf.split(layer), x, r=0.2)
  assert len(ins) == 6 and any(ins)
  assert all(item["mask"].shape == SHAPE[:2] and 0 < item["mask"].mean() < 1
             for image in ins for item in image)
  # FGSM through the classifier lowers accuracy.
  clean = robustness.accuracy_under(clf, test.x[:100], test.y[:100])
  adv = robustness.accuracy_under(
      clf, test.x[:100], test.y[:100], key=jax.random.key(0),
      perturb=lambda k, xb, yb: robustness.fgsm(clf, xb, yb, 0.1))
  assert adv < clean
  # Save and load: into a template (no rebuild recipe for a user's object).
  models.save(tmp_path / "m", clf)
  with pytest.raises(ValueError, match="like="):
    models.load(tmp_path / "m")
  again = models.load(tmp_path / "m", like=MAKERS[kind]())
  np.testing.assert_allclose(again.logits(x), clf.logits(x), rtol=1e-6)


def test_a_split_bypassed_by_a_skip_connection_is_rejected():
  class Skip(nnx.Module):
    def __init__(self, rngs):
      self.a = nnx.Linear(4, 4, rngs=rngs)
      self.b = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
      return self.b(self.a(x) + x)

  clf = models.from_nnx(Skip(nnx.Rngs(0)), layers=["a", "b"], input_shape=(4,))
  with pytest.raises(ValueError, match="skip connection"):
    clf.split("a")
  f, h = clf.split("b")  # the last layer is a clean cut
  x = jnp.ones((2, 4))
  np.testing.assert_allclose(h(f(x)), clf.logits(x))
  with pytest.raises(ValueError, match="layer must be one of a, b"):
    clf.split("c")
  with pytest.raises(ValueError, match="no sub-module"):
    models.from_nnx(Skip(nnx.Rngs(0)), layers=["zz"])


def test_stage_functions_split_an_nnx_model():
  m = UserCNN(nnx.Rngs(0))
  stages = [("conv1", lambda m, x: nnx.relu(m.bn(m.conv1(x)))),
            ("conv2", lambda m, x: nnx.relu(m.conv2(x)).mean(axis=(1, 2))),
            ("out", lambda m, x: m.out(m.drop(x)))]
  clf = models.from_nnx(m, layers=stages)
  x = jax.random.uniform(jax.random.key(0), (3, *SHAPE))
  m.eval()
  np.testing.assert_allclose(clf.logits(x), m(x), rtol=1e-5, atol=1e-6)
  f, h = clf.split("conv2")
  assert f(x).shape == (3, 16)
  np.testing.assert_allclose(h(f(x)), m(x), rtol=1e-5, atol=1e-6)


def test_classifier_crosses_jit_and_mutants_do_not_recompile():
  clf = _user_functions()
  traces = []

  @jax.jit
  def f(c, x):
    traces.append(1)
    return c.logits(x)

  x = jnp.ones((2, *SHAPE))
  f(clf, x)
  f(clf.with_params(jax.tree.map(lambda a: a * 2, clf.params)), x)
  assert len(traces) == 1


def test_evaluate_and_predict_compile_once_for_repeated_calls(digits):
  _, test = digits
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=test.input_shape, num_classes=10)
  training.evaluate(clf, test, batch_size=100)
  training.predict(clf, test.x, batch_size=100)
  before = (training.eval_batch.__wrapped__._cache_size(), training.logits_batch._cache_size())
  other = clf.with_params(jax.tree.map(lambda a: a * 0.5, clf.params))
  for c in (clf, other, clf):
    training.evaluate(c, test, batch_size=100)
    training.predict(c, test.x, batch_size=100)
  assert (training.eval_batch.__wrapped__._cache_size(), training.logits_batch._cache_size()) == before


def test_zoo_classifier_saves_and_rebuilds_by_name(tmp_path):
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=SHAPE, num_classes=10,
                          class_names=[str(i) for i in range(10)], widths=(4,))
  models.save(tmp_path / "m", clf)
  again = models.load(tmp_path / "m")
  assert again.class_names == clf.class_names and again.layers == clf.layers
  x = jnp.ones((2, *SHAPE))
  np.testing.assert_allclose(again.logits(x), clf.logits(x))
  # One rule for "a model folder" everywhere: the saved folder itself or a
  # train workdir holding it in model/; anything else names the argument.
  models.save(tmp_path / "workdir" / "model", clf)
  saved = str((tmp_path / "workdir" / "model").resolve())
  assert models.model_folder(tmp_path / "workdir") == saved
  assert models.model_folder(tmp_path / "workdir" / "model") == saved
  with pytest.raises(FileNotFoundError, match=r"init_from '.*empty' is neither a train workdir"):
    models.model_folder(tmp_path / "empty", name="init_from")


def test_register_model_rejects_a_taken_name_and_rebuilds_a_users_model(tmp_path):
  with pytest.raises(ValueError, match="already a registered model"):
    models.register_model("cnn", lambda *a, **k: None)

  def build(input_shape, num_classes, rngs):  # rngs holds one stream, "params"
    return UserCNN(nnx.Rngs(rngs.params()))

  models.register_model("user_cnn_test", build, overwrite=True)
  clf = models.classifier(jax.random.key(0), "user_cnn_test", input_shape=SHAPE, num_classes=10)
  models.save(tmp_path / "u", clf)
  again = models.load(tmp_path / "u")
  x = jnp.ones((2, *SHAPE))
  np.testing.assert_allclose(again.logits(x), clf.logits(x))
  del models.MODELS["user_cnn_test"]
  with pytest.raises(ValueError, match="register_model"):
    models.load(tmp_path / "u")


def test_map_batches_pads_and_slices():
  fn = jax.jit(lambda a, x: x * a)
  x = np.arange(23, dtype=np.float32).reshape(23, 1)
  out = _batching.map_batches(fn, [x], batch_size=5, args=(2.0,))
  np.testing.assert_array_equal(out, 2 * x)
  with pytest.raises(ValueError, match="same number of rows"):
    _batching.map_batches(fn, [x, x[:3]], batch_size=5)
  chex.assert_shape(_batching.map_batches(fn, [x[:3]], batch_size=5, args=(1.0,)), (3, 1))


def test_registries_reject_taken_names_and_unknown_options():
  from explicable_jax import losses
  with pytest.raises(ValueError, match="takes the options alpha; got unknown option alhpa"):
    losses.make_loss("label_smoothing", alhpa=0.5)
  with pytest.raises(ValueError, match="needs the option weights"):
    losses.make_loss("weighted")
  with pytest.raises(ValueError, match="valid losses are"):
    losses.make_loss("hinge")
  with pytest.raises(ValueError, match="already a registered loss"):
    losses.register_loss("rrr", lambda: None)
  with pytest.raises(ValueError, match="already a registered dataset"):
    data.register_dataset("digits", lambda *a, **k: None)
  # Label smoothing keeps its default; a loss built by name is the same function.
  logits = jnp.array([[2.0, 0.0, -1.0]])
  batch = {"y": jnp.array([0])}
  np.testing.assert_allclose(losses.make_loss("label_smoothing")(logits, batch),
                             losses.make_label_smoothing_loss(0.1)(logits, batch))


def test_no_module_writes_another_modules_registry():
  import pathlib
  import re
  root = pathlib.Path(__file__).resolve().parents[1] / "explicable_jax"
  owners = {"DATASETS": "data/__init__.py", "LOSSES": "losses.py", "MODELS": "models/registry.py"}
  for path in root.rglob("*.py"):
    text = path.read_text()
    for name, owner in owners.items():
      if re.search(rf"^{name}\[.*\]\s*=|^{name}\.update\(", text, re.M):
        assert str(path.relative_to(root)) == owner, (path, name)


def test_with_params_refuses_another_structure_naming_the_first_difference():
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=SHAPE, num_classes=10,
                          hidden=(8,))
  wider = models.classifier(jax.random.key(0), "mlp", input_shape=SHAPE, num_classes=10,
                            hidden=(16,))
  deeper = models.classifier(jax.random.key(0), "mlp", input_shape=SHAPE, num_classes=10,
                             hidden=(8, 8))
  with pytest.raises(ValueError, match=r"params\['hidden_layers'\]\[0\]\['bias'\].* model's "
                                       r"shape \(8,\); got \(16,\)"):
    clf.with_params(wider.params)
  with pytest.raises(ValueError, match=r"params must have the model's structure \(4 arrays\); "
                                       r"got 6 arrays.*\['hidden_layers'\]\[1\]"):
    clf.with_params(deeper.params)
  with pytest.raises(ValueError, match=r"params\['hidden_layers'\]\[0\]\['bias'\]"):
    clf.replace(params=wider.params)
  with pytest.raises(ValueError, match="params"):
    clf.logits_with(wider.params, np.zeros((1, *SHAPE), np.float32))
  # The same structure is taken, inside vmap too (a mutant has the model's shapes).
  doubled = clf.with_params(jax.tree.map(lambda a: 2 * a, clf.params))
  chex.assert_trees_all_close(doubled.params, jax.tree.map(lambda a: 2 * a, clf.params))
  stacked = jax.tree.map(lambda a: jnp.stack([a, a]), clf.params)
  x = np.zeros((1, *SHAPE), np.float32)
  out = jax.vmap(lambda p: clf.with_params(p).logits(x))(stacked)
  np.testing.assert_allclose(out[1], clf.logits(x), rtol=1e-6)


@pytest.mark.parametrize("hidden,widths", [(8, (8,)), ([8, 4], (8, 4)), ((), ())])
def test_mlp_hidden_takes_an_int_as_one_layer(hidden, widths):
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=SHAPE, num_classes=10,
                          hidden=hidden)
  assert tuple(layer.out_features for layer in clf.module().hidden_layers) == widths
  assert clf.logits(np.zeros((2, *SHAPE), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("name,option,value", [
    ("mlp", "hidden", "8"), ("mlp", "hidden", 8.0), ("mlp", "hidden", (8, 0)),
    ("mlp", "hidden", [[8]]), ("cnn", "widths", 0), ("cnn", "dense", (8,)),
    ("resnet", "widths", 16.5), ("mlp", "dropout_rate", 1.0)])
def test_zoo_widths_that_are_not_widths_are_refused(name, option, value):
  with pytest.raises(ValueError, match=rf"^{option} must .*got {re.escape(repr(value))}"):
    models.classifier(jax.random.key(0), name, input_shape=(8, 8, 3), num_classes=10,
                      **{option: value})


def test_the_contract_refuses_one_score_per_example_and_other_input_ranges():
  one = lambda p, x: x.reshape(x.shape[0], -1)[:, :1]
  with pytest.raises(ValueError, match=r"C >= 2; it returns shape \(2, 1\).*concatenate"):
    models.from_functions(one, {}, input_shape=SHAPE)
  two = lambda p, x: x.reshape(x.shape[0], -1)[:, :2]
  with pytest.raises(ValueError, match=r"input_range must be \(0, 1\).*or None.*got \(0, 255\)"):
    models.from_functions(two, {}, input_shape=SHAPE, input_range=(0, 255))
  assert models.from_functions(two, {}, input_shape=SHAPE, input_range=None).num_classes == 2


def test_a_split_head_names_the_activation_shape_and_training_mode_asks_for_a_key():
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=SHAPE, num_classes=10,
                          hidden=(8,), dropout_rate=0.5)
  features, head = clf.split("dense_0")
  x = np.zeros((2, *SHAPE), np.float32)
  np.testing.assert_allclose(head(features(x)), clf.logits(x), rtol=1e-6)
  with pytest.raises(ValueError, match=r"^h must be activations of layer 'dense_0', a batch "
                                       r"of shape \(N, 8\); got shape \(2, 16\)"):
    head(np.zeros((2, 16), np.float32))
  with pytest.raises(ValueError, match=r"train=True\) needs key="):
    clf.apply(x, train=True)
  assert clf.apply(x, train=True, key=jax.random.key(0))[0].shape == (2, 10)


def test_output_convention_checked_once_per_model_without_input_shape(monkeypatch):
  """A model adapted without ``input_shape`` has its first concrete output
  checked (logits, not probabilities), once: later calls do not pay again."""
  from explicable_jax import conventions
  calls = []
  real = conventions.check_logits
  monkeypatch.setattr(conventions, "check_logits",
                      lambda *a, **k: calls.append(a[0]) or real(*a, **k))
  w = jnp.arange(12.0).reshape(4, 3) / 10
  clf = models.from_functions(lambda p, x: x @ p, w)
  x = jnp.ones((5, 4))
  first = clf.logits(x)
  second = clf.logits(2 * x)
  assert calls == ["the model's output"]
  np.testing.assert_allclose(second, 2 * first, rtol=1e-6)
  # a model with probabilities is still refused at its first call
  soft = models.from_functions(lambda p, x: jax.nn.softmax(x @ p), w)
  with pytest.raises(ValueError, match="must hold logits"):
    soft.logits(x)
