"""One process of the multi-process tests (``tests/test_multiprocess.py``):

    python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT DEVICES SCENARIO OUT [ARGS]

It starts ``jax.distributed`` on 127.0.0.1:PORT (loopback only) with CPU
collectives over gloo and DEVICES simulated CPU devices per process, runs
SCENARIO and, on process 0, writes its arrays to OUT (``.npz``).
"""
import os
import sys

pid, nproc, port, ndev, scenario, out = sys.argv[1:7]
pid, nproc, ndev = int(pid), int(nproc), int(ndev)
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={ndev}"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
if nproc > 1:
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc,
                             process_id=pid, initialization_timeout=120)

import numpy as np  # noqa: E402
import optax  # noqa: E402

from explicable_jax import data, losses, models, mutation, training  # noqa: E402


def _setup():
  ds = data.load("digits", "train")
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=ds.input_shape,
                          num_classes=10, hidden=(16,))
  opt = optax.adam(1e-2)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  return ds, state, training.make_train_step(losses.cross_entropy_loss, opt)


def fit(epochs, workdir=None):
  ds, state, step = _setup()
  state, history = training.fit(
      state, ds, train_step=step, epochs=int(epochs), batch_size=64, progress=False,
      log_every=5, eval_ds=ds.take(np.arange(300)),
      **({"workdir": workdir, "checkpoint_every": 10} if workdir else {}))
  ev = training.evaluate(state, ds)
  return {f"p{i}": np.asarray(jax.device_get(a))
          for i, a in enumerate(jax.tree.leaves(state.params))} | {
              "step": np.asarray(int(jax.device_get(state.step))),
              "eval_accuracy": np.asarray([r["eval_accuracy"] for r in history.evals]),
              "accuracy": np.asarray(ev["accuracy"]),
              "logits": training.predict(state, ds.x[:50]),
              # The work split across processes (ignored with one process):
              # 51 rows and batches of 20 make uneven shares and padding.
              "split_accuracy": np.asarray(
                  training.evaluate(state, ds, across_processes=True)["accuracy"]),
              "split_logits": training.predict(state, ds.x[:51], batch_size=20,
                                               across_processes=True),
              "split_tiny": training.predict(state, ds.x[:3], across_processes=True)}


def mutants():
  ds, state, _ = _setup()
  clf = state.classifier
  muts = mutation.mutate_many(jax.random.key(2), clf.params, 12, "GF", 0.5, layers="kernels")
  x = ds.x[:300]
  return {"local": mutation.mutant_predictions(clf, muts, x, mutant_chunk=4, batch_size=100),
          "global": mutation.mutant_predictions(clf, muts, x, mutant_chunk=4, batch_size=100,
                                                mesh="global"),
          "lcr": mutation.label_change_rate(clf, muts, x, mutant_chunk=4, batch_size=100)}


result = {"fit": fit, "mutants": mutants}[scenario](*sys.argv[7:])
if jax.process_index() == 0:
  np.savez(out, **result)
print(f"process {pid}: done", flush=True)
if nproc > 1:
  jax.distributed.shutdown()
