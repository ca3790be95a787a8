"""The adversarial-detection page's sentences are computed from its outputs:
cells far from the authors' are listed as open, their value inside our
interval is marked, LCR is called "detectably above MSP" only when the paired
interval excludes 0, and the authors' one SPRT output sits beside ours."""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _load():
  path = os.path.join(ROOT, "experiments", "adversarial_detection", "make_page.py")
  spec = importlib.util.spec_from_file_location("adversarial_make_page", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _fake_run(tmp, page, rng):
  """A results.json with perfect LCR separation for FGSM (theirs 0.9647: off by
  more than 0.03) and no separation for the others, MSP at chance."""
  cfg = page.config
  attacks, ops = list(cfg.ATTACKS), list(cfg.OPERATORS)
  n = 60
  sets = ["normal", "sprt_normal", "wl", *attacks]
  lcr = {o: {k: rng.uniform(0, 0.1, n) for k in sets} for o in ops}
  for o in ops:
    lcr[o]["fgsm"] = rng.uniform(0.5, 1.0, n)  # AUROC exactly 1
  base = {f"{b}_{k}": rng.uniform(0, 1, n) for b in ("msp", "kde", "bu") for k in sets}
  auroc = {o: {a: page.metrics.auroc(np.r_[lcr[o][a], lcr[o]["normal"]],
                                     np.r_[np.ones(n, bool), np.zeros(n, bool)])
               for a in attacks} for o in ops}
  sprt = {o: {"threshold": 0.05, **{k: {"accuracy": 0.9, "mutants_used": 30.0}
                                    for k in ["sprt_normal", "wl", *attacks]}} for o in ops}
  r = {"test_accuracy": 0.99, "sizes": {k: n for k in sets}, "auroc": auroc, "sprt": sprt,
       "sprt_theirs": sprt, "gate": {o: {"drawn": 600, "accepted": 500,
                                         "original_accuracy": 0.99,
                                         "mean_mutant_accuracy": 0.97} for o in ops},
       "mean_lcr": {o: {k: float(v.mean()) for k, v in lcr[o].items()} for o in ops},
       "baselines": {a: {"msp": 0.5, "kde": 0.5, "bu": 0.5, "kde_bu_lr_in_sample": 0.5}
                     for a in [*attacks, "wl"]},
       "adv_counts": {a: n for a in attacks}, "attack_seconds": {a: 1.0 for a in attacks},
       "settings": {"mutants": 500, "rate": 0.05, "gate": 0.9, "cw_iterations": 10000,
                    "epochs": 10, "seed": 0, "lenet": "trained here"},
       "wall_seconds_this_run": 60.0, "date": "2026-12-05", "command": "python run.py"}
  os.makedirs(tmp, exist_ok=True)
  with open(os.path.join(tmp, "results.json"), "w") as f:
    json.dump(r, f)
  for o in ops:
    np.savez(os.path.join(tmp, f"lcr_{o}.npz"), **lcr[o])
  np.savez(os.path.join(tmp, "baseline_scores.npz"), **base)


def test_page_sentences_follow_the_numbers(tmp_path, monkeypatch):
  page = _load()
  _fake_run(str(tmp_path / "mnist"), page, np.random.default_rng(0))
  monkeypatch.setattr(page, "MNIST_DIR", str(tmp_path / "mnist"))
  monkeypatch.setattr(page, "CIFAR_DIR", str(tmp_path / "none"))
  monkeypatch.setattr(page, "RESAMPLES", 200)
  text = page.build()
  assert text.startswith("# Wang et al.'s experiment")
  assert text.index("| item | paper |") < text.index("Run 2026-12-05")  # protocol table first
  # FGSM: AUROC 1.0000 against their 0.9647: off by more than 0.03, listed as open.
  assert "1.0000 [1.0000, 1.0000] / 0.9647 / +0.0353*" in text
  assert "- FGSM / NAI: +0.0353. Open; candidates:" in text
  # Perfect LCR against chance MSP: detectably above; the chance-level sets are not.
  fgsm_line = next(line for line in text.splitlines() if line.startswith("- FGSM:"))
  assert fgsm_line == "- FGSM: detectably above MSP for NAI, GF, NS, WS."
  jsma_line = next(line for line in text.splitlines() if line.startswith("- JSMA:"))
  assert "detectably above" not in jsma_line
  # The authors' one SPRT output sits beside ours, with the difference.
  assert "our accuracy 0.9000 against their 0.9980 (-0.0980)" in text
  assert "| NAI | 0.0500 / 0.0441 | JSMA | 0.9000 / 30.0 | 0.9000 / 30.0 | 0.9980 / 35.8 |" in text
  assert "`run_cifar10.py` has not produced results yet (open)." in text


def test_page_refuses_outputs_that_disagree(tmp_path, monkeypatch):
  page = _load()
  _fake_run(str(tmp_path / "mnist"), page, np.random.default_rng(1))
  path = tmp_path / "mnist" / "results.json"
  r = json.loads(path.read_text())
  r["auroc"]["NAI"]["fgsm"] = 0.5  # results.json edited by hand
  path.write_text(json.dumps(r))
  monkeypatch.setattr(page, "MNIST_DIR", str(tmp_path / "mnist"))
  monkeypatch.setattr(page, "CIFAR_DIR", str(tmp_path / "none"))
  monkeypatch.setattr(page, "RESAMPLES", 50)
  with pytest.raises(ValueError, match="does not match results.json"):
    page.build()


def test_page_without_per_input_scores_makes_no_interval_claims(tmp_path, monkeypatch):
  """When a run's per-input scores are missing, the page is written from
  results.json alone: point AUROCs, no interval, and no sentence calling LCR
  above, below or equal to theirs or to MSP."""
  page = _load()
  folder = tmp_path / "mnist"
  _fake_run(str(folder), page, np.random.default_rng(2))
  for f in folder.glob("*.npz"):
    f.unlink()
  monkeypatch.setattr(page, "MNIST_DIR", str(folder))
  monkeypatch.setattr(page, "CIFAR_DIR", str(tmp_path / "none"))
  text = page.build()
  assert page.LOST_SCORES in text
  assert "| FGSM | 1.0000 / 0.9647 / +0.0353* |" in text
  assert "- FGSM / NAI: +0.0353. Open; candidates:" in text
  for claim in ("detectably", "inside our interval", "no detectable difference"):
    assert claim not in text, claim
  assert "this page makes no claim that ours agree with or differ from theirs" in text


def test_page_refuses_a_partial_set_of_score_files(tmp_path, monkeypatch):
  page = _load()
  folder = tmp_path / "mnist"
  _fake_run(str(folder), page, np.random.default_rng(3))
  (folder / "lcr_GF.npz").unlink()
  monkeypatch.setattr(page, "MNIST_DIR", str(folder))
  monkeypatch.setattr(page, "CIFAR_DIR", str(tmp_path / "none"))
  with pytest.raises(ValueError, match="lcr_GF.npz missing"):
    page.build()
