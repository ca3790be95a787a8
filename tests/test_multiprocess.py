"""Several processes on this machine (loopback only, CPU collectives over
gloo, simulated CPU devices): the same results as one process with the same
number of devices, and checkpoints that move between the two."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multiprocess_worker.py")
# Float tolerance: gloo sums the gradients of the processes in another order
# than one process sums its devices' (seen: 6e-8 after 42 Adam steps).
ATOL = 1e-5


def _port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run(nproc, ndev, scenario, out, *args):
  port = _port()
  env = {**os.environ, "PYTHONPATH": ROOT}
  procs = [subprocess.Popen([sys.executable, WORKER, str(i), str(nproc), str(port), str(ndev),
                             scenario, str(out), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(nproc)]
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=300)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  return dict(np.load(out))


@pytest.mark.parametrize("nproc", [2, 4])
def test_training_in_several_processes_equals_one_process(tmp_path, nproc,
                                                          one_process_4_devices):
  many = run(nproc, 2, "fit", tmp_path / "many.npz", 2)
  one = (one_process_4_devices if nproc == 2
         else run(1, 2 * nproc, "fit", tmp_path / "one.npz", 2))
  from explicable_jax import data
  assert int(many["step"]) == int(one["step"]) == 2 * (len(data.load("digits", "train")) // 64)
  for k in one:
    np.testing.assert_allclose(many[k], one[k], atol=ATOL, rtol=0, err_msg=k)


def test_mutant_predictions_across_processes_equal_one_process(tmp_path):
  many = run(2, 2, "mutants", tmp_path / "many.npz")
  one = run(1, 4, "mutants", tmp_path / "one.npz")
  for k in ("local", "global", "lcr"):
    np.testing.assert_array_equal(many[k], one[k], err_msg=k)
  np.testing.assert_array_equal(many["local"], many["global"])


@pytest.fixture(scope="module")
def one_process_4_devices(tmp_path_factory):
  """The reference: one process, 4 devices, 2 epochs."""
  return run(1, 4, "fit", tmp_path_factory.mktemp("one") / "one.npz", 2)


def test_checkpoints_move_between_multi_and_single_process_runs(tmp_path,
                                                               one_process_4_devices):
  # A 2-process run stops after 1 epoch; one process resumes it to 2 epochs,
  # and the other way round: both equal an uninterrupted one-process run
  # (parameters, step, final evaluation and logits; the per-epoch history of a
  # resumed run holds only the epochs it ran).
  want = one_process_4_devices
  run(2, 2, "fit", tmp_path / "a1.npz", 1, tmp_path / "multi_first")
  a = run(1, 4, "fit", tmp_path / "a2.npz", 2, tmp_path / "multi_first")
  run(1, 4, "fit", tmp_path / "b1.npz", 1, tmp_path / "single_first")
  b = run(2, 2, "fit", tmp_path / "b2.npz", 2, tmp_path / "single_first")
  for got in (a, b):
    assert int(got["step"]) == int(want["step"])
    np.testing.assert_allclose(got["eval_accuracy"], want["eval_accuracy"][-1:], atol=ATOL)
    for k in want:
      if k != "eval_accuracy":
        np.testing.assert_allclose(got[k], want[k], atol=ATOL, rtol=0, err_msg=k)


def test_one_process_holds_every_row_of_the_batch():
  from explicable_jax import training
  from explicable_jax.training.parallel import process_rows
  assert process_rows(training.data_mesh(), 64) == slice(0, 64)
