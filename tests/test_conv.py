import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from explicable_jax.models import conv


@pytest.mark.parametrize("k,stride,pad", [(3, 1, 1), (3, 2, 1), (1, 1, 0), (1, 2, 0),
                                          (3, 1, "SAME"), (3, 2, "VALID")])
def test_tapwise_kernel_gradient_equals_xla(k, stride, pad, key):
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
