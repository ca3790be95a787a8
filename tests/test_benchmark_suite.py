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
