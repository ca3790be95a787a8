"""Attribution evaluation speed: ours (JAX) beside Captum (PyTorch CPU) on the
committed ResNet-20, Captum's two metrics with Captum's defaults.

    python -m benchmarks.attribution_evaluation [--batch-size 16] [--repeats 3] [--write]

Both sides hold the committed weights (``experiments/checkpoints/resnet20_cifar10``,
copied into the PyTorch twin of ``benchmarks/torch_resnet.py`` behind the same
input normalisation), take the same batch of 32x32x3 inputs (uniform in
``[0, 1]``, seed 1) and explain the same target (the predicted class). Rows:

* ``infidelity``: ``n_perturb_samples=10``, Gaussian perturbations with
  standard deviation 0.003 (``(I, x - I)``, the perturbation of Captum's
  infidelity tutorial), of the saliency maps (computed once, outside the
  timing); all ``N x 10`` perturbed inputs in one forward pass
  (``max_examples_per_batch=None``, Captum's default).
* ``sensitivity_max``: Captum's defaults (``n_perturb_samples=10``, uniform
  perturbations of radius 0.02, Frobenius norm) of saliency (``|gradient|``,
  Captum's ``Saliency`` default); the explanation re-run on all ``N x 10``
  perturbed inputs at once.

Timing: each side's metric call (ours jitted, compiled by a first call),
interleaved ours / Captum ``repeats`` times after one warm-up each; the
median. Captum runs with PyTorch's default thread count and with one thread
(on a loaded machine one can be faster); each metric's faster setting counts,
and the table names it. Agreement: both sides on the same perturbations (ours drawn, handed to
Captum in its example-major order); the relative difference of the results.
The load average of the machine at start and end is printed beside the
figures (the CPU is shared with background runs).
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

from explicable_jax import models
from explicable_jax.attribution import batched
from explicable_jax.attribution import evaluation as E

CHECKPOINT = os.path.join(os.path.dirname(__file__), "..", "experiments", "checkpoints",
                          "resnet20_cifar10", "model")
N_SAMPLES = 10
STDDEV = 0.003


def saliency(m, x, t):
  return batched.saliency(m, x, target=t, absolute=True)


PERTURB = E.gaussian_perturb_func(STDDEV)


@jax.jit
def _infidelity(key, clf, x, phi, t):
  return E.infidelity(key, clf, PERTURB, x, phi, target=t, n_perturb_samples=N_SAMPLES)


@jax.jit
def _sensitivity(key, clf, x, t):
  return E.sensitivity_max(key, saliency, clf, x, target=t, n_perturb_samples=N_SAMPLES)


def _median_interleaved(calls: dict, repeats: int) -> dict:
  for f in calls.values():
    f()
  times = {k: [] for k in calls}
  for _ in range(repeats):
    for k, f in calls.items():
      t = time.perf_counter()
      f()
      times[k].append(time.perf_counter() - t)
  return {k: float(np.median(v)) for k, v in times.items()}


def _torch_twin(clf):
  import torch

  from benchmarks.torch_resnet import from_flax
  module = clf.module()
  net = from_flax(module)
  mean = torch.tensor(module.input_mean, dtype=torch.float32).view(1, 3, 1, 1)
  std = torch.tensor(module.input_std, dtype=torch.float32).view(1, 3, 1, 1)

  class Normalised(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.net = net

    def forward(self, x):
      return self.net((x - mean) / std)

  return Normalised().eval()


def run(batch_size: int = 16, repeats: int = 3):
  load_start = os.getloadavg()
  clf = models.load(CHECKPOINT)
  key = jax.random.key(0)
  x = jax.random.uniform(jax.random.key(1), (batch_size, 32, 32, 3))
  t = jnp.argmax(jax.jit(clf.logits)(x), -1)
  phi = jax.jit(saliency)(clf, x, t)
  ours = {"infidelity": lambda: jax.block_until_ready(_infidelity(key, clf, x, phi, t)),
          "sensitivity_max": lambda: jax.block_until_ready(_sensitivity(key, clf, x, t))}
  result = {"batch_size": batch_size, "repeats": repeats, "load_start": load_start}
  try:
    import torch
    from captum.attr import Saliency
    from captum.metrics import infidelity, sensitivity_max
  except ImportError:
    result["ours"] = _median_interleaved(ours, repeats)
    result["peer"] = None
    result["load_end"] = os.getloadavg()
    return result
  net = _torch_twin(clf)
  to_torch = lambda a: torch.from_numpy(np.array(a).transpose(0, 3, 1, 2).copy())
  xt, tt, phit = to_torch(x), torch.from_numpy(np.array(t).astype(np.int64)), to_torch(phi)
  sal = Saliency(net)

  def captum_perturb(inputs):
    noise = torch.randn_like(inputs) * STDDEV
    return noise, inputs - noise

  theirs = {
      "infidelity": lambda: infidelity(net, captum_perturb, xt, phit, target=tt,
                                       n_perturb_samples=N_SAMPLES),
      "sensitivity_max": lambda: sensitivity_max(sal.attribute, xt, target=tt,
                                                 n_perturb_samples=N_SAMPLES),
  }
  # PyTorch's threads spin while they wait: on a loaded machine one thread
  # can beat two, so Captum runs with both settings and the faster one counts.
  default_threads = torch.get_num_threads()
  result["ours"], result["peer"], result["peer_threads"] = {}, {}, {}
  for threads in sorted({default_threads, 1}, reverse=True):
    torch.set_num_threads(threads)
    calls = {("ours", k): f for k, f in ours.items()}
    calls.update({("captum", k): f for k, f in theirs.items()})
    times = _median_interleaved(calls, repeats)
    for k in ours:
      result["ours"][k] = min(result["ours"].get(k, np.inf), times[("ours", k)])
      if times[("captum", k)] < result["peer"].get(k, np.inf):
        result["peer"][k] = times[("captum", k)]
        result["peer_threads"][k] = threads
  torch.set_num_threads(default_threads)
  result["agreement"] = _agreement(key, clf, net, x, t, phi, xt, tt, phit)
  result["torch"] = f"torch {torch.__version__}"
  result["load_end"] = os.getloadavg()
  return result


def _agreement(key, clf, net, x, t, phi, xt, tt, phit) -> dict:
  """Relative difference of the two sides on the same perturbations."""
  import torch
  from captum.attr import Saliency
  from captum.metrics import infidelity, sensitivity_max
  n, shape = x.shape[0], x.shape[1:]
  keys = jax.vmap(lambda i: jax.vmap(lambda j: jax.random.fold_in(key, i * N_SAMPLES + j))(
      jnp.arange(N_SAMPLES)))(jnp.arange(n))
  to_torch = lambda a: torch.from_numpy(np.array(a).reshape((-1,) + shape)
                                        .transpose(0, 3, 1, 2).copy())
  noise = to_torch(jax.vmap(jax.vmap(lambda k, xi: PERTURB(k, xi)[0], (0, None)))(keys, x))
  delta = to_torch(jax.vmap(jax.vmap(lambda k, xi: E.default_perturb_func(k, xi) - xi,
                                     (0, None)))(keys, x))
  ours_i = np.asarray(_infidelity(key, clf, x, phi, t))
  theirs_i = infidelity(net, lambda inp: (noise, inp - noise), xt, phit, target=tt,
                        n_perturb_samples=N_SAMPLES).numpy()
  ours_s = np.asarray(_sensitivity(key, clf, x, t))
  theirs_s = sensitivity_max(Saliency(net).attribute, xt, target=tt,
                             n_perturb_samples=N_SAMPLES,
                             perturb_func=lambda inp, r: inp + delta).numpy()
  rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
  return {"infidelity": rel(ours_i, theirs_i), "sensitivity_max": rel(ours_s, theirs_s)}


def format_report(result) -> str:
  today = datetime.date.today().isoformat()
  peer = result["peer"]
  la, lb = result["load_start"], result["load_end"]
  lines = [
      f"{today}, {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
      f"({jax.default_backend()})" + (f", {result['torch']} + Captum" if peer else "")
      + f", committed ResNet-20, batch {result['batch_size']}, n_perturb_samples "
      f"{N_SAMPLES}, median of {result['repeats']} interleaved runs. **The CPU was shared** "
      f"with background runs (training, other sessions' tests): load average "
      f"{la[0]:.1f} at the start and {lb[0]:.1f} at the end, on {os.cpu_count()} cores; "
      "both sides ran under the same load, interleaved.",
      "",
      "| metric | ours s / batch | Captum s / batch (threads) | ours img/s | Captum img/s | ratio |",
      "|---|---|---|---|---|---|",
  ]
  labels = {"infidelity": "infidelity of saliency, Gaussian I (sd 0.003)",
            "sensitivity_max": "sensitivity_max of saliency, U[-0.02, 0.02]"}
  n = result["batch_size"]
  for k, label in labels.items():
    ours = result["ours"][k]
    theirs = peer[k] if peer else float("nan")
    threads = f" ({result['peer_threads'][k]})" if peer else ""
    lines.append(f"| {label} | {ours:.3f} | {theirs:.3f}{threads} | {n / ours:.1f} | "
                 f"{n / theirs:.1f} | {theirs / ours:.2f}x |")
  if peer:
    ag = result["agreement"]
    lines += ["", ("Agreement on the same perturbations (||ours - Captum|| / ||Captum||): "
                   f"infidelity {ag['infidelity']:.1e}, sensitivity_max "
                   f"{ag['sensitivity_max']:.1e}.")]
  return "\n".join(lines)


def summary_rows(result) -> list[dict]:
  if not result["peer"]:
    return []
  n = result["batch_size"]
  return [{"benchmark": f"{k} of saliency, ResNet-20, batch {n}, 10 samples", "unit": "img/s",
           "ours": n / result["ours"][k], "peer": n / result["peer"][k], "peer_name": "Captum"}
          for k in ("infidelity", "sensitivity_max")]


HEADING = """## Attribution evaluation: infidelity and sensitivity vs Captum (CPU)

    python -m benchmarks.attribution_evaluation --write   # needs torch + captum

Protocol in the module docstring (`benchmarks/attribution_evaluation.py`): the
committed ResNet-20 on both sides, Captum's metric definitions and defaults,
the same inputs and targets, each side's metric call timed (ours jitted).

"""


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--write", action="store_true",
                      help="record the table in benchmarks/README.md")
  args = parser.parse_args()
  result = run(args.batch_size, args.repeats)
  report = format_report(result)
  print(report)
  if args.write:
    from benchmarks import _suite
    from benchmarks.attribution import write_readme_section
    write_readme_section("attribution_evaluation", report, heading=HEADING)
    _suite.record("attribution_evaluation", summary_rows(result))


if __name__ == "__main__":
  main()
