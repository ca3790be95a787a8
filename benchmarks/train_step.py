"""ResNet-20 train step and forward pass: ours (JAX/Flax NNX) beside PyTorch.

    python -m benchmarks.train_step [--batch-size 128] [--repeats 10]

Same architecture on both sides (He et al.'s CIFAR ResNet-20, option-A
shortcuts, batch norm, SGD with Nesterov momentum and weight decay, random
inputs of shape 128x32x32x3), measured in the same process, one after the
other, after a warm-up. Prints images per second and the ratio ours / torch;
``--write`` also records the rows in benchmarks/README.md. JAX columns: our
default (``KERNEL_GRAD="auto"``: each convolution's kernel-gradient form
chosen by a timing on this machine, see ``explicable_jax.models.conv``), the
tap-wise form forced everywhere, and XLA's own convolution gradient.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.attribution import _flops, matmul_peak_gflops
from explicable_jax import losses, models, training
from explicable_jax.models import conv


def _time(fn, repeats: int) -> float:
  fn()
  fn()
  t = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - t) / repeats


def jax_rows(batch_size: int, repeats: int, form: str = "auto", *,
             compute_dtype: str = "float32", model: str = "resnet20",
             model_kwargs: dict | None = None, input_shape=(32, 32, 3),
             count_flops: bool | None = None) -> dict[str, float]:
  """Images per second of our train step and forward pass (and, with
  ``count_flops``, default for ``form="auto"``, FLOPs per image from XLA's
  cost analysis). ``compute_dtype``: the train step's (``make_train_step``);
  ``model``/``model_kwargs``/``input_shape``: another zoo network (the
  accelerator check's small sizes)."""
  saved, conv.KERNEL_GRAD = conv.KERNEL_GRAD, form
  try:
    net = models.create_model(jax.random.key(0), model, input_shape=input_shape,
                              num_classes=10, **(model_kwargs or {}))
    opt = optax.chain(optax.add_decayed_weights(5e-4),
                      optax.sgd(0.1, momentum=0.9, nesterov=True))
    state = training.create_train_state(jax.random.key(1), net, opt)
    step = jax.jit(training.make_train_step(losses.cross_entropy_loss, opt,
                                            compute_dtype=compute_dtype))
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.random((batch_size, *input_shape), np.float32)),
             "y": jnp.asarray(rng.integers(0, 10, batch_size).astype(np.int32))}
    fwd = jax.jit(lambda s, x: s.apply(x)[0])
    holder = {"s": state}

    def train():
      holder["s"], m = step(holder["s"], batch)
      jax.block_until_ready(m["loss"])

    t_step = _time(train, repeats)
    t_fwd = _time(lambda: jax.block_until_ready(fwd(state, batch["x"])), repeats)
    # FLOPs per image from XLA's cost analysis of the compiled programs (a
    # second compilation each: only for the form the table's peak fraction uses).
    flops = ({"train": _flops(step, holder["s"], batch), "forward": _flops(fwd, state, batch["x"])}
             if (form == "auto" if count_flops is None else count_flops) else {})
  finally:
    conv.KERNEL_GRAD = saved
  return {"train": batch_size / t_step, "forward": batch_size / t_fwd,
          "flops": {k: v / batch_size if v else None for k, v in flops.items()}}


def breakdown(batch_size: int, repeats: int) -> list[tuple[str, float]]:
  """Where a train step's time goes: milliseconds per call of its parts, each
  jitted alone on the same state and batch (our default convolution rule).

  * forward, evaluation mode (batch norm as a fixed affine map);
  * forward, training mode (batch statistics computed and updated);
  * loss gradient, evaluation mode (forward + backward, no batch statistics);
  * loss gradient, training mode (what the step differentiates);
  * optimiser update alone (SGD + Nesterov + weight decay on given gradients);
  * a minimal step: training-mode gradient, update, buffers donated, no NaN
    guard and no metrics (what a hand-written JAX script would do);
  * the whole step (gradient, update, NaN guard, metrics).
  """
  model = models.create_model(jax.random.key(0), "resnet20", input_shape=(32, 32, 3),
                              num_classes=10)
  opt = optax.chain(optax.add_decayed_weights(5e-4),
                    optax.sgd(0.1, momentum=0.9, nesterov=True))
  state = training.create_train_state(jax.random.key(1), model, opt)
  rng = np.random.default_rng(0)
  batch = {"x": jnp.asarray(rng.random((batch_size, 32, 32, 3), np.float32)),
           "y": jnp.asarray(rng.integers(0, 10, batch_size).astype(np.int32))}
  backend, key = state.spec.backend, jax.random.key(2)

  def loss(params, train):
    logits, _ = backend.apply(params, state.model_state, batch["x"], train=train, key=key)
    return jnp.mean(losses.cross_entropy(logits, batch["y"]))

  fwd = {t: jax.jit(lambda p, t=t: backend.apply(p, state.model_state, batch["x"], train=t,
                                                  key=key)[0]) for t in (False, True)}
  grad = {t: jax.jit(jax.grad(lambda p, t=t: loss(p, t))) for t in (False, True)}
  grads = grad[True](state.params)
  update = jax.jit(lambda g, o, p: opt.update(g, o, p))
  step = jax.jit(training.make_train_step(losses.cross_entropy_loss, opt))
  holder = {"s": state}

  def train():
    holder["s"], m = step(holder["s"], batch)
    jax.block_until_ready(m["loss"])

  def minimal(params, model_state, opt_state):
    def objective(p):
      logits, new_ms = backend.apply(p, model_state, batch["x"], train=True, key=key)
      return jnp.mean(losses.cross_entropy(logits, batch["y"])), new_ms
    (value, new_ms), g = jax.value_and_grad(objective, has_aux=True)(params)
    updates, opt_state = opt.update(g, opt_state, params)
    return optax.apply_updates(params, updates), new_ms, opt_state, value
  minimal = jax.jit(minimal, donate_argnums=(0, 1, 2))
  own = {"a": jax.tree.map(jnp.copy, (state.params, state.model_state, state.opt_state))}

  def train_minimal():
    *own["a"], value = minimal(*own["a"])
    jax.block_until_ready(value)

  ms = lambda fn: 1000 * _time(lambda: jax.block_until_ready(fn()), repeats)
  return [("forward, evaluation mode", ms(lambda: fwd[False](state.params))),
          ("forward, training mode", ms(lambda: fwd[True](state.params))),
          ("loss gradient, evaluation mode", ms(lambda: grad[False](state.params))),
          ("loss gradient, training mode", ms(lambda: grad[True](state.params))),
          ("optimiser update alone", ms(lambda: update(grads, state.opt_state, state.params))),
          ("minimal step (no guard, no metrics, donated)", 1000 * _time(train_minimal, repeats)),
          ("whole train step", 1000 * _time(train, repeats))]


def torch_rows(batch_size: int, repeats: int, *, device: str = "cpu",
               autocast: bool = False, blocks_per_stage: int = 3,
               widths=(16, 32, 64), input_shape=(32, 32, 3)) -> dict[str, float] | None:
  """The same network's train step and forward pass in PyTorch (``None``
  without torch). ``device``: ``"cpu"`` or ``"cuda"`` (each timed call then
  waits for the GPU); ``autocast``: bfloat16 mixed precision
  (``torch.autocast``), PyTorch's counterpart of ``compute_dtype="bfloat16"``."""
  try:
    import torch
    import torch.nn.functional as F
    from benchmarks.torch_resnet import ResNet20
  except ImportError:
    return None

  torch.manual_seed(0)
  net = ResNet20(10, blocks_per_stage, widths).to(device)
  opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
  x = torch.rand(batch_size, input_shape[2], *input_shape[:2], device=device)
  y = torch.randint(0, 10, (batch_size,), device=device)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  cast = (lambda: torch.autocast(device.split(":")[0], dtype=torch.bfloat16)) if autocast else (
      contextlib.nullcontext)

  def train():
    opt.zero_grad(set_to_none=True)
    with cast():
      loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    sync()

  def forward():
    with cast():
      net(x)
    sync()

  net.train()
  t_step = _time(train, repeats)
  net.eval()
  with torch.no_grad():
    t_fwd = _time(forward, repeats)
  return {"train": batch_size / t_step, "forward": batch_size / t_fwd,
          "version": torch.__version__, "threads": torch.get_num_threads()}


def run(batch_size: int = 128, repeats: int = 10) -> list[dict]:
  peak = matmul_peak_gflops()
  ours = jax_rows(batch_size, repeats, "auto")
  tap = jax_rows(batch_size, repeats, "tapwise")
  xla = jax_rows(batch_size, repeats, "xla")
  peer = torch_rows(batch_size, repeats)
  rows = []
  for what in ("train", "forward"):
    row = {"benchmark": f"ResNet-20 {what} step, batch {batch_size}",
           "ours": ours[what], "tapwise": tap[what], "xla_default": xla[what],
           "peer": peer[what] if peer else float("nan")}
    for k in ("ours", "tapwise", "xla_default"):
      row[f"ratio_{k}"] = row[k] / row["peer"] if peer else float("nan")
    row["ratio"] = row["ratio_ours"]
    per_image = ours["flops"][what]
    row["flops_per_image"] = per_image
    row["peak_gflops"] = peak
    row["peak_fraction"] = ours[what] * per_image / 1e9 / peak if per_image else None
    rows.append(row)
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--write", action="store_true", help="record the table in benchmarks/README.md")
  p.add_argument("--breakdown", action="store_true",
                 help="print where the step's time goes (its parts timed alone) and stop")
  args = p.parse_args()
  if args.breakdown:
    parts = breakdown(args.batch_size, args.repeats)
    whole = parts[-1][1]
    print(f"ResNet-20, batch {args.batch_size}, {datetime.date.today()}, jax {jax.__version__}")
    print("| part | ms per call | share of the step |\n|---|---|---|")
    for name, t in parts:
      print(f"| {name} | {t:.1f} | {t / whole:.0%} |")
    return
  rows = run(args.batch_size, args.repeats)
  import torch
  lines = [f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
           f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
           f"({torch.get_num_threads()} threads):", "",
           "| benchmark | ours (auto) img/s | tap-wise everywhere img/s | XLA conv grad img/s | "
           "PyTorch img/s | ratio | ratio, tap-wise | ratio, XLA | ours: MFLOP per image | "
           "ours: fraction of matmul peak |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    fl = r["flops_per_image"]
    lines.append(f"| {r['benchmark']} | {r['ours']:.1f} | {r['tapwise']:.1f} | "
                 f"{r['xla_default']:.1f} | {r['peer']:.1f} | {r['ratio']:.2f} | "
                 f"{r['ratio_tapwise']:.2f} | {r['ratio_xla_default']:.2f} | "
                 f"{fl / 1e6 if fl else float('nan'):.0f} | "
                 f"{r['peak_fraction'] if r['peak_fraction'] is not None else float('nan'):.1%} |")
  lines += ["", f"float32 matmul peak {rows[0]['peak_gflops']:.0f} GFLOP/s measured in the same "
            "run; FLOPs from XLA's cost analysis of the compiled step and forward pass."]
  choices = sorted(conv._choices.items())
  lines += ["", "Kernel-gradient form chosen by `auto` for each convolution shape "
            "(timings from the calibration cache):", ""]
  try:
    with open(conv._cache_file()) as f:
      timed = json.load(f).get(conv._machine(), {})
  except (OSError, ValueError):
    timed = {}
  lines += [f"* `{k}`: {v}" + (f" (kernel gradient alone, best of 5: XLA "
                                f"{1000 * timed[k]['xla']:.1f} ms, tap-wise "
                                f"{1000 * timed[k]['tapwise']:.1f} ms)" if k in timed else "")
            for k, v in choices]
  report = "\n".join(lines)
  print(report)
  if args.write:
    from benchmarks import _suite
    from benchmarks.attribution import write_readme_section
    write_readme_section("train_step", report)
    _suite.record("train_step", [
        {"benchmark": r["benchmark"], "unit": "img/s", "ours": r["ours"], "peer": r["peer"],
         "peer_name": "PyTorch", "peak_fraction": r["peak_fraction"]} for r in rows])


if __name__ == "__main__":
  main()
