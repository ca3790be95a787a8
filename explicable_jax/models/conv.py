"""A convolution whose kernel gradient is fast on XLA:CPU.

On CPU, XLA lowers the kernel gradient of a convolution (``dL/dW``, itself a
convolution of the input with the output gradient, with a kernel as large as
the image) to an Eigen routine that runs several times slower than the
forward pass; it dominates a ResNet-20 train step. Writing ``dL/dW`` as one
matrix product per kernel tap,

.. math:: \\frac{\\partial L}{\\partial W_{ij}} = \\sum_{n,h,w}
   \\tilde x_{n, sh+i, sw+j, :}^{\\top}\\, \\delta_{n,h,w,:},

(``x~`` the padded input, ``s`` the stride, ``delta`` the output gradient)
halves that cost. The forward pass and the input gradient stay XLA's. On
other backends (GPU/TPU) this is plain ``lax.conv_general_dilated``.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")

# Read at trace time; the benchmark turns it off to measure XLA's own rule.
TAPWISE_KERNEL_GRAD_ON_CPU = True


def _pads(padding, x_shape, w_shape, strides):
  if isinstance(padding, str):
    return tuple(lax.padtype_to_pads(x_shape[1:3], w_shape[:2], strides, padding))
  return tuple(tuple(int(v) for v in p) for p in padding)


def _tapwise_conv(x, w, strides, pads):
  """The same convolution as one matrix product per kernel tap (linear in w).

  Its transpose with respect to ``w`` is the tap-wise kernel gradient."""
  kh, kw, ci, co = w.shape
  sh, sw = strides
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  n = x.shape[0]
  oh = (xp.shape[1] - kh) // sh + 1
  ow = (xp.shape[2] - kw) // sw + 1
  out = 0.0
  for i in range(kh):
    for j in range(kw):
      window = lax.slice(xp, (0, i, j, 0),
                         (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, ci),
                         (1, sh, sw, 1))
      out = out + jnp.dot(window.reshape(-1, ci), w[i, j])
  return out.reshape(n, oh, ow, co)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _conv_tapwise_grad(x, w, strides, pads):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC)


@_conv_tapwise_grad.defjvp
def _conv_jvp(strides, pads, primals, tangents):
  # A JVP rule (not a VJP rule) keeps forward mode, hence Hessian-vector
  # products, available; reverse mode transposes the tangent map, and the
  # transpose of the tap-wise term is the fast kernel gradient.
  x, w = primals
  dx, dw = tangents
  y = _conv_tapwise_grad(x, w, strides, pads)
  dy = (lax.conv_general_dilated(dx, w, strides, pads, dimension_numbers=_NHWC)
        + _tapwise_conv(x, dw, strides, pads))
  return y, dy


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None,
                         **kwargs):
  """Drop-in for ``lax.conv_general_dilated`` (the ``conv_general_dilated``
  argument of ``nnx.Conv``), using the tap-wise kernel gradient on CPU for
  plain NHWC/HWIO convolutions."""
  plain = (TAPWISE_KERNEL_GRAD_ON_CPU and jax.default_backend() == "cpu"
           and tuple(dimension_numbers or ()) in (_NHWC, lax.ConvDimensionNumbers(
               (0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2)))
           and all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and feature_group_count == 1 and batch_group_count == 1
           and preferred_element_type is None and lhs.ndim == 4
           and kwargs.get("out_sharding") is None)
  if not plain:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers, feature_group_count, batch_group_count, precision,
        preferred_element_type, **kwargs)
  strides = tuple(int(s) for s in window_strides)
  return _conv_tapwise_grad(lhs, rhs, strides,
                            _pads(padding, lhs.shape, rhs.shape, strides))
