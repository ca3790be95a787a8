"""Second-order insecurity maps at a VGG-16 conv5_3-sized layer: ours vs the naive per-location Hessian loop.

    python -m benchmarks.deliberative [--batch-size 32] [--top-k 5] [--write]

Wang and Vasconcelos's second-order attribution (``gradient_hessian``) needs,
at every position ``p`` of a 14x14x512 feature map,
``a_p^T H_pp a_p`` with ``H_pp`` the 512x512 Hessian block of the score at
``p``. Their code builds each block with one backward pass per channel
(512 per position, 100,352 per image and map). Timed in one run:

* ours: :func:`explicable_jax.deliberative.attribution_maps` with
  ``method="gradient_hessian"`` (top-K class maps + the entropy difficulty
  map: ``K + 1`` second-order maps per image) followed by
  :func:`~explicable_jax.deliberative.class_ambiguities`,
  :func:`~explicable_jax.deliberative.insecurity_maps` (resized to 224x224)
  and :func:`~explicable_jax.deliberative.top_fraction_mask`, jitted, for a
  whole batch. One linearisation of the gradient and one Hessian-vector
  product per position (all positions vmapped in chunks);
* the naive loop: the full Hessian block at each position (``jax.hessian``
  of the score restricted to ``a_p``: 512 forward-over-reverse products,
  jitted once and called position by position from Python), timed on
  ``--naive-positions`` positions of one image and one map and extrapolated
  linearly to all positions, maps and images.

The head is VGG-16's classifier at 224x224 (max-pool, 25088-4096-4096-200,
CUB's 200 classes) with random He-initialised weights and random
non-negative features: the cost does not depend on the values.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.attribution import (_flops, matmul_peak_gflops, vgg16_head, vgg16_head_weights,
                                    write_readme_section)
from explicable_jax import deliberative
from explicable_jax.attribution import second_order_attribution


def ours_fn(top_k: int, chunk: int, r: float = 0.2):
  """The jitted insecurity pipeline ``(features, weights) -> (masks, pairs)``."""

  def run(a, w):
    head = lambda z: vgg16_head(z, w)
    _, maps, dmap = deliberative.attribution_maps(
        lambda z: z, head, a, difficulty="entropy", method="gradient_hessian", top_k=top_k,
        internal_batch_size=chunk)
    pairs = deliberative.class_ambiguities(maps, min(3, top_k))
    ins = deliberative.insecurity_maps(maps, dmap, (224, 224))
    return deliberative.top_fraction_mask(ins, r), pairs

  return jax.jit(run)


def naive_fn():
  """``(features, weights, position, target) -> a_p^T H_pp a_p`` for one image,
  the Hessian block built explicitly (as the original code does)."""

  def quadratic(a, w, p, target):
    h, wd, c = a.shape[1:]
    flat = a.reshape(h * wd, c)

    def score_at(v):  # the score as a function of the feature vector at p only
      return vgg16_head(flat.at[p].set(v).reshape(a.shape), w)[0, target]

    hess = jax.hessian(score_at)(flat[p])  # (512, 512)
    return flat[p] @ hess @ flat[p]

  return jax.jit(quadratic)


def _timed(fn, *args, repeats: int = 1) -> float:
  jax.block_until_ready(fn(*args))  # compile + warm-up
  t = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(fn(*args))
  return (time.perf_counter() - t) / repeats


def run(batch_size: int = 32, top_k: int = 5, chunk: int = 7, naive_positions: int = 2, *,
        size: int = 14, channels: int = 512, hidden: int = 4096, classes: int = 200,
        peak: float | None = None):
  """Times ours and the naive loop on ``size x size x channels`` features
  (VGG-16's conv5_3 by default) with a VGG-16-shaped head of ``hidden``
  units and ``classes`` classes; ``peak``: a matmul peak already measured."""
  peak = matmul_peak_gflops() if peak is None else peak
  w = vgg16_head_weights(jax.random.key(2), classes, features=(size // 2) ** 2 * channels,
                         hidden=hidden)
  a = jax.nn.relu(jax.random.normal(jax.random.key(3), (batch_size, size, size, channels)))
  ours = ours_fn(top_k, chunk)
  ours_s = _timed(ours, a, w)
  # XLA's cost analysis counts a while-loop body once, so count the FLOPs of
  # one image with every chunk unrolled (28 positions per chunk: 7 chunks)
  # and scale by the batch: the work is linear in the batch.
  flops = _flops(ours_fn(top_k, -(-size * size // 7)), a[:1], w)
  flops = flops * batch_size if flops else None

  naive = naive_fn()
  one = a[:1]
  t = [_timed(naive, one, w, jnp.int32(p), jnp.int32(0)) for p in range(naive_positions)]
  per_position = float(np.mean(t))
  maps = top_k + 1
  naive_s = per_position * size * size * maps * batch_size
  # Agreement on the slice: the naive quadratic equals ours' second-order term.
  terms = jax.jit(lambda a, w: second_order_attribution(
      lambda z: z, lambda z: vgg16_head(z, w), a, target=jnp.zeros(1, jnp.int32),
      internal_batch_size=chunk, return_terms=True))(one, w)
  ours_q = np.asarray(terms.second).reshape(-1)[:naive_positions]
  naive_q = np.array([float(naive(one, w, jnp.int32(p), jnp.int32(0)))
                      for p in range(naive_positions)])
  rel = float(np.max(np.abs(ours_q - naive_q)) / (np.max(np.abs(naive_q)) + 1e-30))
  return dict(peak=peak, batch_size=batch_size, top_k=top_k, ours_s=ours_s, flops=flops,
              size=size, channels=channels,
              per_position=per_position, naive_positions=naive_positions, naive_s=naive_s,
              rel=rel)


def format_report(res: dict) -> str:
  frac = (f"{res['flops'] / res['ours_s'] / 1e9 / res['peak']:.0%}"
          if res["flops"] else "n/a")
  n, k = res["batch_size"], res["top_k"]
  lines = [
      f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
      f"jax {jax.__version__} ({jax.default_backend()}), matmul peak "
      f"{res['peak']:.0f} GFLOP/s (float32, measured); batch {n}, 14x14x512 features, "
      f"VGG-16 classifier head, top-{k} class maps + entropy difficulty map "
      f"({k + 1} second-order maps per image), insecurities resized to 224x224, r = 0.2.",
      "",
      "| benchmark | ours (s) | naive per-location Hessian loop (s) | ratio | ours % of matmul peak |",
      "|---|---|---|---|---|",
      f"| second-order insecurity maps, batch {n} | {res['ours_s']:.1f} | "
      f"{res['naive_s']:.0f} (extrapolated) | {res['naive_s'] / res['ours_s']:.0f}x | {frac} |",
      "",
      f"The naive loop: {res['per_position']:.2f} s per position (mean of "
      f"{res['naive_positions']} positions of one image, one map; each builds the 512x512 "
      f"block), times 196 positions x {k + 1} maps x {n} images = "
      f"{res['naive_s'] / 3600:.1f} h. Its quadratic terms match ours to a relative "
      f"{res['rel']:.1e} on the timed positions.",
  ]
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--top-k", type=int, default=5)
  p.add_argument("--chunk", type=int, default=7,
                 help="positions whose HVPs run at once (7: 28 chunks, a lax.scan, so memory "
                      "holds one chunk; 28 at batch 32 ran out of 24 GiB with 7 unrolled chunks)")
  p.add_argument("--naive-positions", type=int, default=2)
  p.add_argument("--write", action="store_true", help="record the table in benchmarks/README.md")
  args = p.parse_args()
  res = run(args.batch_size, args.top_k, args.chunk, args.naive_positions)
  report = format_report(res)
  print(report)
  if args.write:
    from benchmarks import _suite
    _suite.record("deliberative", [{
        "benchmark": f"second-order insecurity maps, batch {res['batch_size']}, 14x14x512, "
                     f"top-{res['top_k']} + difficulty", "unit": "img/s",
        "ours": res["batch_size"] / res["ours_s"], "peer": res["batch_size"] / res["naive_s"],
        "peer_name": "naive per-location Hessian loop (extrapolated)",
        "peak_fraction": (res["flops"] / res["ours_s"] / 1e9 / res["peak"]
                          if res["flops"] else None)}])
    write_readme_section("deliberative", report, heading=(
        "\n## Deliberative explanations: second-order insecurity maps\n\n"
        "    python -m benchmarks.deliberative --write\n\n"))


if __name__ == "__main__":
  main()
