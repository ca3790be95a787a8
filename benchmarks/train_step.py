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
import datetime
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from explicable_jax import losses, models, training
from explicable_jax.models import conv


def _time(fn, repeats: int) -> float:
  fn()
  fn()
  t = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - t) / repeats


def jax_rows(batch_size: int, repeats: int, form: str = "auto") -> dict[str, float]:
  saved, conv.KERNEL_GRAD = conv.KERNEL_GRAD, form
  try:
    model = models.create_model(jax.random.key(0), "resnet20", input_shape=(32, 32, 3),
                                num_classes=10)
    opt = optax.chain(optax.add_decayed_weights(5e-4),
                      optax.sgd(0.1, momentum=0.9, nesterov=True))
    state = training.create_train_state(jax.random.key(1), model, opt)
    step = jax.jit(training.make_train_step(losses.cross_entropy_loss, opt))
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.random((batch_size, 32, 32, 3), np.float32)),
             "y": jnp.asarray(rng.integers(0, 10, batch_size).astype(np.int32))}
    fwd = jax.jit(lambda s, x: s.apply(x)[0])
    holder = {"s": state}

    def train():
      holder["s"], m = step(holder["s"], batch)
      jax.block_until_ready(m["loss"])

    t_step = _time(train, repeats)
    t_fwd = _time(lambda: jax.block_until_ready(fwd(state, batch["x"])), repeats)
  finally:
    conv.KERNEL_GRAD = saved
  return {"train": batch_size / t_step, "forward": batch_size / t_fwd}


def torch_rows(batch_size: int, repeats: int) -> dict[str, float] | None:
  try:
    import torch
    import torch.nn.functional as F
    from benchmarks.torch_resnet import ResNet20
  except ImportError:
    return None

  torch.manual_seed(0)
  net = ResNet20()
  opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
  x = torch.rand(batch_size, 3, 32, 32)
  y = torch.randint(0, 10, (batch_size,))

  def train():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()

  net.train()
  t_step = _time(train, repeats)
  net.eval()
  with torch.no_grad():
    t_fwd = _time(lambda: net(x), repeats)
  return {"train": batch_size / t_step, "forward": batch_size / t_fwd,
          "version": torch.__version__, "threads": torch.get_num_threads()}


def run(batch_size: int = 128, repeats: int = 10) -> list[dict]:
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
    rows.append(row)
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch-size", type=int, default=128)
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--write", action="store_true", help="record the table in benchmarks/README.md")
  args = p.parse_args()
  rows = run(args.batch_size, args.repeats)
  import torch
  lines = [f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, "
           f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
           f"({torch.get_num_threads()} threads):", "",
           "| benchmark | ours (auto) img/s | tap-wise everywhere img/s | XLA conv grad img/s | "
           "PyTorch img/s | ratio | ratio, tap-wise | ratio, XLA |",
           "|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| {r['benchmark']} | {r['ours']:.1f} | {r['tapwise']:.1f} | "
                 f"{r['xla_default']:.1f} | {r['peer']:.1f} | {r['ratio']:.2f} | "
                 f"{r['ratio_tapwise']:.2f} | {r['ratio_xla_default']:.2f} |")
  choices = sorted(conv._choices.items())
  lines += ["", "Kernel-gradient form chosen by `auto` for each convolution shape "
            "(timings from the calibration cache):", ""]
  lines += [f"* `{k}`: {v}" for k, v in choices]
  report = "\n".join(lines)
  print(report)
  if args.write:
    from benchmarks import _suite
    from benchmarks.attribution import write_readme_section
    write_readme_section("train_step", report)
    _suite.record("train_step", [
        {"benchmark": r["benchmark"], "unit": "img/s", "ours": r["ours"], "peer": r["peer"],
         "peer_name": "PyTorch"} for r in rows])


if __name__ == "__main__":
  main()
