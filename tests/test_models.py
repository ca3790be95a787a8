import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from explicable_jax import models

SMALL = [
    ("mlp", (8, 8, 1), {"hidden": (16, 8)}),
    ("mlp", (8, 8, 1), {"hidden": (16,), "dropout_rate": 0.5}),
    ("cnn", (8, 8, 1), {"widths": (4, 8), "dense": 8}),
    ("cnn", (7, 9, 1), {"widths": (4, 8), "dense": 8, "pool": "flatten"}),
    ("resnet", (16, 16, 3), {"depth": 8}),
    ("resnet", (16, 16, 3), {"depth": 8, "shortcut": "B"}),
    ("resnet_v2", (16, 16, 3), {"depth": 11}),
    ("vgg16_bn", (32, 32, 3), {"blocks": ((8,), (8,), (8,), (8,), (8,))}),
]


@pytest.mark.parametrize("name,shape,kw", SMALL)
def test_features_then_head_is_the_model_at_every_layer(name, shape, kw, key):
  model = models.create_model(key, name, input_shape=shape, num_classes=5, **kw)
  graphdef, params, state = models.split_model(model)
  x = jax.random.uniform(jax.random.key(1), (3, *shape))
  logits, _ = models.apply_model(graphdef, params, state, x)
  assert logits.shape == (3, 5)
  for layer in model.layer_names:
    features_fn, head_fn = models.split_at(graphdef, params, state, layer)
    np.testing.assert_allclose(head_fn(features_fn(x)), logits, rtol=1e-5, atol=1e-5)


def _count(model, kind):
  return sum(1 for _, m in nnx.iter_modules(model) if isinstance(m, kind))


def test_resnet20_has_the_papers_shape(key):
  model = models.create_model(key, "resnet20", input_shape=(32, 32, 3), num_classes=10)
  # He et al. (2016), table 6: 19 conv layers + 1 FC, 0.27M parameters.
  assert _count(model, nnx.Conv) == 19
  assert models.count_params(nnx.state(model, nnx.Param)) == 269_722
  assert "layer3.2" in model.layer_names
  h = model.features(jnp.zeros((2, 32, 32, 3)), "layer3.2")
  assert h.shape == (2, 8, 8, 64)


def test_resnet29_v2_follows_keras_cifar10_resnet_v2(key):
  model = models.create_model(key, "resnet29_v2", input_shape=(32, 32, 3), num_classes=10)
  # 1 stem conv + 9 bottleneck units x 3 convs + 3 projection shortcuts.
  assert _count(model, nnx.Conv) == 1 + 27 + 3
  h = model.features(jnp.zeros((2, 32, 32, 3)), "stage3.2")
  assert h.shape == (2, 8, 8, 256)


def test_vgg16_bn_has_thirteen_conv_bn_layers(key):
  model = models.create_model(key, "vgg16_bn", input_shape=(32, 32, 3), num_classes=10)
  assert _count(model, nnx.Conv) == 13
  assert _count(model, nnx.BatchNorm) == 13
  assert model.features(jnp.zeros((1, 32, 32, 3)), "block5").shape == (1, 1, 1, 512)


def test_option_a_shortcut_is_subsampled_zero_padded_identity(key):
  block = models.BasicBlock(4, 8, 2, "A", rngs=nnx.Rngs(0))
  # Zero the residual branch: the block is then relu(shortcut(x)).
  block.bn2.scale[...] = jnp.zeros_like(block.bn2.scale[...])
  block.eval()
  x = jax.random.uniform(key, (1, 6, 6, 4))
  out = block(x)
  expected = np.zeros((1, 3, 3, 8), np.float32)
  expected[..., 2:6] = np.asarray(x)[:, ::2, ::2, :]
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_train_mode_updates_batch_stats_and_eval_mode_does_not(key):
  model = models.create_model(key, "resnet", input_shape=(8, 8, 3), num_classes=3, depth=8)
  graphdef, params, state = models.split_model(model)
  x = jax.random.normal(key, (4, 8, 8, 3)) + 3.0
  _, same = models.apply_model(graphdef, params, state, x)
  chex.assert_trees_all_equal(same, state)
  _, new = models.apply_model(graphdef, params, state, x, train=True)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), new, state)
  assert any(jax.tree.leaves(changed))


def test_dropout_uses_the_explicit_key(key):
  model = models.create_model(key, "mlp", input_shape=(10,), num_classes=3,
                              hidden=(64,), dropout_rate=0.5)
  g, p, s = models.split_model(model)
  x = jnp.ones((2, 10))
  a, _ = models.apply_model(g, p, s, x, train=True, key=jax.random.key(1))
  b, _ = models.apply_model(g, p, s, x, train=True, key=jax.random.key(1))
  c, _ = models.apply_model(g, p, s, x, train=True, key=jax.random.key(2))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  e1, _ = models.apply_model(g, p, s, x)
  e2, _ = models.apply_model(g, p, s, x)
  np.testing.assert_array_equal(e1, e2)


def test_apply_model_jits_once_per_shape(key):
  model = models.create_model(key, "cnn", input_shape=(8, 8, 1), num_classes=3)
  g, p, s = models.split_model(model)
  fn = jax.jit(chex.assert_max_traces(lambda p, s, x: models.apply_model(g, p, s, x)[0], n=1))
  for i in range(3):
    fn(p, s, jnp.full((2, 8, 8, 1), float(i)))
  with pytest.raises(AssertionError):  # a new shape traces again: the counter works
    fn(p, s, jnp.zeros((3, 8, 8, 1)))


@pytest.mark.parametrize("name,kwargs,match", [
    ("resnet20x", {}, "valid models are"),
    ("resnet", {"depth": 21}, "depth must be 6n \\+ 2"),
    ("resnet_v2", {"depth": 30}, "depth must be 9n \\+ 2"),
    ("resnet", {"shortcut": "C"}, "shortcut must be"),
    ("cnn", {"pool": "max"}, "pool must be 'mean' or 'flatten'"),
])
def test_bad_model_arguments_name_the_argument(name, kwargs, match, key):
  with pytest.raises(ValueError, match=match):
    models.create_model(key, name, input_shape=(32, 32, 3), num_classes=10, **kwargs)


def test_wrong_input_shape_says_what_was_expected(key):
  model = models.create_model(key, "resnet20", input_shape=(32, 32, 3), num_classes=10)
  with pytest.raises(ValueError, match="x must have 3 channels"):
    model(jnp.zeros((2, 32, 32, 1)))
  with pytest.raises(ValueError, match="x must have rank 4"):
    model(jnp.zeros((32, 32, 3)))
  mlp = models.create_model(key, "mlp", input_shape=(8, 8, 1), num_classes=10)
  with pytest.raises(ValueError, match="64 features"):
    mlp(jnp.zeros((2, 7, 7, 1)))
  with pytest.raises(ValueError, match="layer must be one of"):
    mlp.features(jnp.zeros((2, 64)), "conv_9")
