"""The accelerator check: what it runs on, whether it is right there, and how fast beside PyTorch.

    python -m benchmarks.device                    # on an accelerator: writes to $OUT
    python -m benchmarks.device --tiny --out DIR   # CPU, tiny sizes (tests/test_device_benchmark.py)
    python -m benchmarks.device --write-reference  # CPU: the reference values it compares with

One command for the few minutes of GPU a piece of work may get (README.md,
"Performance", gives the exact call with what it carries). It writes
``device.json`` (every number) and ``device.md`` (the Markdown for the GPU
section of benchmarks/README.md) to ``--out`` (default ``$OUT``) after
every part, so a run cut short keeps what it finished. Each part runs in a
``try``: a failure is recorded as that part's error and the next part runs.
A time budget (``--budget-s``, 360 s by default: under the issue's 8
minutes, and leaving a GPU session's 15 minutes room for a shorter rerun) is
shared out: a part that would start too late is skipped with the reason, and
the mutant paths shrink their image counts to their share.

Parts, in order:

1. ``environment``: devices, versions, the code paths chosen on this backend.
2. Correctness on the device:

   * ``accuracy``: the committed ResNet-20 (experiments/checkpoints/
     resnet20_cifar10) on the paper split's test half of the CIFAR-10 test set
     (the JPEG-decoded copy, ``cifar10_test.npz``), against the CPU figure in
     its ``result.json``, within 0.1 point;
   * ``convergence``: integrated gradients' and layer conductance's
     convergence deltas (``sum of attributions - (F(x) - F(0))``) at our
     default precision (``"highest"``) and at the backend's default (TF32 on
     recent NVIDIA GPUs), against the CPU values of device_reference.json;
   * ``loss_curve``: a short training run (float32 and bfloat16 mixed
     precision) against the CPU run's loss per step in device_reference.json;
   * ``mutant_predictions``: the default path of ``mutant_predictions``
     equals a loop over the mutants (both at ``"highest"`` precision).

3. Speed, each against PyTorch in the same process (CUDA on a GPU):
   ``peak`` (measured matmul peaks, and the chip's nominal ones where known),
   ``train_step`` (float32 and bfloat16 mixed precision; forward pass),
   ``mutant_paths`` (every path of ``mutant_predictions`` and the default,
   beside a JAX loop and a PyTorch loop), ``attribution`` (integrated
   gradients and layer conductance beside Captum), ``second_order``
   (insecurity maps beside the naive per-location Hessian loop). Every row
   gives FLOP/s from XLA's cost analysis against the measured peak.
4. ``tests``: a subset of the test suite with JAX on the device (its log is
   ``tests.log``).

The timing and comparison code is the CPU benchmarks' (train_step.py,
attribution.py, deliberative.py, torch_resnet.py), given a device and sizes.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
  # Before jax starts: PyTorch and the test subset's processes share the GPU.
  os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.5")

import argparse
import dataclasses
import datetime
import functools
import importlib.metadata
import json
import math
import platform
import re
import subprocess
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import attribution as attribution_bench
from benchmarks import deliberative as deliberative_bench
from benchmarks import train_step as train_step_bench
from explicable_jax import attribution, data, losses, models, mutation, training
from explicable_jax.models import conv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, "experiments", "checkpoints", "resnet20_cifar10")
REFERENCE = os.path.join(ROOT, "benchmarks", "device_reference.json")
CIFAR_TEST_FILE = "cifar10_test.npz"

#: Dense (no sparsity) peaks from NVIDIA's datasheets, TFLOP/s, by device
#: name; the measured peaks of the ``peak`` part are what fractions use first.
NOMINAL_TFLOPS = {
    "H200": {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4},
    "H100": {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4},
}

ACCURACY_TOLERANCE = 0.001   # 0.1 point, the issue's
DELTA_TOLERANCE = 1e-3       # |delta - CPU delta| / |F(x) - F(0)|, at "highest"
CURVE_TOLERANCE = 0.10       # |loss - CPU loss| / CPU loss, every step
AGREEMENT_MINIMUM = 0.999    # mutant predictions equal to the loop's


@dataclasses.dataclass(frozen=True)
class Sizes:
  """How much each part does."""
  name: str
  model: str
  model_kwargs: dict
  input_shape: tuple
  accuracy_images: int | None   # None: the whole test half (5000)
  delta_images: int
  ig_steps: int
  conductance_steps: int
  conductance_layer: str
  curve_steps: int
  curve_batch: int
  curve_lr: float
  train_batches: tuple
  repeats: int
  mutants: int
  mutant_rate: float
  mutant_images: int
  mutant_chunk: int
  mutant_batch: int
  attribution_batch: int
  second_order: dict
  peak_size: int
  tests: tuple
  budget_s: float
  mutant_paths: tuple | None = None   # None: every path (MUTANT_PATHS)


FULL = Sizes(
    name="full", model="resnet20", model_kwargs={}, input_shape=(32, 32, 3),
    accuracy_images=None, delta_images=32, ig_steps=50, conductance_steps=50,
    conductance_layer="layer3.1", curve_steps=30, curve_batch=128, curve_lr=0.05,
    train_batches=(128, 1024), repeats=10, mutants=100, mutant_rate=0.01,
    mutant_images=10000, mutant_chunk=10, mutant_batch=500, attribution_batch=64,
    second_order={"batch_size": 8, "top_k": 5, "chunk": 7, "naive_positions": 2},
    peak_size=8192,
    tests=("tests/test_conv.py", "tests/test_mixed_precision.py", "tests/test_attribution.py",
           "tests/test_captum_ported.py", "tests/test_mutation.py", "tests/test_training.py",
           "tests/test_models.py", "tests/test_deliberative.py"),
    budget_s=360.0)

TINY = Sizes(
    name="tiny", model="resnet", model_kwargs={"depth": 8, "widths": (4, 8, 8)},
    input_shape=(8, 8, 3), accuracy_images=100, delta_images=2, ig_steps=4,
    conductance_steps=4, conductance_layer="layer2.0", curve_steps=4, curve_batch=8,
    curve_lr=0.05, train_batches=(8,), repeats=2, mutants=4, mutant_rate=0.1,
    mutant_images=16, mutant_chunk=2, mutant_batch=8, attribution_batch=2,
    second_order={"batch_size": 1, "top_k": 2, "chunk": 4, "naive_positions": 1, "size": 4,
                  "channels": 4, "hidden": 8, "classes": 5},
    peak_size=128,
    tests=("tests/test_benchmark_suite.py::test_rows_missing_a_field_are_refused",),
    budget_s=300.0,
    # Both strategies and prefix sharing, without compiling every combination.
    mutant_paths=("default", "vmap, full passes", "map, convolution starts"))

#: Seconds a part needs at least to be started (full sizes), and the largest
#: share of the budget it may take; the test subset gets what is left.
PART_TIMES = {
    "environment": (0, 15), "peak": (5, 20), "accuracy": (10, 30), "convergence": (15, 45),
    "loss_curve": (15, 45), "mutant_predictions": (10, 30), "train_step": (20, 80),
    "attribution": (20, 70), "mutant_paths": (30, 120), "second_order": (15, 45),
    "tests": (30, 150),
}


_SMALL_RUN = {"on": False}


class Skip(Exception):
  """A part that cannot run here (no data, no PyTorch); the message says why."""


class Context:
  """What the parts share: sizes, the clock, the data folder, results so far."""

  def __init__(self, sizes: Sizes, data_dir: str | None, reference: dict | None,
               budget_s: float):
    self.sizes, self.data_dir, self.reference = sizes, data_dir, reference
    self.t0, self.budget_s = time.time(), budget_s
    self.results: dict = {}
    self.part_deadline = float("inf")

  def left(self) -> float:
    return self.budget_s - (time.time() - self.t0)

  def part_left(self) -> float:
    return min(self.left(), self.part_deadline - time.time())

  @property
  def backend(self) -> str:
    return jax.default_backend()

  @property
  def torch_device(self) -> str:
    return "cpu" if self.backend == "cpu" else "cuda"

  def peak(self, which: str) -> float | None:
    return self.results.get("peak", {}).get("measured_gflops", {}).get(which)


def _check(name: str, value, limit, ok: bool) -> dict:
  return {"check": name, "value": value, "limit": limit, "ok": bool(ok)}


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def _torch():
  try:
    import torch
  except ImportError:
    raise Skip("PyTorch is not installed (pip install -e '.[bench]')") from None
  if jax.default_backend() != "cpu":
    if not torch.cuda.is_available():
      raise Skip("PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = True  # the peer at its best settings
  elif _SMALL_RUN["on"]:
    torch.set_num_threads(1)  # tiny work: threads only spin
  return torch


# -- data --------------------------------------------------------------------


def cifar10_test(folder: str | None) -> data.Dataset:
  """The CIFAR-10 test set from ``folder/cifar10_test.npz`` alone (the one
  CIFAR file that travels to the device machine; ``data.load`` also wants
  the training batches)."""
  path = os.path.join(folder, CIFAR_TEST_FILE) if folder else None
  if not path or not os.path.exists(path):
    raise Skip(f"no {CIFAR_TEST_FILE} in --data-dir / $EXPLICABLE_JAX_DATA ({folder!r})")
  with np.load(path) as f:
    x, y = f["x"].astype(np.uint8), f["y"].astype(np.int32)
  return data.Dataset(x, y, 10, data.CIFAR10_CLASSES, "cifar10", note=data.JPEG_CAVEAT)


def _halves(ctx: Context) -> dict[str, data.Dataset]:
  test = cifar10_test(ctx.data_dir)
  idx = data.paper_split_indices(len(test), seed=0)
  return {k: test.take(v) for k, v in idx.items()}


def _synthetic(n: int, shape, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Images in [0, 1) and labels a fixed linear rule of them (learnable)."""
  rng = np.random.default_rng(seed)
  x = rng.random((n, *shape), np.float32)
  w = rng.standard_normal((int(np.prod(shape)), 10)).astype(np.float32)
  return x, np.argmax(x.reshape(n, -1) @ w, -1).astype(np.int32)


@functools.cache
def _committed() -> models.Classifier:
  return models.load(os.path.join(CHECKPOINT, "model"))


_NETWORKS: dict = {}


def _network(sizes: Sizes) -> models.Classifier:
  """The random-weights network of ``sizes``, built once (building checks
  the model contract eagerly, which costs seconds on CPU)."""
  if sizes.name not in _NETWORKS:
    _NETWORKS[sizes.name] = models.classifier(
        jax.random.key(0), sizes.model, input_shape=sizes.input_shape, num_classes=10,
        **sizes.model_kwargs)
  return _NETWORKS[sizes.name]


# -- 1. environment ------------------------------------------------------------


def part_environment(ctx: Context) -> dict:
  out = {"backend": ctx.backend, "python": platform.python_version(),
         "machine": f"{platform.machine()}, {os.cpu_count()} cores",
         "devices": [{"id": d.id, "platform": d.platform, "kind": d.device_kind}
                     for d in jax.devices()],
         "versions": {p: _version(p) for p in (
             "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax",
             "orbax-checkpoint", "chex", "numpy", "torch", "captum", "scikit-learn")},
         "code_paths": {
             "mutant_predictions default": dataclasses.asdict(mutation.default_mutant_path()),
             "conv kernel gradient (models.conv.KERNEL_GRAD)": conv.KERNEL_GRAD,
             "tap-wise kernel-gradient rule active": bool(
                 conv.KERNEL_GRAD != "xla" and ctx.backend == "cpu"),
             "attribution precision": attribution.get_precision()},
         "env": {k: v for k, v in os.environ.items()
                 if k.startswith(("XLA_", "JAX_", "EXPLICABLE_JAX", "CUDA_VISIBLE"))}}
  try:
    import torch
    out["torch"] = {"cuda": torch.cuda.is_available(), "cuda_version": torch.version.cuda,
                    "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "threads": torch.get_num_threads()}
  except ImportError:
    out["torch"] = None
  try:
    smi = subprocess.run(["nvidia-smi", ("--query-gpu=name,driver_version,memory.total,"
                                         "clocks.max.sm"), "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20, check=False)
    out["nvidia_smi"] = smi.stdout.strip() or None
  except (OSError, subprocess.SubprocessError):
    out["nvidia_smi"] = None
  return out


# -- 2. correctness ----------------------------------------------------------------


def part_accuracy(ctx: Context) -> dict:
  halves = _halves(ctx)
  test = halves["test"]
  n = ctx.sizes.accuracy_images or len(test)
  test = test.take(slice(0, n))
  ev = training.evaluate(_committed(), test, batch_size=min(500, n))
  out = {"images": n, "accuracy": ev["accuracy"], "loss": ev["loss"], "note": test.note}
  if ctx.sizes.accuracy_images is None:
    with open(os.path.join(CHECKPOINT, "result.json")) as f:
      ref = json.load(f)["test"]["accuracy"]
    source = "experiments/checkpoints/resnet20_cifar10/result.json (CPU, 5000 images)"
  else:
    ref = (ctx.reference or {}).get("accuracy")
    source = "device_reference.json (CPU)"
  out["cpu_accuracy"], out["cpu_source"] = ref, source
  if ref is not None:
    out["checks"] = [_check("test-half accuracy equals the CPU figure",
                            abs(ev["accuracy"] - ref), ACCURACY_TOLERANCE,
                            abs(ev["accuracy"] - ref) <= ACCURACY_TOLERANCE)]
  return out


def _delta_setup(ctx: Context):
  """The classifier and images whose deltas are compared: the committed
  ResNet-20 on validation-half images at full size, a random small network
  on generated images at the tiny size."""
  s = ctx.sizes
  if s.name == "full":
    val = _halves(ctx)["validation"]
    return _committed(), training.to_float(jnp.asarray(val.x[:s.delta_images]))
  return _network(s), jnp.asarray(_synthetic(s.delta_images, s.input_shape)[0])


def deltas(clf: models.Classifier, x, sizes: Sizes, precision) -> dict:
  """Per-image convergence deltas of integrated gradients (Gauss-Legendre)
  and layer conductance (trapezoid, every step) at ``precision``, traced
  afresh (the precision is read when a method is traced)."""
  with jax.default_matmul_precision("highest"):
    logits = jax.jit(clf.logits)
    scores = logits(x)
    target = jnp.argmax(scores, -1)
    gap = (jnp.take_along_axis(scores, target[:, None], 1)[:, 0]
           - jnp.take_along_axis(logits(jnp.zeros_like(x)), target[:, None], 1)[:, 0])
  with attribution.precision(precision):
    ig = jax.jit(jax.vmap(lambda xi, t: attribution.integrated_gradients(
        attribution.class_score_fn(clf.logits, t), xi, n_steps=sizes.ig_steps,
        method="gausslegendre", return_convergence_delta=True)[1]))
    features_fn, head_fn = clf.split(sizes.conductance_layer)
    cond = jax.jit(lambda x, t: attribution.layer_conductance(
        features_fn, head_fn, x, target=t, n_steps=sizes.conductance_steps,
        method="riemann_trapezoid", return_convergence_delta=True,
        shortcut_affine_head=False)[1])
    return {"gap": np.asarray(gap).tolist(), "ig": np.asarray(ig(x, target)).tolist(),
            "conductance": np.asarray(cond(x, target)).tolist()}


def part_convergence(ctx: Context) -> dict:
  clf, x = _delta_setup(ctx)
  out = {"images": int(x.shape[0]), "ig_steps": ctx.sizes.ig_steps,
         "conductance_steps": ctx.sizes.conductance_steps,
         "conductance_layer": ctx.sizes.conductance_layer, "precisions": {}}
  # On CPU the backend's default is float32 products already: one program.
  for name, precision in (("highest", "highest"), ("backend default", None))[
      :1 if ctx.backend == "cpu" else 2]:
    d = deltas(clf, x, ctx.sizes, precision)
    gap = np.abs(np.array(d["gap"]))
    out["precisions"][name] = {
        **d, **{f"{k}_relative_median": float(np.median(np.abs(d[k]) / gap))
                for k in ("ig", "conductance")},
        **{f"{k}_relative_max": float(np.max(np.abs(d[k]) / gap)) for k in ("ig", "conductance")}}
  ref = (ctx.reference or {}).get("deltas")
  if ref is not None:
    mine, gap = out["precisions"]["highest"], np.abs(np.array(ref["gap"]))
    out["checks"] = []
    for k in ("ig", "conductance"):
      dev = float(np.max(np.abs(np.array(mine[k]) - np.array(ref[k])) / gap))
      out[f"{k}_cpu_relative_median"] = float(np.median(np.abs(ref[k]) / gap))
      out["checks"].append(_check(f"{k} delta at 'highest' equals the CPU's (per image, "
                                  "relative to |F(x) - F(0)|)", dev, DELTA_TOLERANCE,
                                  dev <= DELTA_TOLERANCE))
  return out


def loss_curve(ctx: Context, compute_dtype: str) -> list[float]:
  """Loss per step of a short run from fixed weights on fixed batches, in order."""
  s = ctx.sizes
  n = s.curve_steps * s.curve_batch
  if s.name == "full":
    val = _halves(ctx)["validation"]
    x, y = val.x[:n], val.y[:n]
    clf = _network(s)
  else:
    x, y = _synthetic(n, s.input_shape, seed=1)
    clf = _network(s)
  opt = optax.sgd(s.curve_lr, momentum=0.9)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  step = jax.jit(training.make_train_step(losses.cross_entropy_loss, opt,
                                          compute_dtype=compute_dtype))
  out = []
  for i in range(s.curve_steps):
    b = slice(i * s.curve_batch, (i + 1) * s.curve_batch)
    state, m = step(state, {"x": jnp.asarray(x[b]), "y": jnp.asarray(y[b])})
    out.append(m["loss"])
  return [float(v) for v in jax.device_get(out)]


def part_loss_curve(ctx: Context) -> dict:
  out = {"steps": ctx.sizes.curve_steps, "batch": ctx.sizes.curve_batch, "curves": {},
         "checks": []}
  for dtype in training.COMPUTE_DTYPES:
    curve = loss_curve(ctx, dtype)
    out["curves"][dtype] = curve
    ref = ((ctx.reference or {}).get("loss_curve") or {}).get(dtype)
    if ref is None:
      continue
    rel = np.abs(np.array(curve) - np.array(ref)) / np.abs(np.array(ref))
    out[f"{dtype}_cpu_curve"] = ref
    out[f"{dtype}_max_relative_difference"] = float(rel.max())
    out[f"{dtype}_first_step_relative_difference"] = float(rel[0])
    out["checks"].append(_check(f"{dtype} loss curve matches the CPU run's (every step)",
                                float(rel.max()), CURVE_TOLERANCE, rel.max() <= CURVE_TOLERANCE))
  return out


def _mutant_setup(ctx: Context, n_images: int):
  """A random-weights network, images in [0, 1] (CIFAR-10 test images at
  full size; the speed does not depend on the pixels), its NAI mutants."""
  s = ctx.sizes
  clf = _network(s)
  x = None
  if s.name == "full":
    try:
      x = training.to_float(cifar10_test(ctx.data_dir).x[:n_images])
    except Skip:
      pass
  if x is None:
    x = _synthetic(n_images, s.input_shape)[0]
  mutants = mutation.mutate_many(jax.random.key(1), clf.params, s.mutants, "NAI",
                                 s.mutant_rate)
  return clf, np.asarray(x, np.float32), jax.block_until_ready(mutants)


def _loop_fn(clf):
  """The hand-written loop's one jitted forward, ``(params, batch) -> classes``."""
  return jax.jit(lambda p, xb: jnp.argmax(clf.logits_with(p, xb), -1))


def _loop_predictions(fwd, mutants, x, batch: int) -> np.ndarray:
  """The hand-written loop: ``fwd`` (:func:`_loop_fn`) per mutant and batch."""
  n = len(jax.tree.leaves(mutants)[0])
  out = np.empty((n, len(x)), np.int32)
  for i in range(n):
    mi = jax.tree.map(lambda a, i=i: a[i], mutants)
    for b in range(0, len(x), batch):
      out[i, b:b + batch] = np.asarray(fwd(mi, jnp.asarray(x[b:b + batch])))
  return out


def part_mutant_predictions(ctx: Context) -> dict:
  s = ctx.sizes
  n = min(s.mutant_images, 2 * s.mutant_batch)
  if s.name == "full":  # the trained model: predictions worth comparing
    clf = _committed()
    x = np.asarray(training.to_float(_halves(ctx)["validation"].x[:n]), np.float32)
  else:
    clf, x = _network(s), _synthetic(n, s.input_shape)[0]
  mutants = mutation.mutate_many(jax.random.key(1), clf.params, s.mutants, "NAI",
                                 s.mutant_rate)
  with jax.default_matmul_precision("highest"):
    ours = mutation.mutant_predictions(clf, mutants, x, mutant_chunk=s.mutant_chunk,
                                       batch_size=s.mutant_batch)
    fwd = _loop_fn(clf)
    loop = _loop_predictions(fwd, mutants, x, s.mutant_batch)
    original = _loop_predictions(fwd, jax.tree.map(lambda a: a[None], clf.params), x,
                                 s.mutant_batch)
  agree = float(np.mean(ours == loop))
  return {"mutants": s.mutants, "images": n, "path": dataclasses.asdict(
      mutation.default_mutant_path()), "agreement": agree,
      "disagreeing_pairs": int(np.sum(ours != loop)),
      # Pairs whose label the mutation changed: the comparison is not trivial.
      "changed_by_mutation": float(np.mean(loop != original)),
      "checks": [_check("default path's predictions equal the per-mutant loop's",
                        agree, AGREEMENT_MINIMUM, agree >= AGREEMENT_MINIMUM)]}


# -- 3. speed ------------------------------------------------------------------------


def part_peak(ctx: Context) -> dict:
  size = ctx.sizes.peak_size
  with jax.default_matmul_precision("highest"):
    f32_highest = attribution_bench.matmul_peak_gflops(size)
  measured = {"float32 highest": f32_highest,
              "float32 default": attribution_bench.matmul_peak_gflops(size),
              "bfloat16": attribution_bench.matmul_peak_gflops(size, dtype=jnp.bfloat16)}
  kind = jax.devices()[0].device_kind
  nominal = next((v for k, v in NOMINAL_TFLOPS.items() if k in kind), None)
  return {"size": size, "measured_gflops": measured, "device_kind": kind,
          "nominal_tflops": nominal,
          "rows": [{"what": f"{k} matmul {size}x{size}", "TFLOP/s": v / 1e3}
                   for k, v in measured.items()]}


def _fraction(rate_per_s, flops_per_item, peak_gflops):
  if not (flops_per_item and peak_gflops):
    return None
  return rate_per_s * flops_per_item / 1e9 / peak_gflops


def part_train_step(ctx: Context) -> dict:
  s, torch_ok = ctx.sizes, True
  try:
    _torch()
  except Skip:
    torch_ok = False
  torch_kw = {"blocks_per_stage": (s.model_kwargs.get("depth", 20) - 2) // 6,
              "widths": s.model_kwargs.get("widths", (16, 32, 64)),
              "input_shape": s.input_shape}
  rows = []
  for batch in s.train_batches:
    if ctx.part_left() < 5:
      break
    ours = {d: train_step_bench.jax_rows(batch, s.repeats, conv.KERNEL_GRAD, compute_dtype=d,
                                          model=s.model, model_kwargs=s.model_kwargs,
                                          input_shape=s.input_shape, count_flops=True)
            for d in training.COMPUTE_DTYPES}
    peer = ({d: train_step_bench.torch_rows(batch, s.repeats, device=ctx.torch_device,
                                            autocast=d == "bfloat16", **torch_kw)
             for d in training.COMPUTE_DTYPES} if torch_ok else {})
    for what, dtype, key, peak in (
        ("train step", "float32", "train", "float32 default"),
        ("train step", "bfloat16", "train", "bfloat16"),
        ("forward", "float32", "forward", "float32 default")):
      mine = ours[dtype][key]
      theirs = peer[dtype][key] if peer else None
      flops = ours[dtype]["flops"].get(key)
      rows.append({"what": f"{what}, {dtype}", "batch": batch, "ours img/s": mine,
                   "PyTorch img/s": theirs, "ratio": mine / theirs if theirs else None,
                   "MFLOP/img": flops / 1e6 if flops else None,
                   "TFLOP/s": mine * flops / 1e12 if flops else None,
                   "of measured peak": _fraction(mine, flops, ctx.peak(peak)),
                   "peak": peak})
  return {"rows": rows, "torch": torch_ok,
          "note": "PyTorch: float32 (cuDNN convolutions may use TF32, its default) and "
                  "torch.autocast bfloat16; cudnn.benchmark on. Ours: make_train_step "
                  "(compute_dtype), default matmul precision."}


def part_attribution(ctx: Context) -> dict:
  s = ctx.sizes
  peak = ctx.peak("float32 highest")
  model, x, target, rates, fractions, outputs = attribution_bench.jax_side(
      s.attribution_batch, s.repeats, peak or float("nan"), model=s.model,
      model_kwargs=s.model_kwargs, input_shape=s.input_shape)
  if not peak:  # no peak measured in this run
    fractions = dict.fromkeys(fractions)
  out = {"batch": s.attribution_batch, "precision": attribution.get_precision(), "rows": []}
  peers = {}
  try:
    torch = _torch()
    for tf32 in ((False, True) if ctx.torch_device == "cuda" else (False,)):
      if ctx.torch_device == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
      peers["Captum" + (", TF32" if tf32 else "")] = attribution_bench.torch_side(
          model, x, target, s.attribution_batch, s.repeats, device=ctx.torch_device)
    if ctx.torch_device == "cuda":
      torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
  except Skip as e:
    out["peer"] = str(e)
  if peers and not any(peers.values()):
    out["peer"] = "Captum is not installed (pip install captum)"
  labels = {("conductance", "riemann_right"): "layer conductance n=10 riemann_right",
            ("conductance", "gausslegendre"): "layer conductance n=10 gausslegendre",
            ("ig", "gausslegendre"): "integrated gradients n=50 gausslegendre"}
  for (kind, method), label in labels.items():
    for shortcut in ((True, False) if kind == "conductance" else (False,)):
      row = {"what": label + (", all steps" if kind == "conductance" and not shortcut else ""),
             "ours img/s": rates[(kind, method, shortcut)],
             "of measured peak": fractions[(kind, method, shortcut)]}
      for name, peer in peers.items():
        if peer:
          theirs = peer["rates"][(kind, method)]
          row[f"{name} img/s"], row[f"ratio vs {name}"] = theirs, row["ours img/s"] / theirs
      out["rows"].append(row)
  for name, peer in peers.items():
    if peer:
      out[f"relative error vs {name}"] = {
          "conductance riemann_left vs riemann_trapezoid": attribution_bench._relative_error(
              outputs["riemann_left"], peer["outputs"]["riemann_trapezoid"]),
          "conductance gausslegendre": attribution_bench._relative_error(
              outputs[("conductance", "gausslegendre", True)],
              peer["outputs"][("conductance", "gausslegendre")]),
          "integrated gradients": attribution_bench._relative_error(
              outputs[("ig", "gausslegendre", False)], peer["outputs"][("ig", "gausslegendre")])}
  out["note"] = ("Ours at attribution precision 'highest' (float32 products); 'Captum' with "
                 "TF32 off (float32, the same arithmetic), 'Captum, TF32' with PyTorch's "
                 "default cuDNN TF32 convolutions.")
  return out


MUTANT_PATHS = (
    ("default", {}),
    ("vmap, full passes", {"strategy": "vmap", "share_prefix": False}),
    ("map, full passes", {"strategy": "map", "share_prefix": False}),
    ("vmap, block starts", {"strategy": "vmap", "share_prefix": "layers"}),
    ("map, block starts", {"strategy": "map", "share_prefix": "layers"}),
    ("vmap, convolution starts", {"strategy": "vmap", "share_prefix": True}),
    ("map, convolution starts", {"strategy": "map", "share_prefix": True}),
)


def _sized(ctx: Context, run, n_total: int, batch: int, share: float):
  """``run(n)`` on a whole number of batches that fits ``share`` seconds,
  judged from a timed call on one batch (after a compiling one)."""
  run(batch)  # compiles
  t = time.perf_counter()
  run(batch)
  per_batch = max(time.perf_counter() - t, 1e-6)
  n = int(min(n_total, max(1, share // per_batch) * batch))
  t = time.perf_counter()
  preds = run(n)
  return preds, n, time.perf_counter() - t


def part_mutant_paths(ctx: Context) -> dict:
  s = ctx.sizes
  clf, x, mutants = _mutant_setup(ctx, s.mutant_images)
  n_mut = s.mutants
  flops = attribution_bench._flops(jax.jit(clf.logits), jnp.asarray(x[:s.mutant_batch]))
  per_image = flops / s.mutant_batch if flops else None
  peak = ctx.peak("float32 default")
  rows, preds = [], {}
  paths = [p for p in MUTANT_PATHS if s.mutant_paths is None or p[0] in s.mutant_paths]
  # The default and the peers first: what the goal compares.
  todo = paths[:1] + [("PyTorch loop over mutants", None), ("JAX loop over mutants", None)] + (
      paths[1:])
  for i, (name, options) in enumerate(todo):
    share = ctx.part_left() / (len(todo) - i) - 2
    if share < 1:
      rows.append({"path": name, "skipped": "out of time"})
      continue
    try:
      if options is not None:
        run = lambda n, o=options: mutation.mutant_predictions(
            clf, mutants, x[:n], mutant_chunk=s.mutant_chunk, batch_size=s.mutant_batch, **o)
      elif name.startswith("JAX"):
        fwd = _loop_fn(clf)
        run = lambda n, fwd=fwd: _loop_predictions(fwd, mutants, x[:n], s.mutant_batch)
      else:
        run = _torch_loop(ctx, clf, mutants, x, s.mutant_batch)
      p, n, seconds = _sized(ctx, run, len(x), s.mutant_batch, share)
    except Skip as e:
      rows.append({"path": name, "skipped": str(e)})
      continue
    preds[name] = p
    rate = n_mut * n / seconds
    rows.append({"path": name, "images": n, "seconds": seconds, "img x mutants/s": rate,
                 "of measured peak": _fraction(rate, per_image, peak)})
  loop = preds.get("JAX loop over mutants")
  torch_rate = next((r["img x mutants/s"] for r in rows
                     if r["path"].startswith("PyTorch") and "img x mutants/s" in r), None)
  jax_loop_rate = next((r["img x mutants/s"] for r in rows
                        if r["path"].startswith("JAX") and "img x mutants/s" in r), None)
  for r in rows:
    if "img x mutants/s" not in r:
      continue
    r["vs PyTorch loop"] = r["img x mutants/s"] / torch_rate if torch_rate else None
    r["vs JAX loop"] = r["img x mutants/s"] / jax_loop_rate if jax_loop_rate else None
    if loop is not None and r["path"] in preds:
      k = min(loop.shape[1], preds[r["path"]].shape[1])
      r["agreement with JAX loop"] = float(np.mean(preds[r["path"]][:, :k] == loop[:, :k]))
  timed = [r for r in rows if "img x mutants/s" in r and r["path"] in dict(MUTANT_PATHS)
           and r["path"] != "default"]
  fastest = max(timed, key=lambda r: r["img x mutants/s"])["path"] if timed else None
  return {"mutants": n_mut, "images": len(x),
          "operator": f"NAI, rate {s.mutant_rate} on conv filters",
          "mutant_chunk": s.mutant_chunk, "batch_size": s.mutant_batch,
          "default": dataclasses.asdict(mutation.default_mutant_path()),
          "fastest": fastest, "MFLOP/img": per_image / 1e6 if per_image else None, "rows": rows}


def _torch_loop(ctx: Context, clf, mutants, x, batch: int):
  """PyTorch's loop: each mutant's weights copied into one network (as the
  authors' code loads one model per mutant), batches on the device."""
  torch = _torch()
  from benchmarks.torch_resnet import copy_from_flax, like_flax
  module = clf.module()
  net = like_flax(module).eval()
  dev = ctx.torch_device
  if module.input_mean is not None:  # the torch network takes standardised images
    x = (x - np.array(module.input_mean, np.float32)) / np.array(module.input_std, np.float32)
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(dev)
  n_mut = len(jax.tree.leaves(mutants)[0])
  host = jax.device_get(mutants)

  def run(n):
    out = []
    with torch.inference_mode():
      for i in range(n_mut):
        copy_from_flax(net, clf.with_params(jax.tree.map(lambda a, i=i: a[i], host)).module())
        net.to(dev)
        out.append(torch.cat([net(xt[b:min(b + batch, n)]).argmax(1)
                              for b in range(0, n, batch)]))
      return torch.stack(out).cpu().numpy()
  return run


def part_second_order(ctx: Context) -> dict:
  s = ctx.sizes
  res = deliberative_bench.run(**s.second_order, peak=ctx.peak("float32 highest"))
  frac = res["flops"] / res["ours_s"] / 1e9 / res["peak"] if res["flops"] and res["peak"] else None
  return {**{k: v for k, v in res.items()}, "rows": [{
      "what": f"insecurity maps, batch {res['batch_size']}, {res['size']}x{res['size']}x"
              f"{res['channels']}, top-{res['top_k']} + difficulty",
      "ours s": res["ours_s"], "naive loop s (extrapolated)": res["naive_s"],
      "ratio": res["naive_s"] / res["ours_s"], "of measured peak": frac,
      "relative difference of the quadratic terms": res["rel"]}]}


# -- 4. the test subset -------------------------------------------------------------


_RESULT = re.compile(r"(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")
_NODE = re.compile(r"(tests/\S+?\.py::\S+)")


def part_tests(ctx: Context, out_dir: str) -> dict:
  timeout = max(10.0, ctx.part_left() - 5)
  env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
         "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
  env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
  if ctx.data_dir:
    env["EXPLICABLE_JAX_DATA"] = ctx.data_dir
  try:
    import torch
    torch.cuda.empty_cache()
  except ImportError:
    pass
  cmd = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *ctx.sizes.tests]
  if ctx.backend != "cpu" and (os.cpu_count() or 1) >= 8:
    cmd[3:3] = ["-n", "4"]
  t = time.time()
  try:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    log, rc, timed_out = proc.stdout + proc.stderr, proc.returncode, False
  except subprocess.TimeoutExpired as e:
    log = ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes)
           else (e.stdout or "")) + ((e.stderr or b"").decode(errors="replace")
                                     if isinstance(e.stderr, bytes) else (e.stderr or ""))
    rc, timed_out = None, True
  with open(os.path.join(out_dir, "tests.log"), "w") as f:
    f.write(" ".join(cmd) + "\n" + log)
  status: dict[str, str] = {}
  for line in log.splitlines():
    node, result = _NODE.search(line), _RESULT.search(line)
    if node and result and "::" in node.group(1):
      status[node.group(1)] = result.group(1)
  counts = {k: sum(v == k for v in status.values()) for k in sorted(set(status.values()))}
  failed = sorted(k for k, v in status.items() if v in ("FAILED", "ERROR"))
  out = {"command": " ".join(cmd[1:]), "seconds": time.time() - t, "returncode": rc,
         "timed_out": timed_out, "counts": counts, "failed": failed,
         "rows": [{"result": k, "tests": v} for k, v in counts.items()]}
  out["checks"] = [_check("test subset passes on this backend", len(failed), 0,
                          not failed and (rc == 0 or timed_out))]
  return out


# -- the run -------------------------------------------------------------------------


PARTS = ("environment", "peak", "accuracy", "convergence", "loss_curve", "mutant_predictions",
         "train_step", "attribution", "mutant_paths", "second_order", "tests")


def _fmt(v) -> str:
  if v is None:
    return "n/a"
  if isinstance(v, bool):
    return "yes" if v else "**no**"
  if isinstance(v, float):
    if math.isnan(v):
      return "nan"
    if v == 0 or 1e-3 <= abs(v) < 1e5:
      return f"{v:.4g}"
    return f"{v:.2e}"
  return str(v)


def _table(rows: list[dict]) -> list[str]:
  cols = []
  for r in rows:
    cols += [k for k in r if k not in cols]
  lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
  for r in rows:
    cells = []
    for c in cols:
      v = r.get(c)
      cells.append(f"{100 * v:.1f}%" if c.startswith("of ") and isinstance(v, float)
                   else _fmt(v) if c in r else "")
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def markdown(result: dict) -> str:
  """The GPU section's Markdown from ``device.json``'s content."""
  meta, parts = result["meta"], result["parts"]
  env = parts.get("environment", {})
  devices = ", ".join(sorted({d["kind"] for d in env.get("devices", [])})) or "?"
  lines = [(f"{meta['date']}, {devices}, jax {meta['jax']} ({meta['backend']}), "
            f"torch {env.get('versions', {}).get('torch')}; `{meta['command']}` "
            f"({meta['sizes']} sizes), {meta['seconds']:.0f} s of a {meta['budget_s']:.0f} s "
            "budget."), ""]
  checks = [(name, c) for name, p in parts.items() for c in p.get("checks", [])]
  if checks:
    lines += ["| part | check | value | limit | passed |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {c['check']} | {_fmt(c['value'])} | {_fmt(c['limit'])} | "
              f"{_fmt(c['ok'])} |" for name, c in checks]
  for name in PARTS:
    if name not in parts:
      continue
    p = parts[name]
    lines += ["", f"#### {name}", ""]
    if p["status"] != "ok":
      lines.append(f"{p['status']}: {p.get('error', '')}".strip())
      continue
    if name == "environment":
      lines.append(f"* devices: {devices} ({len(p['devices'])}); nvidia-smi: "
                   f"{p.get('nvidia_smi')}; torch: {p.get('torch')}")
      lines.append("* versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items() if v))
      lines += [f"* {k}: {v}" for k, v in p["code_paths"].items()]
      continue
    if p.get("rows"):
      lines += _table(p["rows"])
    for k, v in p.items():
      if k in ("rows", "checks", "status", "seconds", "cpu_seconds", "curves",
               "precisions") or k.endswith(
          "_curve") or isinstance(v, (list, dict)) and k != "default":
        continue
      lines.append(f"* {k}: {_fmt(v)}")
    if name == "convergence":
      for prec, d in p["precisions"].items():
        lines.append(f"* at {prec}: median |delta| / |F(x) - F(0)|: integrated gradients "
                     f"{_fmt(d['ig_relative_median'])}, conductance "
                     f"{_fmt(d['conductance_relative_median'])} (max "
                     f"{_fmt(d['ig_relative_max'])}, {_fmt(d['conductance_relative_max'])})")
    if name == "loss_curve":
      for dtype, curve in p["curves"].items():
        lines.append(f"* {dtype}: loss {curve[0]:.4f} -> {curve[-1]:.4f}"
                     + (f" (CPU {p[f'{dtype}_cpu_curve'][0]:.4f} -> "
                        f"{p[f'{dtype}_cpu_curve'][-1]:.4f})" if f"{dtype}_cpu_curve" in p else ""))
    if name == "tests" and p.get("failed"):
      lines.append("* failed: " + ", ".join(f"`{t}`" for t in p["failed"][:30]))
  return "\n".join(lines)


def _budgets(sizes: Sizes, budget_s: float) -> dict[str, tuple[float, float]]:
  """(seconds needed to start, most seconds) per part, scaled to the budget."""
  scale = budget_s / FULL.budget_s
  return {k: (lo * scale if sizes.name == "full" else 0.0, hi * scale)
          for k, (lo, hi) in PART_TIMES.items()}


def run(sizes: Sizes, out_dir: str, *, data_dir: str | None, budget_s: float,
        only=None, reference: dict | None = None, command: str = "") -> dict:
  os.makedirs(out_dir, exist_ok=True)
  _SMALL_RUN["on"] = sizes.name == "tiny"
  ctx = Context(sizes, data_dir, reference, budget_s)
  meta = {"date": datetime.date.today().isoformat(), "sizes": sizes.name,
          "budget_s": budget_s, "backend": jax.default_backend(), "jax": jax.__version__,
          "command": command or "python -m benchmarks.device", "data_dir": data_dir,
          "note": data.JPEG_CAVEAT, "seconds": 0.0}
  result = {"meta": meta, "parts": ctx.results}
  budgets = _budgets(sizes, budget_s)
  names = [n for n in PARTS if not only or n in only]
  reserve = budgets["tests"][0] if "tests" in names else 0.0
  functions = {n: globals()[f"part_{n}"] for n in PARTS}
  functions["tests"] = lambda c: part_tests(c, out_dir)
  for name in names:
    need, most = budgets[name]
    left = ctx.left() - (0 if name == "tests" else reserve)
    t, cpu = time.time(), time.process_time()
    if left < max(need, 1.0):
      ctx.results[name] = {"status": "skipped", "error": f"out of time ({ctx.left():.0f} s left)"}
    else:
      ctx.part_deadline = t + (left if name == "tests" else min(most, left))
      try:
        ctx.results[name] = {"status": "ok", **functions[name](ctx)}
      except Skip as e:
        ctx.results[name] = {"status": "skipped", "error": str(e)}
      except Exception as e:  # noqa: BLE001 (one part's failure must not lose the others)
        ctx.results[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:2000],
                             "traceback": traceback.format_exc()[-4000:]}
    ctx.results[name]["seconds"] = time.time() - t
    ctx.results[name]["cpu_seconds"] = time.process_time() - cpu
    meta["seconds"] = time.time() - ctx.t0
    print(f"benchmarks.device: {name}: {ctx.results[name]['status']} "
          f"({ctx.results[name]['seconds']:.1f} s, {ctx.results[name]['cpu_seconds']:.1f} s "
          "of CPU)", flush=True)
    _write(result, out_dir)
  return result


def _jsonable(v):
  if isinstance(v, dict):
    return {str(k): _jsonable(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_jsonable(x) for x in v]
  if isinstance(v, (np.floating, np.integer, np.bool_)):
    return v.item()
  return v


def _write(result: dict, out_dir: str) -> None:
  result = _jsonable(result)
  with open(os.path.join(out_dir, "device.json"), "w") as f:
    json.dump(result, f, indent=1, default=str)
  with open(os.path.join(out_dir, "device.md"), "w") as f:
    f.write(markdown(result) + "\n")


def write_reference(data_dir: str | None, sizes_names=("tiny", "full")) -> dict:
  """The CPU values the device compares with, for each size: accuracy (tiny;
  full uses result.json's), convergence deltas at "highest", loss curves."""
  ref = {"date": datetime.date.today().isoformat(), "backend": jax.default_backend(),
         "jax": jax.__version__,
         "machine": f"{platform.machine()}, {os.cpu_count()} cores",
         "command": "python -m benchmarks.device --write-reference", "note": data.JPEG_CAVEAT}
  if os.path.exists(REFERENCE):
    with open(REFERENCE) as f:
      ref = {**json.load(f), **ref}
  for name in sizes_names:
    sizes = {"tiny": TINY, "full": FULL}[name]
    ctx = Context(sizes, data_dir, None, float("inf"))
    entry = {}
    if name == "tiny":
      try:
        entry["accuracy"] = part_accuracy(ctx)["accuracy"]
      except Skip:
        pass
    clf, x = _delta_setup(ctx)
    entry["deltas"] = deltas(clf, x, sizes, "highest")
    entry["loss_curve"] = {d: loss_curve(ctx, d) for d in training.COMPUTE_DTYPES}
    ref[name] = entry
    with open(REFERENCE, "w") as f:
      json.dump(_jsonable(ref), f, indent=1)
    print(f"benchmarks.device: reference for {name} sizes written to {REFERENCE}", flush=True)
  return ref


def summary_rows(result: dict) -> list[dict]:
  """Headline rows for ``python -m benchmarks``' summary table (the issue's
  goals: train step >= 1x PyTorch, mutants >= 3x the PyTorch loop,
  attributions >= 2x Captum)."""
  parts, rows = result["parts"], []
  for r in parts.get("train_step", {}).get("rows", []):
    if r.get("PyTorch img/s"):
      rows.append({"benchmark": f"ResNet-20 {r['what']}, batch {r['batch']} (accelerator)",
                   "unit": "img/s", "ours": r["ours img/s"], "peer": r["PyTorch img/s"],
                   "peer_name": "PyTorch", "peak_fraction": r.get("of measured peak")})
  mp = parts.get("mutant_paths", {})
  by_path = {r["path"]: r for r in mp.get("rows", []) if "img x mutants/s" in r}
  torch_loop = by_path.get("PyTorch loop over mutants")
  if torch_loop and "default" in by_path:
    rows.append({"benchmark": f"mutant predictions, default path, {mp['mutants']} mutants "
                              "(accelerator)", "unit": "img x mutants/s",
                 "ours": by_path["default"]["img x mutants/s"],
                 "peer": torch_loop["img x mutants/s"], "peer_name": "PyTorch loop over mutants",
                 "peak_fraction": by_path["default"].get("of measured peak")})
  for r in parts.get("attribution", {}).get("rows", []):
    if r.get("Captum img/s"):
      rows.append({"benchmark": f"{r['what']} (accelerator)", "unit": "img/s",
                   "ours": r["ours img/s"], "peer": r["Captum img/s"], "peer_name": "Captum",
                   "peak_fraction": r.get("of measured peak")})
  return rows


def record(path: str) -> None:
  """Writes a device run's ``device.json`` into benchmarks/README.md (the
  accelerator section) and its headline rows into benchmarks/results/."""
  from benchmarks import _suite
  with open(path) as f:
    result = json.load(f)
  attribution_bench.write_readme_section("device", markdown(result))
  env = result["parts"].get("environment", {})
  devices = ", ".join(sorted({d["kind"] for d in env.get("devices", [])}))
  os.makedirs(_suite.RESULTS, exist_ok=True)
  with open(os.path.join(_suite.RESULTS, "device.json"), "w") as f:
    json.dump({"name": "device", "date": result["meta"]["date"],
               "machine": f"{env.get('machine')}, jax {result['meta']['jax']} "
                          f"({result['meta']['backend']}: {devices})",
               "rows": summary_rows(result)}, f, indent=1)
  _suite.write_summary()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default=os.environ.get("OUT"),
                 help="folder for device.json, device.md, tests.log (default: $OUT)")
  p.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU test)")
  p.add_argument("--budget-s", type=float, default=None,
                 help=f"seconds for the whole run (default {FULL.budget_s:.0f}; tiny "
                      f"{TINY.budget_s:.0f})")
  p.add_argument("--data-dir", default=os.environ.get("EXPLICABLE_JAX_DATA"),
                 help=f"folder holding {CIFAR_TEST_FILE} (default: $EXPLICABLE_JAX_DATA)")
  p.add_argument("--only", nargs="+", choices=PARTS, default=None)
  p.add_argument("--write-reference", nargs="*", choices=("tiny", "full"), default=None,
                 help="compute the CPU reference values (default: both sizes) and stop")
  p.add_argument("--record", metavar="DEVICE_JSON", default=None,
                 help="write a device run's device.json into benchmarks/README.md and "
                      "benchmarks/results/, and stop")
  args = p.parse_args(argv)
  if args.record:
    record(args.record)
    return 0
  if args.write_reference is not None:
    write_reference(args.data_dir, tuple(args.write_reference) or ("tiny", "full"))
    return 0
  if not args.out:
    p.error("--out is required where $OUT is unset")
  sizes = TINY if args.tiny else FULL
  reference = None
  if os.path.exists(REFERENCE):
    with open(REFERENCE) as f:
      reference = json.load(f).get(sizes.name)
  result = run(sizes, args.out, data_dir=args.data_dir,
               budget_s=args.budget_s or sizes.budget_s, only=args.only, reference=reference,
               command="python -m benchmarks.device " + " ".join(argv if argv is not None
                                                                 else sys.argv[1:]))
  print(markdown(_jsonable(result)))
  failed = [n for n, r in result["parts"].items() if r["status"] == "failed"]
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
