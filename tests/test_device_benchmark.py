"""The accelerator check (``python -m benchmarks.device``) run on CPU at its
tiny sizes, as the command a GPU session runs: every part runs, passes its
checks against the CPU reference (benchmarks/device_reference.json), and
writes sane values to device.json and device.md, so the script cannot rot
between the sessions that have a GPU."""
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from benchmarks import device

ROOT = pathlib.Path(__file__).resolve().parents[1]
TORCH = importlib.util.find_spec("torch") is not None
CAPTUM = importlib.util.find_spec("captum") is not None
DATA = os.environ.get("EXPLICABLE_JAX_DATA")
CIFAR = bool(DATA) and os.path.exists(os.path.join(DATA, device.CIFAR_TEST_FILE))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("device")
  # Tiny programs: XLA's fastest compilation (the speeds mean nothing here).
  flags = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
  env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": flags}
  proc = subprocess.run([sys.executable, "-m", "benchmarks.device", "--tiny", "--out", str(out),
                         "--budget-s", "900"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  result = json.loads((out / "device.json").read_text())
  return result, (out / "device.md").read_text(), out


def _finite_positive(v) -> bool:
  return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_every_part_runs_and_passes_its_checks(tiny_run):
  result, _, _ = tiny_run
  parts = result["parts"]
  assert list(parts) == list(device.PARTS)
  for name, part in parts.items():
    if name == "accuracy" and not CIFAR:
      assert part["status"] == "skipped" and device.CIFAR_TEST_FILE in part["error"]
      continue
    assert part["status"] == "ok", (name, part.get("error"), part.get("traceback"))
  checks = {(name, c["check"]): c for name, p in parts.items() for c in p.get("checks", [])}
  failed = {k: c for k, c in checks.items() if not c["ok"]}
  assert not failed, failed
  # The comparisons with the CPU reference all ran (they need its tiny entry).
  ran = {name for name, _ in checks}
  assert {"convergence", "loss_curve", "mutant_predictions", "tests"} <= ran
  assert ("accuracy" in ran) == CIFAR
  assert len([k for k in checks if k[0] == "loss_curve"]) == 2  # float32 and bfloat16
  assert len([k for k in checks if k[0] == "convergence"]) == 2  # IG and conductance


def test_the_numbers_are_sane(tiny_run):
  result, _, _ = tiny_run
  p = result["parts"]
  assert result["meta"]["sizes"] == "tiny" and result["meta"]["backend"] == "cpu"
  env = p["environment"]
  assert env["devices"] and env["versions"]["jax"]
  assert env["code_paths"]["mutant_predictions default"]["strategy"] == "map"  # CPU
  assert all(_finite_positive(v) for v in p["peak"]["measured_gflops"].values())
  # Train step: float32 and bfloat16 steps and the forward pass, FLOPs counted.
  rows = p["train_step"]["rows"]
  assert [r["what"] for r in rows] == ["train step, float32", "train step, bfloat16",
                                       "forward, float32"]
  for r in rows:
    assert _finite_positive(r["ours img/s"]) and _finite_positive(r["MFLOP/img"])
    assert _finite_positive(r["PyTorch img/s"]) == TORCH
  # Every mutant path asked for, both loops, all with the loop's predictions.
  paths = {r["path"]: r for r in p["mutant_paths"]["rows"]}
  assert set(paths) == set(device.TINY.mutant_paths) | {"JAX loop over mutants",
                                                        "PyTorch loop over mutants"}
  for name, r in paths.items():
    if name.startswith("PyTorch") and not TORCH:
      assert "skipped" in r
      continue
    assert _finite_positive(r["img x mutants/s"]) and r["images"] >= 1, r
    assert r["agreement with JAX loop"] == 1.0, r
  assert p["mutant_paths"]["fastest"] in device.TINY.mutant_paths
  # Attribution: the five rows, and Captum's numbers agree with ours.
  rows = p["attribution"]["rows"]
  assert len(rows) == 5 and all(_finite_positive(r["ours img/s"]) for r in rows)
  if TORCH and CAPTUM:
    assert all(_finite_positive(r["ratio vs Captum"]) for r in rows)
    assert max(p["attribution"]["relative error vs Captum"].values()) < 1e-3
  # Second order: the naive loop's quadratic terms are ours.
  so = p["second_order"]
  assert _finite_positive(so["ours_s"]) and _finite_positive(so["naive_s"]) and so["rel"] < 1e-3
  # Correctness parts: finite deltas and losses, the loop's predictions.
  highest = p["convergence"]["precisions"]["highest"]
  assert all(math.isfinite(v) for k in ("ig", "conductance", "gap") for v in highest[k])
  for curve in p["loss_curve"]["curves"].values():
    assert len(curve) == device.TINY.curve_steps and all(math.isfinite(v) for v in curve)
  assert p["mutant_predictions"]["disagreeing_pairs"] == 0
  assert p["tests"]["counts"] == {"PASSED": 1}
  if CIFAR:
    assert 0.5 < p["accuracy"]["accuracy"] <= 1.0  # the trained model, not chance


def test_markdown_and_log_are_written(tiny_run):
  result, md, out = tiny_run
  for name in device.PARTS:
    assert f"#### {name}" in md
  assert "| part | check | value | limit | passed |" in md
  assert md.startswith(result["meta"]["date"])
  assert "**no**" not in md.split("#### environment")[0]  # every check passed
  assert "PASSED" in (out / "tests.log").read_text()


def test_a_run_becomes_summary_rows_and_the_same_markdown(tiny_run):
  """``--record`` turns a device run into the benchmarks summary's rows (each
  a ratio against its peer) and the README section, from device.json alone."""
  result, md, _ = tiny_run
  assert device.markdown(result) + "\n" == md
  rows = device.summary_rows(result)
  if TORCH:
    train = [r for r in rows if r["peer_name"] == "PyTorch"]
    assert len(train) == 3 and all(r["ours"] > 0 and r["peer"] > 0 for r in train)
    assert any(r["peer_name"] == "PyTorch loop over mutants" for r in rows)
  if TORCH and CAPTUM:
    assert len([r for r in rows if r["peer_name"] == "Captum"]) == 5
  for r in rows:
    assert {"benchmark", "unit", "ours", "peer", "peer_name"} <= set(r)
