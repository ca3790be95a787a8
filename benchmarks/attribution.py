"""Attribution speed: ours (JAX) beside Captum (PyTorch CPU) on ResNet-20.

    python -m benchmarks.attribution [--batch-size 64] [--repeats 3] [--write]

Both sides hold the same weights (random, ResNet-20 shapes, He et al.'s
option-A network; ``benchmarks/torch_resnet.py`` copies ours into torch),
take the same batch of 64 random 32x32x3 inputs and attribute the same
target (the predicted class). Rows:

* layer conductance, n = 10, of the last residual block (``layer3.2``, Wu et
  al.'s layer), ``riemann_right`` and ``gausslegendre``. Ours runs twice: as
  shipped (the head after that block is affine, so the sum telescopes and only
  the path's two ends are evaluated, see ``layer_conductance``) and with
  ``shortcut_affine_head=False`` (all 11 points, like Captum).
* integrated gradients to the input, 50 Gauss-Legendre steps, 640 rows per
  forward pass on both sides (``internal_batch_size``).

It also checks that both sides agree (ours ``riemann_left`` is Captum's
``riemann_trapezoid``; ``gausslegendre`` is the same on both), reports the
fraction of this machine's float32 matrix-multiply peak that our jitted call
reaches (XLA's FLOP count / time / peak, the peak measured here with a
2048x2048 matmul), and times the second-order attribution at two layer
sizes: ResNet-20's ``layer3.1`` (8x8x64) and a CUB-sized 14x14x512 VGG-16
conv5_3 map with VGG-16's classifier as the head (Wang and Vasconcelos's
setting; their PyTorch code loops over all 14*14*512 Hessian rows).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

from explicable_jax import attribution, models

README = os.path.join(os.path.dirname(__file__), "README.md")


def _time(fn, repeats: int) -> float:
  fn()
  t = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - t) / repeats


def matmul_peak_gflops(size: int = 2048, repeats: int = 10, dtype=jnp.float32) -> float:
  """Matmul GFLOP/s of this machine in ``dtype`` (float32 by default; best of
  ``repeats``), at the matmul precision in effect when it is called."""
  a = jnp.ones((size, size), dtype)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(f(a))
    best = min(best, time.perf_counter() - t)
  return 2 * size ** 3 / best / 1e9


def _flops(jitted, *args) -> float | None:
  try:
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])
  except Exception:  # Cost analysis is best effort.
    return None


def jax_side(batch_size: int, repeats: int, peak: float, *, model: str = "resnet20",
             model_kwargs: dict | None = None, input_shape=(32, 32, 3)):
  """Our attributions timed on a random network of the zoo (ResNet-20 by
  default; conductance at its last residual block)."""
  model = models.create_model(jax.random.key(0), model, input_shape=input_shape,
                              num_classes=10, input_mean=None, input_std=None,
                              **(model_kwargs or {}))
  clf = models.from_nnx(model)
  x = jax.random.uniform(jax.random.key(1), (batch_size, *input_shape))
  logits_fn = jax.jit(clf.logits)
  target = jnp.argmax(logits_fn(x), -1)
  last_block = [name for name in clf.layers if name.startswith("layer")][-1]
  features_fn, head_fn = clf.split(last_block)

  def conductance(method, shortcut):
    return jax.jit(lambda x, t: attribution.layer_conductance(
        features_fn, head_fn, x, target=t, n_steps=10, method=method,
        shortcut_affine_head=shortcut))

  ig = jax.jit(jax.vmap(lambda x, t: attribution.integrated_gradients(
      attribution.class_score_fn(logits_fn, t), x, n_steps=50,
      method="gausslegendre", internal_batch_size=640 // batch_size)))
  calls = {
      ("conductance", "riemann_right", True): conductance("riemann_right", True),
      ("conductance", "riemann_right", False): conductance("riemann_right", False),
      ("conductance", "gausslegendre", True): conductance("gausslegendre", True),
      ("conductance", "gausslegendre", False): conductance("gausslegendre", False),
      ("ig", "gausslegendre", False): ig,
  }
  rates, fractions, outputs = {}, {}, {}
  for name, fn in calls.items():
    outputs[name] = np.asarray(fn(x, target))
    seconds = _time(lambda: jax.block_until_ready(fn(x, target)), repeats)
    rates[name] = batch_size / seconds
    flops = _flops(fn, x, target)
    fractions[name] = None if flops is None else flops / seconds / 1e9 / peak
  outputs["riemann_left"] = np.asarray(conductance("riemann_left", False)(x, target))
  return model, x, np.asarray(target), rates, fractions, outputs


def torch_side(model, x, target, batch_size: int, repeats: int, *, device: str = "cpu"):
  """Captum's conductance and integrated gradients on the same weights;
  ``device="cuda"``: on the GPU (each timed call waits for it)."""
  try:
    import torch
    from captum.attr import IntegratedGradients, LayerConductance

    from benchmarks.torch_resnet import from_flax
  except ImportError:
    return None
  torch.manual_seed(0)
  net = from_flax(model).to(device)
  xt = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).to(device)
  tt = torch.from_numpy(target.astype(np.int64)).to(device)
  lc = LayerConductance(net, net.blocks[-1])
  ig = IntegratedGradients(net)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

  def run(name):
    if name[0] == "conductance":
      out = lc.attribute(xt, target=tt, n_steps=10, method=name[1])
    else:
      out = ig.attribute(xt, target=tt, n_steps=50, method=name[1],
                         internal_batch_size=640)
    sync()
    return out

  rates, outputs = {}, {}
  for name in (("conductance", "riemann_right"), ("conductance", "gausslegendre"),
               ("ig", "gausslegendre")):
    outputs[name] = run(name).detach().cpu().numpy()
    rates[name] = batch_size / _time(lambda: run(name), repeats)
  outputs["riemann_trapezoid"] = run(("conductance", "riemann_trapezoid")).detach().cpu().numpy()
  return {"rates": rates, "outputs": outputs, "version": torch.__version__,
          "threads": torch.get_num_threads()}


def _relative_error(ours_nhwc, theirs_nchw) -> float:
  """``||ours - theirs|| / ||theirs||`` (Frobenius)."""
  theirs = theirs_nchw.transpose(0, 2, 3, 1)
  return float(np.linalg.norm(ours_nhwc - theirs) / np.linalg.norm(theirs))


def vgg16_head_weights(key: jax.Array, num_classes: int = 200, *, features: int = 7 * 7 * 512,
                       hidden: int = 4096) -> list[jax.Array]:
  """He-initialised weights of VGG-16's classifier, 25088-4096-4096-``num_classes``
  (``features`` and ``hidden`` give a smaller head of the same form)."""
  dims = [(features, hidden), (hidden, hidden), (hidden, num_classes)]
  keys = jax.random.split(key, len(dims))
  return [jax.random.normal(k, d) * np.sqrt(2.0 / d[0]) for k, d in zip(keys, dims)]


def vgg16_head(a: jax.Array, weights: list[jax.Array]) -> jax.Array:
  """VGG-16 at 224x224 after conv5_3 (``(N, 14, 14, 512)``): max-pool, then
  the classifier (CUB: 200 classes), as log-probabilities."""
  a = jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  a = a.reshape(a.shape[0], -1)
  a = jax.nn.relu(a @ weights[0])
  a = jax.nn.relu(a @ weights[1])
  return jax.nn.log_softmax(a @ weights[2])


def second_order_timings(repeats: int) -> list[tuple[str, float]]:
  """Seconds per image of :func:`second_order_attribution` at two layer sizes."""
  rows = []
  model = models.create_model(jax.random.key(0), "resnet20", input_shape=(32, 32, 3),
                              num_classes=10)
  f, h = models.from_nnx(model).split("layer3.1")
  x = jax.random.uniform(jax.random.key(1), (64, 32, 32, 3))
  fn = jax.jit(lambda x: attribution.second_order_attribution(f, h, x, target="predicted"))
  rows.append(("ResNet-20 layer3.1 (8x8x64, head: last block + pool + dense), batch 64",
               _time(lambda: jax.block_until_ready(fn(x)), repeats) / 64))

  feats = jax.nn.relu(jax.random.normal(jax.random.key(3), (1, 14, 14, 512)))
  weights = vgg16_head_weights(jax.random.key(2))
  # Weights are arguments, not constants, so that XLA does not fold them.
  fn = jax.jit(lambda a, w: attribution.second_order_attribution(
      lambda z: z, lambda z: vgg16_head(z, w), a, target="predicted",
      internal_batch_size=28))
  rows.append(("CUB-sized VGG-16 conv5_3 (14x14x512, head: VGG-16 classifier), batch 1",
               _time(lambda: jax.block_until_ready(fn(feats, weights)), repeats)))
  return rows


def scan_trap_timings(repeats: int) -> tuple[float, float]:
  """Seconds for two input gradients of one 3x3, 16-channel convolution on
  80x32x32x16 inputs: unrolled, and as two iterations of a ``lax.scan``.

  Why the attribution chunk loops are unrolled (``MAX_UNROLLED_CHUNKS``):
  inside a while-loop body XLA:CPU keeps the transposed kernel in "oi"
  layout and its convolution runs several times slower.
  """
  x = jax.random.uniform(jax.random.key(1), (2, 80, 32, 32, 16))
  w = jax.random.normal(jax.random.key(2), (3, 3, 16, 16))
  conv = lambda z, w: jax.lax.conv_general_dilated(
      z, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  grad = lambda z, w: jax.grad(lambda z: jnp.sum(conv(z, w) ** 2))(z)
  unrolled = jax.jit(lambda x, w: [grad(x[0], w), grad(x[1], w)])
  scanned = jax.jit(lambda x, w: jax.lax.scan(lambda c, z: (c, grad(z, w)), 0, x)[1])
  return tuple(_time(lambda f=f: jax.block_until_ready(f(x, w)), repeats)
               for f in (unrolled, scanned))


def run(batch_size: int = 64, repeats: int = 3):
  peak = matmul_peak_gflops()
  model, x, target, rates, fractions, ours = jax_side(batch_size, repeats, peak)
  peer = torch_side(model, x, target, batch_size, repeats)
  return (peak, rates, fractions, ours, peer, second_order_timings(repeats),
          scan_trap_timings(repeats))


def format_report(batch_size, peak, rates, fractions, ours, peer, second, scan_trap) -> str:
  today = datetime.date.today().isoformat()
  lines = [
      f"{today}, {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
      f"({jax.default_backend()}), matmul peak {peak:.0f} GFLOP/s (float32, measured)"
      + (f", torch {peer['version']} ({peer['threads']} threads) + Captum" if peer else "")
      + f", batch {batch_size}:",
      "",
      "| benchmark | ours img/s | ours, all steps img/s | Captum img/s | ratio | ratio, all steps | ours (all steps) % of matmul peak |",
      "|---|---|---|---|---|---|---|",
  ]
  labels = {("conductance", "riemann_right"): "layer conductance n=10 riemann_right, layer3.2",
            ("conductance", "gausslegendre"): "layer conductance n=10 gausslegendre, layer3.2",
            ("ig", "gausslegendre"): "integrated gradients n=50 gausslegendre, input"}
  for (kind, method), label in labels.items():
    if kind == "conductance":
      fast, slow = rates[(kind, method, True)], rates[(kind, method, False)]
      frac = fractions[(kind, method, False)]
    else:
      fast = slow = rates[(kind, method, False)]
      frac = fractions[(kind, method, False)]
    theirs = peer["rates"][(kind, method)] if peer else float("nan")
    lines.append(
        f"| {label} | {fast:.1f} | {slow:.1f} | {theirs:.1f} | {fast / theirs:.2f} | "
        f"{slow / theirs:.2f} | {'n/a' if frac is None else f'{100 * frac:.0f}%'} |")
  if peer:
    lines += [
        "",
        "Agreement with Captum (relative error, ||ours - Captum|| / ||Captum||): "
        f"conductance riemann_left vs Captum riemann_trapezoid "
        f"{_relative_error(ours['riemann_left'], peer['outputs']['riemann_trapezoid']):.1e}, "
        f"gausslegendre {_relative_error(ours[('conductance', 'gausslegendre', True)], peer['outputs'][('conductance', 'gausslegendre')]):.1e}, "
        f"integrated gradients {_relative_error(ours[('ig', 'gausslegendre', False)], peer['outputs'][('ig', 'gausslegendre')]):.1e}.",
    ]
  lines += ["", "Second-order (gradient-Hessian) attribution, all positions in one jitted call:", ""]
  lines += [f"* {label}: {sec:.3f} s per image" for label, sec in second]
  lines += ["", "Input gradient of a 3x3 16-channel conv on 2x80x32x32x16 inputs: "
            f"{scan_trap[0]:.3f} s unrolled, {scan_trap[1]:.3f} s inside a lax.scan "
            f"({scan_trap[1] / scan_trap[0]:.1f}x slower)."]
  return "\n".join(lines)


def summary_rows(peak, rates, fractions, ours, peer, second, scan_trap) -> list[dict]:
  """Headline rows for ``python -m benchmarks``' summary table."""
  del peak, ours, second, scan_trap
  if not peer:
    return []
  rows = []
  for method in ("riemann_right", "gausslegendre"):
    theirs = peer["rates"][("conductance", method)]
    rows.append({"benchmark": f"layer conductance n=10 {method}, ResNet-20 layer3.2",
                 "unit": "img/s", "ours": rates[("conductance", method, True)], "peer": theirs,
                 "peer_name": "Captum"})
    rows.append({"benchmark": f"layer conductance n=10 {method}, all steps",
                 "unit": "img/s", "ours": rates[("conductance", method, False)], "peer": theirs,
                 "peer_name": "Captum",
                 "peak_fraction": fractions[("conductance", method, False)]})
  rows.append({"benchmark": "integrated gradients n=50 gausslegendre, ResNet-20 input",
               "unit": "img/s", "ours": rates[("ig", "gausslegendre", False)],
               "peer": peer["rates"][("ig", "gausslegendre")], "peer_name": "Captum",
               "peak_fraction": fractions[("ig", "gausslegendre", False)]})
  return rows


def write_readme_section(name: str, report: str, heading: str = "", path: str = README) -> None:
  """Replaces the ``<!-- name:begin -->...<!-- name:end -->`` block of the
  benchmarks README with ``report`` (appending ``heading`` and the block
  when it is not there yet)."""
  begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
  text = open(path).read()
  block = f"{begin}\n{report}\n{end}"
  if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
  else:
    text += f"\n{heading}{block}\n"
  open(path, "w").write(text)


def write_readme(report: str) -> None:
  write_readme_section("attribution", report)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--write", action="store_true",
                      help="record the table in benchmarks/README.md")
  args = parser.parse_args()
  result = run(args.batch_size, args.repeats)
  report = format_report(args.batch_size, *result)
  print(report)
  if args.write:
    write_readme(report)
    from benchmarks import _suite
    _suite.record("attribution", summary_rows(*result))


if __name__ == "__main__":
  main()
