"""The summary table of ``python -m benchmarks`` (no timing here)."""
import pytest

from benchmarks import _suite


def test_recorded_rows_become_summary_rows_with_ratios(tmp_path, monkeypatch):
  monkeypatch.setattr(_suite, "RESULTS", str(tmp_path))
  _suite.record("x", [{"benchmark": "thing", "unit": "img/s", "ours": 30.0, "peer": 10.0,
                       "peer_name": "PyTorch", "peak_fraction": 0.25}])
  table = _suite.summary_table().splitlines()
  assert len(table) == 3
  assert "| thing | 30 img/s | 10 img/s (PyTorch) | 3.00x | 25% |" in table[2]
  assert _suite.machine() in table[2]


def test_rows_missing_a_field_are_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(_suite, "RESULTS", str(tmp_path))
  with pytest.raises(ValueError, match="peer"):
    _suite.record("x", [{"benchmark": "thing", "unit": "img/s", "ours": 1.0}])


def test_the_convolution_forms_tried_compute_the_same_convolution():
  """benchmarks.conv_attempts times Winograd, per-tap and im2col forms against
  XLA's convolution; each must be the same SAME 3x3 convolution (odd sizes
  exercise the Winograd tile padding)."""
  import jax
  import numpy as np
  from benchmarks import conv_attempts
  x = jax.random.normal(jax.random.key(0), (2, 7, 9, 3))
  w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
  ref = np.asarray(conv_attempts.xla_conv(x, w))
  for name, form in conv_attempts.FORMS.items():
    np.testing.assert_allclose(np.asarray(form(x, w)), ref, atol=1e-4, err_msg=name)


def test_the_closed_form_batch_norm_tried_has_autodiffs_derivatives():
  """benchmarks.conv_attempts --bn times a closed-form custom_jvp batch norm
  against autodiff; it must have the same reverse- and forward-mode
  derivatives."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from benchmarks import conv_attempts as ca
  x = jax.random.normal(jax.random.key(0), (4, 3, 3, 5))
  s, b = jnp.linspace(0.5, 1.5, 5), jnp.linspace(-1.0, 1.0, 5)
  g = jax.random.normal(jax.random.key(1), x.shape)
  for argnum in range(3):
    grad = lambda f: jax.grad(lambda *a: jnp.vdot(f(*a), g), argnums=argnum)(x, s, b)
    np.testing.assert_allclose(grad(ca.bn_closed_form), grad(ca.bn_autodiff), atol=1e-5)
  t = (g, jnp.ones(5), jnp.ones(5))
  np.testing.assert_allclose(jax.jvp(ca.bn_closed_form, (x, s, b), t)[1],
                             jax.jvp(ca.bn_autodiff, (x, s, b), t)[1], atol=1e-5)
