"""What was tried to speed up the forward convolution on CPU (issue 22), measured.

    python -m benchmarks.conv_attempts [--write] [--flags]

For ResNet-20's three stride-1 3x3 convolution shapes (batch 128, NHWC;
32x32x16, 16x16x32, 8x8x64 channels in and out), one run times the forward
convolution written four ways, each jitted, median of ``--repeats`` calls
after two warm-ups:

* XLA's own ``lax.conv_general_dilated`` (what the library uses);
* Winograd F(4x4, 3x3) (Lavin and Gray, 2016): 6x6 input tiles, 36
  matrix products of (tiles x C_in) by (C_in x C_out), 4x fewer
  multiplications than the direct convolution, transforms as ``einsum``;
* nine per-tap matrix products (one per kernel tap, the shifted input times
  that tap's C_in x C_out matrix), the form the kernel gradient takes in
  ``explicable_jax.models.conv``;
* im2col: the nine shifted inputs concatenated on the channel axis, one
  matrix product with the (9 C_in) x C_out kernel.

Each is checked against XLA's output (largest error relative to the largest
output). Reported as GFLOP/s of the direct convolution's count (2 N H W 9
C_in C_out), so the Winograd figure is an *effective* rate.

``--bn`` times one training-mode batch-norm layer's forward + backward at
the three activation shapes instead: JAX's autodiff of flax's formula (what
the models use) against a closed-form ``custom_jvp`` tangent.

``--flags`` also reruns ``python -m benchmarks.train_step --repeats 5`` in
fresh processes under XLA:CPU flags that change how convolutions are run
(``--xla_cpu_use_onednn=true``, ``--xla_cpu_use_xnnpack=false``,
``--xla_cpu_experimental_ynn_fusion_type=individual_convolution``) beside the
default, one after the other; the ratio to PyTorch in each is the figure to
read (PyTorch is measured in the same process each time).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks.attribution import matmul_peak_gflops, write_readme_section

SHAPES = ((128, 32, 16), (128, 16, 32), (128, 8, 64))  # (batch, side, channels)
# The last one routes convolutions with more than 16 channels to YNNPACK
# (XLA's ``IsConvolutionOpSupportedByYnn``; ResNet-20's 32- and 64-channel ones).
FLAGS = ("", "--xla_cpu_use_onednn=true", "--xla_cpu_use_xnnpack=false",
         "--xla_cpu_experimental_ynn_fusion_type=individual_convolution")

# Winograd F(4x4, 3x3) transforms (Lavin and Gray, "Fast Algorithms for
# Convolutional Neural Networks", CVPR 2016).
_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float32)
_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float32)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], np.float32)


def xla_conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _tiles(xp, t: int, axis: int):
  """Overlapping windows of 6 at stride 4 along ``axis`` -> (..., t, 6, ...)."""
  a = lax.slice_in_dim(xp, 0, 4 * t, axis=axis)
  b = lax.slice_in_dim(xp, 4, 4 * t + 4, axis=axis)
  shape = list(a.shape)
  shape[axis:axis + 1] = [t, 4]
  b = lax.slice_in_dim(b.reshape(shape), 0, 2, axis=axis + 1)
  return jnp.concatenate([a.reshape(shape), b], axis=axis + 1)


def winograd_conv(x, w):
  """SAME 3x3 stride-1 convolution by Winograd F(4x4, 3x3):
  Y = A^T [(G g G^T) . (B^T d B)] A on each 6x6 tile d."""
  n, h, wd, c = x.shape
  d_out = w.shape[-1]
  t1, t2 = -(-h // 4), -(-wd // 4)
  xp = jnp.pad(x, ((0, 0), (1, 4 * t1 + 3 - h), (1, 4 * t2 + 3 - wd), (0, 0)))
  d = _tiles(_tiles(xp, t1, 1), t2, 3)  # (n, t1, 6, t2, 6, c)
  v = jnp.einsum("ai,ntiujc,bj->abntuc", _BT, d, _BT).reshape(36, n * t1 * t2, c)
  u = jnp.einsum("ai,ijcd,bj->abcd", _G, w, _G).reshape(36, c, d_out)
  m = jnp.einsum("pkc,pcd->pkd", v, u).reshape(6, 6, n, t1, t2, d_out)
  y = jnp.einsum("ia,abntud,jb->ntiujd", _AT, m, _AT).reshape(n, 4 * t1, 4 * t2, d_out)
  return y[:, :h, :wd]


def _shifted(x):
  n, h, wd, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  return [xp[:, i:i + h, j:j + wd] for i in range(3) for j in range(3)]


def tapwise_conv(x, w):
  """Nine per-tap matrix products: Y = sum_ij shift_ij(x) W_ij."""
  taps = _shifted(x)
  return sum(jnp.einsum("nhwc,cd->nhwd", t, w[k // 3, k % 3]) for k, t in enumerate(taps))


def im2col_conv(x, w):
  """im2col: the nine shifts concatenated on channels, one matrix product."""
  cols = jnp.concatenate(_shifted(x), -1)
  return jnp.einsum("nhwk,kd->nhwd", cols, w.reshape(-1, w.shape[-1]))


FORMS = {"XLA convolution": xla_conv, "Winograd F(4x4, 3x3)": winograd_conv,
         "per-tap matmuls": tapwise_conv, "im2col + one matmul": im2col_conv}


def _median_time(fn, args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def run_forms(repeats: int) -> list[dict]:
  rows = []
  for n, side, c in SHAPES:
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, side, side, c))
    w = jax.random.normal(kw, (3, 3, c, c)) * (2 / (9 * c)) ** 0.5
    ref = jax.jit(xla_conv)(x, w)
    flops = 2 * n * side * side * 9 * c * c
    for name, form in FORMS.items():
      fn = jax.jit(form)
      err = float(jnp.abs(fn(x, w) - ref).max() / jnp.abs(ref).max())
      t = _median_time(fn, (x, w), repeats)
      rows.append({"shape": f"{n}x{side}x{side}x{c} -> {c}", "form": name, "ms": t * 1e3,
                   "gflops": flops / t / 1e9, "rel_err": err})
  return rows


def _bn_stats(x):
  mean = x.mean((0, 1, 2))
  var = jnp.maximum((x * x).mean((0, 1, 2)) - mean ** 2, 0.0)  # flax's fast variance
  return mean, lax.rsqrt(var + 1e-5)


def bn_autodiff(x, scale, bias):
  """Training-mode batch norm as flax computes it; JAX differentiates it."""
  mean, inv = _bn_stats(x)
  return (x - mean) * inv * scale + bias


@jax.custom_jvp
def bn_closed_form(x, scale, bias):
  """The same batch norm with its closed-form tangent (forward-mode safe):
  d xhat = (dx - mean(dx) - xhat mean(dx xhat)) / sigma."""
  return bn_autodiff(x, scale, bias)


@bn_closed_form.defjvp
def _bn_jvp(primals, tangents):
  x, scale, bias = primals
  dx, dscale, dbias = tangents
  mean, inv = _bn_stats(x)
  xhat = (x - mean) * inv
  dxhat = (dx - dx.mean((0, 1, 2)) - xhat * (dx * xhat).mean((0, 1, 2))) * inv
  return xhat * scale + bias, dxhat * scale + xhat * dscale + dbias


def run_bn(repeats: int) -> list[dict]:
  """Training-mode batch norm, forward + backward (gradient of <BN(x), g>
  with respect to x, scale and bias) at ResNet-20's three activation shapes:
  autodiff of flax's formula vs a closed-form ``custom_jvp`` tangent."""
  rows = []
  for n, side, c in SHAPES:
    kx, kg = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, side, side, c))
    g = jax.random.normal(kg, x.shape)
    scale, bias = jnp.linspace(0.5, 1.5, c), jnp.linspace(-0.1, 0.1, c)
    grads = {name: jax.jit(jax.grad(lambda x, s, b, f=f: jnp.vdot(f(x, s, b), g),
                                    argnums=(0, 1, 2)))
             for name, f in (("autodiff of flax's formula", bn_autodiff),
                             ("closed-form custom_jvp", bn_closed_form))}
    ref = grads["autodiff of flax's formula"](x, scale, bias)
    for name, fn in grads.items():
      err = max(float(jnp.abs(a - b).max() / jnp.abs(b).max())
                for a, b in zip(fn(x, scale, bias), ref))
      t = _median_time(fn, (x, scale, bias), repeats)
      rows.append({"shape": f"{n}x{side}x{side}x{c}", "form": name, "ms": t * 1e3,
                   "rel_err": err})
  return rows


def format_bn(rows) -> str:
  lines = [f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
           f"jax {jax.__version__} ({jax.default_backend()}); one batch-norm layer in training "
           "mode, forward + backward, median of the repeats:", "",
           "| activation (batch x H x W x C) | form | ms | vs autodiff | largest error |",
           "|---|---|---|---|---|"]
  base = {r["shape"]: r["ms"] for r in rows if r["form"].startswith("autodiff")}
  for r in rows:
    lines.append(f"| {r['shape']} | {r['form']} | {r['ms']:.2f} | "
                 f"{base[r['shape']] / r['ms']:.2f}x | {r['rel_err']:.1e} |")
  # ResNet-20's 19 batch norms: the stem's and layer1's 7 at 32x32x16, 6 at
  # 16x16x32, 6 at 8x8x64.
  count = dict(zip((f"{n}x{s}x{s}x{c}" for n, s, c in SHAPES), (7, 6, 6)))
  per_step = {form: sum(count[r["shape"]] * r["ms"] for r in rows if r["form"] == form)
              for form in dict.fromkeys(r["form"] for r in rows)}
  lines += ["", "Summed over ResNet-20's 19 batch norms (7 at 32x32x16, 6 at 16x16x32, 6 at "
            "8x8x64), forward + backward per batch of 128: " +
            ", ".join(f"{form} {ms:.1f} ms" for form, ms in per_step.items()) + "."]
  return "\n".join(lines)


def run_flags() -> list[dict]:
  rows = []
  for flag in FLAGS:
    env = dict(os.environ, XLA_FLAGS=flag)
    out = subprocess.run([sys.executable, "-m", "benchmarks.train_step", "--repeats", "5"],
                         env=env, capture_output=True, text=True, check=True).stdout
    header = None
    for line in out.splitlines():
      cells = [c.strip() for c in line.strip().strip("|").split("|")]
      if cells[0] == "benchmark":
        header = cells
      elif header and len(cells) == len(header) and cells[0].startswith("ResNet-20"):
        row = dict(zip(header, cells))
        rows.append({"flags": flag or "(none)",
                     "part": "train" if "train" in cells[0] else "forward",
                     "ours": float(row["ours (auto) img/s"]), "torch": float(row["PyTorch img/s"]),
                     "ratio": float(row["ratio"])})
  return rows


def format_report(forms, flags, peak) -> str:
  lines = [f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
           f"jax {jax.__version__} ({jax.default_backend()}); float32 matmul peak {peak:.0f} "
           "GFLOP/s measured in the same run.", "",
           "| shape (batch x H x W x C_in -> C_out) | form | ms | GFLOP/s (direct count) | "
           "vs XLA | largest error / largest output |",
           "|---|---|---|---|---|---|"]
  base = {r["shape"]: r["ms"] for r in forms if r["form"] == "XLA convolution"}
  for r in forms:
    lines.append(f"| {r['shape']} | {r['form']} | {r['ms']:.1f} | {r['gflops']:.0f} | "
                 f"{base[r['shape']] / r['ms']:.2f}x | {r['rel_err']:.1e} |")
  if flags:
    lines += ["", "ResNet-20 at batch 128 under XLA:CPU flags (`python -m benchmarks.train_step "
              "--repeats 5` in a fresh process each; PyTorch measured in the same process):", "",
              "| XLA_FLAGS | part | ours img/s | PyTorch img/s | ratio |", "|---|---|---|---|---|"]
    for r in flags:
      lines.append(f"| `{r['flags']}` | {r['part']} | {r['ours']:.0f} | {r['torch']:.0f} | "
                   f"{r['ratio']:.2f} |")
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--flags", action="store_true",
                 help="also rerun benchmarks.train_step under each XLA flag (needs torch)")
  p.add_argument("--bn", action="store_true",
                 help="time batch norm's backward (autodiff vs closed form) instead")
  p.add_argument("--write", action="store_true", help="record the table in benchmarks/README.md")
  args = p.parse_args()
  if args.bn:
    report = format_bn(run_bn(args.repeats))
    print(report)
    if args.write:
      write_readme_section(
          "bn_attempts", report,
          heading=("\n## Batch norm's backward on CPU: autodiff vs closed form (issue 22)\n\n"
                   "    python -m benchmarks.conv_attempts --bn --repeats 20 --write\n\n"))
    return
  peak = matmul_peak_gflops()
  forms = run_forms(args.repeats)
  flags = run_flags() if args.flags else []
  report = format_report(forms, flags, peak)
  print(report)
  if args.write:
    write_readme_section(
        "conv_attempts", report,
        heading=("\n## Forward convolution on CPU: what was tried (issue 22)\n\n"
                 "    python -m benchmarks.conv_attempts --flags --write   # needs torch\n\n"))


if __name__ == "__main__":
  main()
