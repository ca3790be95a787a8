import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from explicable_jax.models import conv


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0),
                                          (3, 1, "SAME"), (3, 2, "VALID")])
def test_tapwise_kernel_gradient_equals_xla(k, stride, pad, key, monkeypatch):
  monkeypatch.setattr(conv, "KERNEL_GRAD", "tapwise")  # these shapes are below auto's threshold
  kx, kw, kd = jax.random.split(key, 3)
  x = jax.random.normal(kx, (3, 9, 9, 4))
  w = jax.random.normal(kw, (k, k, 4, 5))
  padding = pad if isinstance(pad, str) else [(pad, pad)] * 2
  ref = lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), padding,
                                              dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda x, w: conv.conv_general_dilated(x, w, (stride, stride), padding,
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  dy = jax.random.normal(kd, ref(x, w).shape)
  g_ref = jax.vjp(ref, x, w)[1](dy)
  g_ours = jax.jit(lambda x, w: jax.vjp(ours, x, w)[1](dy))(x, w)
  for a, b in zip(g_ours, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  # Second order (Hessian-vector products) still works through the custom rule.
  hvp = jax.jvp(jax.grad(lambda x: jnp.sum(ours(x, w) ** 2)), (x,), (x,))[1]
  hvp_ref = jax.jvp(jax.grad(lambda x: jnp.sum(ref(x, w) ** 2)), (x,), (x,))[1]
  np.testing.assert_allclose(hvp, hvp_ref, rtol=1e-4, atol=1e-4)


def test_auto_times_each_large_convolution_once_and_caches_the_choice(tmp_path, monkeypatch):
  """"auto": a convolution above the FLOP threshold whose kernel gradient is
  taken is timed once (both
  forms, in a thread of its own even while a model is being traced), the
  faster form is used, and the choice is kept in memory and on disk for this
  machine; small convolutions use XLA's rule untimed. Gradients equal XLA's
  whichever form wins."""
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  monkeypatch.setattr(conv, "KERNEL_GRAD", "auto")
  monkeypatch.setattr(conv, "_choices", {})
  monkeypatch.setattr(conv, "CALIBRATE_MIN_FLOPS", 1e6)
  timed = []
  real = conv.calibrate
  monkeypatch.setattr(conv, "calibrate", lambda *a, **k: timed.append(a[:2]) or real(*a, **k))
  x = jax.random.normal(jax.random.key(0), (8, 12, 12, 8))
  w = jax.random.normal(jax.random.key(1), (3, 3, 8, 8))  # 2*8*12*12*9*8*8 = 1.3 MFLOP
  small = jax.random.normal(jax.random.key(2), (1, 3, 3, 8))
  f = lambda x, w: jnp.sum(conv.conv_general_dilated(x, w, (1, 1), "SAME",
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2)
  ref = lambda x, w: jnp.sum(lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2)
  # Passes that need no kernel gradient never ask for the form: inference and
  # input gradients (attributions) of a large convolution are not timed.
  jax.jit(f)(x, w)
  jax.jit(jax.grad(f))(x, w)
  assert timed == []
  g = jax.jit(jax.grad(f, argnums=1))(x, w)  # timed while jit traces f
  np.testing.assert_allclose(g, jax.grad(ref, argnums=1)(x, w), rtol=1e-4, atol=1e-3)
  jax.jit(jax.grad(f, argnums=1))(x + 1, w)
  jax.grad(f, argnums=1)(small, w)
  assert timed == [((8, 12, 12, 8), (3, 3, 8, 8))]  # once; the small one untimed
  table = json.loads((tmp_path / "explicable_jax" / "conv_kernel_grad.json").read_text())
  (entry,) = [e for per_machine in table.values() for e in per_machine.values()]
  assert entry["choice"] == ("tapwise" if entry["tapwise"] < 0.95 * entry["xla"] else "xla")
  assert list(conv._choices.values()) == [entry["choice"]]
  # A new process (empty memory) reads the disk cache instead of timing again.
  monkeypatch.setattr(conv, "_choices", {})
  jax.grad(f, argnums=1)(x, w)
  assert len(timed) == 1
  monkeypatch.setattr(conv, "KERNEL_GRAD", "fast")
  with pytest.raises(ValueError, match="KERNEL_GRAD .* must be one of .*got 'fast'"):
    jax.grad(f, argnums=1)(x, w)


def _primitives(jaxpr, out):
  for eqn in jaxpr.eqns:
    out.add(eqn.primitive.name)
    for value in eqn.params.values():
      for sub in value if isinstance(value, (list, tuple)) else [value]:
        if hasattr(sub, "eqns"):
          _primitives(sub, out)
        elif hasattr(sub, "jaxpr"):
          _primitives(sub.jaxpr, out)
  return out


def test_the_default_is_xlas_rule_untimed_and_writes_nothing(tmp_path, monkeypatch):
  """By default (issue 31) training a large convolution times nothing, writes
  no cache file and traces XLA's own convolution (no custom rule)."""
  assert conv.DEFAULT_KERNEL_GRAD == "xla"
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  monkeypatch.setattr(conv, "KERNEL_GRAD", conv.DEFAULT_KERNEL_GRAD)
  monkeypatch.setattr(conv, "_choices", {})
  monkeypatch.setattr(conv, "CALIBRATE_MIN_FLOPS", 1.0)
  monkeypatch.setattr(conv, "calibrate", lambda *a, **k: pytest.fail("timed a convolution"))
  x = jax.random.normal(jax.random.key(0), (8, 12, 12, 8))
  w = jax.random.normal(jax.random.key(1), (3, 3, 8, 8))
  f = lambda w: jnp.sum(conv.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2)
  prims = _primitives(jax.make_jaxpr(jax.grad(f))(w).jaxpr, set())
  assert "conv_general_dilated" in prims and not any("custom" in p for p in prims), prims
  assert conv._choices == {} and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("process", [0, 1])
def test_auto_in_several_processes_uses_process_0s_choice(process, tmp_path, monkeypatch):
  """"auto" with several processes: each process takes part in one broadcast
  per shape and uses process 0's choice; only process 0 reads its cache or
  times, so every process compiles the same program."""
  from jax.experimental import multihost_utils
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  monkeypatch.setattr(conv, "KERNEL_GRAD", "auto")
  monkeypatch.setattr(conv, "_choices", {})
  monkeypatch.setattr(conv, "CALIBRATE_MIN_FLOPS", 1.0)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: process)
  timed, sent = [], []
  monkeypatch.setattr(conv, "calibrate", lambda *a, **k: timed.append(a[:2]) or {
      "xla": 2.0, "tapwise": 1.0, "choice": "tapwise"})
  process_0_says = "tapwise"

  def broadcast(value):  # what process 0 sends reaches every process
    sent.append(conv.KERNEL_GRAD_FORMS[int(value)])
    return np.int32(conv.KERNEL_GRAD_FORMS.index(process_0_says))
  monkeypatch.setattr(multihost_utils, "broadcast_one_to_all", broadcast)
  shape = ((8, 12, 12, 8), (3, 3, 8, 8), (1, 1), ((1, 1), (1, 1)), jnp.float32)
  assert conv.kernel_grad_form(*shape) == "tapwise"
  assert conv.kernel_grad_form(*shape) == "tapwise"  # decided once per shape
  assert len(sent) == 1
  if process == 0:
    assert timed == [shape[:2]] and sent == ["tapwise"]
  else:  # never timed here; its own cache is not read either
    assert timed == [] and sent == ["xla"] and list(tmp_path.iterdir()) == []


def test_a_zoo_models_gradient_is_the_same_with_either_form(monkeypatch):
  """Through a whole zoo ResNet (stride-1 and stride-2 convolutions, batch
  norm in training mode), the parameter gradient with the tap-wise form
  equals XLA's (the suite otherwise runs with XLA's form, see conftest)."""
  from explicable_jax import losses, models
  clf = models.classifier(jax.random.key(0), "resnet20", input_shape=(8, 8, 3), num_classes=10)
  backend = clf.spec.backend
  x = jax.random.uniform(jax.random.key(1), (4, 8, 8, 3))
  y = jnp.array([0, 1, 2, 3])

  used = []
  real_tapwise = conv._tapwise_conv
  monkeypatch.setattr(conv, "_tapwise_conv", lambda *a: used.append(1) or real_tapwise(*a))

  def grads(form):
    monkeypatch.setattr(conv, "KERNEL_GRAD", form)
    used.clear()
    loss = lambda p: jnp.mean(losses.cross_entropy(
        backend.apply(p, clf.state, x, train=True, key=jax.random.key(2))[0], y))
    g = jax.jit(jax.grad(loss))(clf.params)  # a new trace per form
    return g, len(used)

  (tap, n_tap), (xla, n_xla) = grads("tapwise"), grads(conv.DEFAULT_KERNEL_GRAD)
  assert n_tap >= 19 and n_xla == 0  # every conv took the form asked for
  for a, b in zip(jax.tree.leaves(tap), jax.tree.leaves(xla)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
