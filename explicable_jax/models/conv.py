"""A convolution whose kernel-gradient form is chosen per shape and machine on XLA:CPU.

On CPU, XLA lowers the kernel gradient of a convolution (``dL/dW``, itself a
convolution of the input with the output gradient, with a kernel as large as
the image) to an Eigen routine that runs several times slower than the
forward pass; it dominates a ResNet-20 train step. Writing ``dL/dW`` as one
matrix product per kernel tap,

.. math:: \\frac{\\partial L}{\\partial W_{ij}} = \\sum_{n,h,w}
   \\tilde x_{n, sh+i, sw+j, :}^{\\top}\\, \\delta_{n,h,w,:},

(``x~`` the padded input, ``s`` the stride, ``delta`` the output gradient)
halves that cost on some shapes and machines and loses on others (issue 22:
on this machine it lost on two of ResNet-20's three shapes with jax 0.10).
So the form is a choice, :data:`KERNEL_GRAD` (or the environment variable
``EXPLICABLE_JAX_CONV_KERNEL_GRAD``, read at import):

* ``"xla"`` (default): XLA's own rule, here and on every backend; nothing is
  timed and nothing is written to disk.
* ``"tapwise"``: the tap-wise kernel gradient for every convolution (CPU).
* ``"auto"`` (opt-in, CPU): the first time the kernel gradient of a
  convolution costing at least :data:`CALIBRATE_MIN_FLOPS` is traced
  (training; never inference or input gradients), time both forms once
  (:func:`calibrate`, about a second per shape) and keep the faster; the
  choice is cached in memory and on disk
  (``$XDG_CACHE_HOME/explicable_jax/conv_kernel_grad.json``, keyed by the CPU,
  core count and jax version). Smaller convolutions use XLA's rule. In a
  multi-process run, process 0 decides (from its cache or a timing) and
  broadcasts its choice, so every process compiles the same program.

The forward pass and the input gradient stay XLA's. On other backends
(GPU/TPU) this is always plain ``lax.conv_general_dilated``: the tap-wise
form is a workaround for XLA:CPU's kernel-gradient routine only.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

__all__ = [
    "CALIBRATE_MIN_FLOPS", "DEFAULT_KERNEL_GRAD", "KERNEL_GRAD", "KERNEL_GRAD_FORMS",
    "calibrate", "conv_general_dilated", "kernel_grad_form",
]

_NHWC = ("NHWC", "HWIO", "NHWC")

KERNEL_GRAD_FORMS = ("xla", "tapwise", "auto")
#: XLA's own rule: no timing, no cache file, the same program on every machine.
DEFAULT_KERNEL_GRAD = "xla"
#: Read at trace time: "xla" (default), "tapwise" or "auto" (see the module docstring).
KERNEL_GRAD = os.environ.get("EXPLICABLE_JAX_CONV_KERNEL_GRAD", DEFAULT_KERNEL_GRAD)
#: "auto" measures only convolutions whose kernel gradient costs at least this
#: many floating-point operations (2 N H_out W_out k_h k_w C_in C_out); a
#: ResNet-20 convolution at batch 128 costs 0.3-0.6 GFLOP.
CALIBRATE_MIN_FLOPS = 5e7

_choices: dict[str, str] = {}
_lock = threading.Lock()


def _machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
  except OSError:
    pass
  return f"{cpu} | {os.cpu_count()} cores | jax {jax.__version__}"


def _cache_file() -> str:
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(root, "explicable_jax", "conv_kernel_grad.json")


def _shape_key(x_shape, w_shape, strides, pads, dtype) -> str:
  return (f"x{tuple(x_shape)} w{tuple(w_shape)} s{tuple(strides)} "
          f"p{tuple(tuple(p) for p in pads)} {jnp.dtype(dtype).name}")


def _best_time(fn, args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # compile and warm up
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return best


def calibrate(x_shape, w_shape, strides=(1, 1), pads=((1, 1), (1, 1)), dtype=jnp.float32,
              *, repeats: int = 5) -> dict:
  """Times both kernel-gradient forms of one convolution on this machine.

  Returns ``{"xla": seconds, "tapwise": seconds, "choice": form}`` (the best of
  ``repeats`` calls each, after a warm-up); ``"tapwise"`` is chosen only when
  it is at least 5% faster. Run outside any trace, on concrete random inputs.
  """
  strides = tuple(int(v) for v in strides)
  pads = tuple(tuple(int(v) for v in p) for p in pads)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(x_shape), dtype)
  w = jnp.asarray(rng.standard_normal(w_shape), dtype)
  y_shape = jax.eval_shape(
      lambda x, w: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC),
      x, w).shape
  dy = jnp.asarray(rng.standard_normal(y_shape), dtype)
  xla = jax.jit(lambda x, w, dy: jax.vjp(
      lambda w: lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC),
      w)[1](dy)[0])
  tap = jax.jit(lambda x, w, dy: jax.vjp(
      lambda w: _tapwise_conv(x, w, strides, pads), w)[1](dy)[0])
  t_xla = _best_time(xla, (x, w, dy), repeats)
  t_tap = _best_time(tap, (x, w, dy), repeats)
  return {"xla": t_xla, "tapwise": t_tap,
          "choice": "tapwise" if t_tap < 0.95 * t_xla else "xla"}


def _checked_mode() -> str:
  if KERNEL_GRAD not in KERNEL_GRAD_FORMS:
    raise ValueError(f"KERNEL_GRAD (EXPLICABLE_JAX_CONV_KERNEL_GRAD) must be one of "
                     f"{KERNEL_GRAD_FORMS}; got {KERNEL_GRAD!r}.")
  return KERNEL_GRAD


def kernel_grad_form(x_shape, w_shape, strides, pads, dtype) -> str:
  """The kernel-gradient form used for this convolution: ``"tapwise"`` or
  ``"xla"``, as :data:`KERNEL_GRAD` says (measured and cached under
  ``"auto"``)."""
  mode = _checked_mode()
  if mode != "auto":
    return mode
  n, kh, kw, ci, co = x_shape[0], w_shape[0], w_shape[1], w_shape[2], w_shape[3]
  oh = (x_shape[1] + sum(pads[0]) - kh) // strides[0] + 1
  ow = (x_shape[2] + sum(pads[1]) - kw) // strides[1] + 1
  if 2 * n * oh * ow * kh * kw * ci * co < CALIBRATE_MIN_FLOPS:
    return "xla"
  key = _shape_key(x_shape, w_shape, strides, pads, dtype)
  with _lock:
    if key in _choices:
      return _choices[key]
    if jax.process_count() > 1:
      choice = _agreed_choice(key, x_shape, w_shape, strides, pads, dtype)
    else:
      choice = _measured_choice(key, x_shape, w_shape, strides, pads, dtype)
    _choices[key] = choice
    return choice


def _in_thread(fn):
  # This runs while a model is being traced, and JAX's trace state is per
  # thread: in a thread of its own, the timings (and a broadcast) run eagerly.
  out = {}
  worker = threading.Thread(target=lambda: out.update(value=fn()))
  worker.start()
  worker.join()
  if "value" not in out:
    raise RuntimeError("could not time the convolution kernel gradient; set "
                       "explicable_jax.models.conv.KERNEL_GRAD to 'xla' or 'tapwise'.")
  return out["value"]


def _measured_choice(key, x_shape, w_shape, strides, pads, dtype) -> str:
  """This machine's choice: from the disk cache, else timed and cached."""
  path, machine = _cache_file(), _machine()
  try:
    with open(path) as f:
      table = json.load(f)
  except (OSError, ValueError):
    table = {}
  entry = table.get(machine, {}).get(key)
  if entry is None:
    entry = _in_thread(lambda: calibrate(x_shape, w_shape, strides, pads, dtype))
    table.setdefault(machine, {})[key] = entry
    try:  # a read-only home only loses the cache, never the run
      os.makedirs(os.path.dirname(path), exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp"
      with open(tmp, "w") as f:
        json.dump(table, f, indent=1, sort_keys=True)
      os.replace(tmp, path)
    except OSError:
      pass
  return entry["choice"]


def _agreed_choice(key, x_shape, w_shape, strides, pads, dtype) -> str:
  """Process 0's choice, on every process of a multi-process run.

  Every process traces the same program, so each reaches this point for the
  same shapes in the same order, and each takes part in the broadcast; only
  process 0 reads its cache or times. Choices made per process could differ
  (other machines, other loads) and compile different programs."""
  from jax.experimental import multihost_utils

  def decide():
    mine = (_measured_choice(key, x_shape, w_shape, strides, pads, dtype)
            if jax.process_index() == 0 else "xla")
    code = multihost_utils.broadcast_one_to_all(
        np.int32(KERNEL_GRAD_FORMS.index(mine)))
    return KERNEL_GRAD_FORMS[int(code)]

  return _in_thread(decide)


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


def _conv_jvp(strides, pads, primals, tangents):
  # A JVP rule (not a VJP rule) keeps forward mode, hence Hessian-vector
  # products, available; reverse mode transposes the tangent map, and the
  # transpose of the tap-wise term is the tap-wise kernel gradient. Zero
  # tangents arrive symbolic: a pass that needs no kernel gradient (inference,
  # input gradients, attributions) never asks for the form, so never times it.
  x, w = primals
  dx, dw = tangents
  y = _conv_tapwise_grad(x, w, strides, pads)
  terms = []
  if not isinstance(dx, SymbolicZero):
    terms.append(lax.conv_general_dilated(dx, w, strides, pads, dimension_numbers=_NHWC))
  if not isinstance(dw, SymbolicZero):
    if kernel_grad_form(x.shape, w.shape, strides, pads, x.dtype) == "tapwise":
      terms.append(_tapwise_conv(x, dw, strides, pads))
    else:
      terms.append(lax.conv_general_dilated(x, dw, strides, pads, dimension_numbers=_NHWC))
  if not terms:
    return y, jnp.zeros_like(y)
  return y, functools.reduce(lambda a, b: a + b, terms)


_conv_tapwise_grad.defjvp(_conv_jvp, symbolic_zeros=True)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None,
                         **kwargs):
  """Drop-in for ``lax.conv_general_dilated`` (the ``conv_general_dilated``
  argument of ``nnx.Conv``): with :data:`KERNEL_GRAD` ``"tapwise"`` or
  ``"auto"`` on CPU, plain NHWC/HWIO convolutions take the kernel-gradient
  form :func:`kernel_grad_form` picks; otherwise (the default, and on every
  other backend) ``lax.conv_general_dilated`` itself.

  Its signature is ``jax.lax.conv_general_dilated``'s, parameter for parameter, so that it
  replaces that function unchanged (Flax's ``Conv(conv_general_dilated=...)``).
  """
  plain = (_checked_mode() != "xla" and jax.default_backend() == "cpu"
           and precision is None
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
