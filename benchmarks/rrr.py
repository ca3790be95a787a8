"""The cost of a Right-for-the-Right-Reasons train step (double backpropagation).

    python -m benchmarks.rrr [--write]

For an MLP 50-30 on 784 inputs (Decoy MNIST) and a small CNN (two 3x3 conv
layers of 16 and 32 channels, dense 64, on 28x28x1), batch 256, both in one
run on this machine:

* our jitted plain step (cross-entropy) and our RRR step (cross-entropy +
  lambda * annotated input-gradient penalty), and their ratio: what double
  backpropagation costs;
* for the MLP, the same RRR objective's gradient written with ``autograd``
  (the library of the original dtak/rrr code: ``elementwise_grad`` of the
  log-probabilities inside the loss, ``grad`` of the loss), where autograd is
  installed (``pip install autograd``). The autograd side is timed without
  its optimiser update, which favours it slightly.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.attribution import write_readme_section
from explicable_jax import losses, models, training

BATCH = 256


def _best(fn, repeats: int) -> float:
  fn()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t)
  return best


def _steps(model_name: str, input_shape, model_kwargs, repeats: int):
  model = models.create_model(jax.random.key(0), model_name, input_shape=input_shape,
                              num_classes=10, **model_kwargs)
  opt = optax.adam(1e-3)
  rng = np.random.default_rng(0)
  batch = {"x": jnp.asarray(rng.random((BATCH, *input_shape), np.float32)),
           "y": jnp.asarray(rng.integers(0, 10, BATCH)),
           "annotation": jnp.asarray(rng.random((BATCH, *input_shape)) < 0.1, jnp.float32)}
  out = {}
  for name, loss in (("plain", losses.cross_entropy_loss),
                     ("rrr", losses.make_rrr_loss(1000.0))):
    state = training.create_train_state(jax.random.key(1), model, opt)
    step = jax.jit(training.make_train_step(loss, opt))

    def run(state=state, step=step):
      jax.block_until_ready(step(state, batch)[0].params)
    out[name] = _best(run, repeats)
  return out


def _autograd_mlp(repeats: int) -> float | None:
  try:
    import autograd.numpy as anp
    from autograd import elementwise_grad, grad
  except ImportError:
    return None
  rng = np.random.default_rng(0)
  sizes = [784, 50, 30, 10]
  params = [(0.1 * rng.standard_normal((m, n)), 0.1 * rng.standard_normal(n))
            for m, n in zip(sizes[:-1], sizes[1:])]
  x = rng.random((BATCH, 784)).astype(np.float32)
  y = np.eye(10)[rng.integers(0, 10, BATCH)]
  a = rng.random((BATCH, 784)) < 0.1

  def log_probs(params, inputs):
    for w, b in params[:-1]:
      inputs = anp.maximum(anp.dot(inputs, w) + b, 0.0)
    w, b = params[-1]
    out = anp.dot(inputs, w) + b
    m = anp.max(out, axis=1, keepdims=True)
    return out - (m + anp.log(anp.sum(anp.exp(out - m), axis=1, keepdims=True)))

  def objective(params):
    ce = -anp.sum(log_probs(params, x) * y)
    g = elementwise_grad(lambda inp: log_probs(params, inp))(x)
    return ce + 1000.0 * anp.sum(g[a] ** 2)

  dobj = grad(objective)
  return _best(lambda: dobj(params), repeats)


def run(repeats: int):
  mlp = _steps("mlp", (784,), {"hidden": (50, 30)}, repeats)
  cnn = _steps("cnn", (28, 28, 1), {"widths": [16, 32], "dense": 64, "pool": "flatten"}, repeats)
  return mlp, cnn, _autograd_mlp(repeats)


def format_report(mlp, cnn, autograd_s) -> str:
  lines = [f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
           f"jax {jax.__version__} ({jax.default_backend()}); batch {BATCH}, best of the "
           "repeats after a warm-up call.", "",
           "| model | plain step (ms) | RRR step (ms) | RRR / plain |", "|---|---|---|---|"]
  for name, r in (("MLP 784-50-30-10", mlp), ("CNN 16-32 conv, dense 64", cnn)):
    lines.append(f"| {name} | {1e3 * r['plain']:.2f} | {1e3 * r['rrr']:.2f} | "
                 f"{r['rrr'] / r['plain']:.2f}x |")
  if autograd_s is None:
    lines += ["", "autograd is not installed: no comparison with the original's library."]
  else:
    lines += ["", f"The same MLP's RRR gradient in autograd (the original's library): "
              f"{1e3 * autograd_s:.2f} ms, so our whole jitted RRR step is "
              f"{autograd_s / mlp['rrr']:.1f}x faster than its gradient alone."]
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--repeats", type=int, default=20)
  p.add_argument("--write", action="store_true", help="record the table in benchmarks/README.md")
  args = p.parse_args()
  mlp, cnn, autograd_s = run(args.repeats)
  report = format_report(mlp, cnn, autograd_s)
  print(report)
  if args.write:
    from benchmarks import _suite
    rows = [{"benchmark": f"RRR train step vs plain step, {name}", "unit": "steps/s",
             "ours": 1 / r["rrr"], "peer": 1 / r["plain"], "peer_name": "plain step (same model)"}
            for name, r in (("MLP 784-50-30-10", mlp), ("CNN 16-32", cnn))]
    if autograd_s is not None:
      rows.append({"benchmark": "RRR step (ours, whole step) vs RRR gradient (autograd), MLP",
                   "unit": "steps/s", "ours": 1 / mlp["rrr"], "peer": 1 / autograd_s,
                   "peer_name": "autograd, the original's library"})
    _suite.record("rrr", rows)
    write_readme_section(
        "rrr", report, heading=("\n## Right for the Right Reasons: double backpropagation\n\n"
                                "    python -m benchmarks.rrr --write\n\n"))


if __name__ == "__main__":
  main()
