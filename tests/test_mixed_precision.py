"""Mixed-precision training (``compute_dtype="bfloat16"``): float32 weights,
optimiser and batch statistics, bfloat16 convolutions and matrix products."""
import argparse
import collections

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend import core as jcore

from explicable_jax import attribution, data, losses, models, training
from explicable_jax.app import cli


def _products(jaxpr, out):
  """(primitive, operand dtypes) of every convolution and matrix product,
  nested jaxprs (custom rules, loops) included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
      out[(eqn.primitive.name, tuple(str(v.aval.dtype) for v in eqn.invars))] += 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(sub, jcore.ClosedJaxpr):
          _products(sub.jaxpr, out)
        elif isinstance(sub, jcore.Jaxpr):
          _products(sub, out)
  return out


def _dtypes_of_products(step, *args):
  return _products(jax.make_jaxpr(step)(*args).jaxpr, collections.Counter())


@pytest.fixture(scope="module")
def tiny_resnet():
  """A depth-8 ResNet with batch norm on 8x8 inputs, one state, one batch."""
  clf = models.classifier(jax.random.key(0), "resnet", input_shape=(8, 8, 3), num_classes=4,
                          depth=8, widths=(4, 8, 8))
  opt = optax.sgd(0.1, momentum=0.9)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  rng = np.random.default_rng(0)
  batch = {"x": jnp.asarray(rng.random((16, 8, 8, 3), np.float32)),
           "y": jnp.asarray(np.arange(16) % 4, jnp.int32)}
  return opt, state, batch


def test_bfloat16_step_keeps_float32_state_and_matches_the_float32_step(tiny_resnet):
  opt, state, batch = tiny_resnet
  out = {}
  for dtype in ("float32", "bfloat16"):
    step = training.make_train_step(losses.cross_entropy_loss, opt, compute_dtype=dtype)
    products = _dtypes_of_products(step, state, batch)
    # Every convolution and dense product (forward and backward) runs in the
    # asked dtype; batch norm must not promote the bfloat16 path back to float32.
    assert products and {ops for _, ops in products} == {(dtype, dtype)}, products
    out[dtype] = jax.jit(step)(state, batch)
  (s32, m32), (s16, m16) = out["float32"], out["bfloat16"]
  for tree in (s16.params, s16.opt_state, s16.model_state):
    assert {a.dtype for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)} \
        == {jnp.dtype(jnp.float32)}
  assert bool(m16["finite"]) and np.isfinite(float(m16["grad_norm"]))
  # bfloat16 keeps 8 bits of mantissa: the loss and the gradient agree to ~1%.
  np.testing.assert_allclose(m16["loss"], m32["loss"], rtol=2e-2)
  np.testing.assert_allclose(m16["grad_norm"], m32["grad_norm"], rtol=5e-2)
  assert float(m16["loss"]) != float(m32["loss"])  # it did compute in bfloat16
  # Batch statistics are computed in float32 from the bfloat16 activations.
  for a, b in zip(jax.tree.leaves(s16.model_state), jax.tree.leaves(s32.model_state)):
    np.testing.assert_allclose(a, b, rtol=5e-2, atol=5e-3)
  # The update as a whole (elements near zero differ in sign): within 20%
  # (11% measured; batch norm's backward amplifies the rounding).
  flat = lambda s: np.concatenate([np.ravel(a - a0) for a, a0 in zip(
      jax.tree.leaves(s.params), jax.tree.leaves(state.params))])
  u16, u32 = flat(s16), flat(s32)
  assert np.linalg.norm(u16 - u32) < 0.2 * np.linalg.norm(u32)
  # The trained classifier, as attributions see it, is float32 at "highest".
  clf = s16.classifier
  assert clf.logits(batch["x"]).dtype == jnp.float32
  assert attribution.get_precision() == "highest"


def test_compute_dtype_reaches_the_step_from_the_config_and_the_cli():
  cfg = training.TrainConfig(dataset="digits", model="cnn", epochs=1, batch_size=32,
                             compute_dtype="bfloat16")
  train = data.load("digits", "train")
  state, step = training.build(cfg, train)
  batch = next(data.batches(train, 32))
  products = _dtypes_of_products(step, state, batch)
  assert {ops for _, ops in products} == {("bfloat16", "bfloat16")}, products
  # The train command's options (its parser alone, as `explicable-jax train` builds it).
  parser = argparse.ArgumentParser()
  cli._add_train_args(parser)
  parse = lambda argv: cli._config_from_args(parser.parse_args(argv))
  assert parse(["--compute-dtype", "bfloat16"]).compute_dtype == "bfloat16"
  assert parse([]).compute_dtype == "float32"
  with pytest.raises(SystemExit):
    parse(["--compute-dtype", "float16"])


def test_an_unknown_compute_dtype_is_refused_by_name():
  with pytest.raises(ValueError, match="compute_dtype .*float16"):
    training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1), compute_dtype="float16")
  with pytest.raises(ValueError, match="compute_dtype .*float16"):
    training.TrainConfig(compute_dtype="float16").validate()
