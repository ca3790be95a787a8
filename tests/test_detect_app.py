"""The detection table (library) and the ``explicable-jax detect`` command."""
import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from explicable_jax import detection, metrics, models
from explicable_jax.app import cli, detect

SHAPE = (8, 8, 1)


def _toy(n=400, seed=0):
  rng = np.random.default_rng(seed)
  wrong = rng.random(n) < 0.3
  good = np.where(wrong, rng.normal(1.0, 1.0, n), rng.normal(0.0, 1.0, n))
  return wrong, good, rng.normal(size=n)


def test_bootstrap_difference_is_zero_for_the_same_scores():
  wrong, good, _ = _toy()
  r = metrics.bootstrap_auroc_difference(jax.random.key(0), good, good, wrong,
                                         n_resamples=50)
  assert r["difference"] == 0.0 and r["low"] == 0.0 and r["high"] == 0.0
  assert r["p_not_better"] == 1.0


def test_bootstrap_difference_matches_a_hand_loop_with_the_same_indices():
  wrong, good, noise = _toy()
  key = jax.random.key(3)
  r = metrics.bootstrap_auroc_difference(key, good, noise, wrong, n_resamples=200,
                                         level=0.9)
  idx = np.asarray(jax.random.randint(key, (200, len(good)), 0, len(good)))
  d = np.array([metrics.auroc(good[i], wrong[i]) - metrics.auroc(noise[i], wrong[i])
                for i in idx])
  np.testing.assert_allclose([r["low"], r["high"]], np.quantile(d, [0.05, 0.95]))
  assert r["difference"] == pytest.approx(metrics.auroc(good, wrong) -
                                          metrics.auroc(noise, wrong))
  # An informative score against noise: the interval lies above zero.
  assert r["low"] > 0.1 and r["p_not_better"] == 0.0


def test_bootstrap_difference_rejects_bad_arguments():
  wrong, good, noise = _toy()
  with pytest.raises(ValueError, match="baseline_scores"):
    metrics.bootstrap_auroc_difference(jax.random.key(0), good, noise[:10], wrong)
  with pytest.raises(ValueError, match="n_resamples"):
    metrics.bootstrap_auroc_difference(jax.random.key(0), good, noise, wrong, n_resamples=1)
  with pytest.raises(ValueError, match="level"):
    metrics.bootstrap_auroc_difference(jax.random.key(0), good, noise, wrong, level=1.5)


def test_score_table_equals_the_metric_functions():
  wrong, good, noise = _toy()
  t = detection.score_table({"good": good, "noise": noise}, wrong, thresholds={"good": 0.5})
  row = t["good"]
  assert row["auroc"] == metrics.auroc(good, wrong)
  assert row["aupr"] == metrics.aupr(good, wrong)
  assert row["fpr95"] == metrics.fpr_at_tpr(good, wrong, 0.95)
  assert row["aurc"] == metrics.aurc(good, wrong)
  assert row["e_aurc"] == metrics.e_aurc(good, wrong)
  assert row["selective_accuracy@0.9"] == metrics.selective_accuracy(good, wrong, 0.9)
  assert row["wrong_recall"] == np.mean(good[wrong] >= 0.5)
  assert "right_recall" not in t["noise"]
  with pytest.raises(ValueError, match="thresholds names scores that are not given"):
    detection.score_table({"good": good}, wrong, thresholds={"bad": 0.1})
  with pytest.raises(ValueError, match="non-empty mapping"):
    detection.score_table({}, wrong)
  with pytest.raises(ValueError, match="baseline"):
    detection.compare_to_baseline(jax.random.key(0), {"good": good}, wrong, baseline="msp")


class UserCNN(nnx.Module):
  """A user's own NNX model (not in the zoo)."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, 8, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(8, 8, (3, 3), rngs=rngs)
    self.out = nnx.Linear(8, 3, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.conv1(x))
    x = nnx.relu(self.conv2(x))
    return self.out(x.mean(axis=(1, 2)))


def _user_model(tmp_path):
  def build(input_shape, num_classes, rngs):  # split points by sub-module name
    return models.from_nnx(UserCNN(nnx.Rngs(rngs.params())), layers=["conv1", "conv2"],
                           input_shape=input_shape)
  models.register_model("detect_test_cnn", build, overwrite=True)
  clf = models.classifier(jax.random.key(0), "detect_test_cnn", input_shape=SHAPE,
                          num_classes=3)
  models.save(tmp_path / "model", clf)
  # Labels that the model's own predictions give for most images, so that it
  # makes both right and wrong predictions.
  rng = np.random.default_rng(0)
  x = rng.random((360, *SHAPE)).astype(np.float32)  # images in [0, 1]
  pred = np.asarray(clf.logits(x)).argmax(-1)
  y = np.where(rng.random(360) < 0.7, pred, rng.integers(0, 3, 360))
  np.savez(tmp_path / "data.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:],
           y_test=y[200:])
  return clf


def test_detect_command_on_a_users_own_model(tmp_path, capsys):
  _user_model(tmp_path)
  out = tmp_path / "out"
  argv = ["detect", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data.npz"),
          "--scores", "mahalanobis,lcr,conductance", "--mutants", "3", "--rate", "0.1",
          "--out", str(out), "--no-progress"]
  try:
    assert cli.main(argv) == 0
  finally:
    del models.MODELS["detect_test_cnn"]
  res = json.loads((out / "results.json").read_text())
  assert res["layer"] == "conv2"  # the last split point with a feature map
  assert set(res["table"]) == set(detect.score_names())
  assert set(res["auroc_minus_msp"]) == set(detect.score_names()) - {"msp"}
  with np.load(out / "scores.npz") as f:
    wrong = f["test_wrong"]
    for name in detect.score_names():
      assert res["table"][name]["auroc"] == pytest.approx(
          metrics.auroc(f[f"test_{name}"], wrong))
    # MSP is one minus the top softmax probability of the saved model.
    assert np.all((f["test_msp"] >= 0) & (f["test_msp"] < 1))
  for png in ("roc.png", "risk_coverage.png"):
    assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "| mahalanobis |" in (out / "table.md").read_text()


def test_detect_command_rejects_bad_arguments(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["detect", "--model", "m", "--dataset", "cifar10", "--scores", "msp,nope",
              "--out", str(tmp_path)])
  assert e.value.code == 2
  assert "expected a comma-separated list" in capsys.readouterr().err
  rc = cli.main(["detect", "--model", str(tmp_path / "missing"), "--dataset", "digits",
                 "--out", str(tmp_path / "o")])
  assert rc == 2
  err = capsys.readouterr().err
  assert "explicable-jax detect: error: model" in err and "model.json" in err
  np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 1)))
  with pytest.raises(ValueError, match="it lacks y_train, x_test, y_test"):
    detect.load_splits(None, str(tmp_path / "bad.npz"), None, 0, None)


def test_detect_names_the_data_argument_when_labels_are_out_of_range(tmp_path, capsys):
  """A 3-class model on data labelled 0..9: the labels are named as the
  problem (argument, values given, range expected), not the predictions."""
  _user_model(tmp_path)
  try:
    with np.load(tmp_path / "data.npz") as f:
      arrays = dict(f)
    arrays["y_test"] = np.arange(len(arrays["y_test"])) % 10
    np.savez(tmp_path / "ten.npz", **arrays)
    rc = cli.main(["detect", "--model", str(tmp_path / "model"), "--data",
                   str(tmp_path / "ten.npz"), "--out", str(tmp_path / "o"), "--no-progress"])
  finally:
    del models.MODELS["detect_test_cnn"]
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1, err
  assert "--data" in err[0] and "y_test" in err[0] and "[0, 3)" in err[0], err
  assert "from 0 to 9" in err[0] and "wrong predictions" not in err[0], err


def test_the_cli_and_detect_read_the_one_logit_score_registry(tmp_path, capsys):
  """A score registered in detection.scores is a --scores choice of detect
  and audit, and detect computes it: its table row is its AUROC on the
  saved scores."""
  from explicable_jax.detection import scores
  argv = ["--model", "m", "--dataset", "digits", "--out", str(tmp_path), "--scores",
          "top_logit"]
  with pytest.raises(SystemExit):  # not registered yet
    cli.build_parser().parse_args(["detect", *argv])
  assert "top_logit" in capsys.readouterr().err
  scores.register_score("top_logit", lambda z, *, temperature=1.0: -z.max(-1) / temperature)
  try:
    for command in ("detect", "audit"):
      assert cli.build_parser().parse_args([command, *argv]).scores == ("top_logit",)
    _user_model(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["detect", "--model", str(tmp_path / "model"), "--data",
                     str(tmp_path / "data.npz"), "--out", str(out), "--no-progress"]) == 0
  finally:
    del scores.LOGIT_SCORES["top_logit"]
    del models.MODELS["detect_test_cnn"]
  res = json.loads((out / "results.json").read_text())
  assert set(res["table"]) == {*scores.score_names(), "top_logit"}
  with np.load(out / "scores.npz") as f:
    assert res["table"]["top_logit"]["auroc"] == pytest.approx(
        metrics.auroc(f["test_top_logit"], f["test_wrong"]))
  with pytest.raises(ValueError, match="temperature"):
    scores.register_score("plain", lambda z: z.max(-1))


def test_detect_config_is_the_clis_defaults():
  """The parser's defaults are DetectConfig's (built from its fields)."""
  args = cli.build_parser().parse_args(["detect", "--model", "m", "--data", "d.npz",
                                        "--out", "o"])
  from explicable_jax.app import _options
  assert _options.from_args(detect.DetectConfig, args) == detect.DetectConfig(data_file="d.npz")
  with pytest.raises(TypeError, match="unknown settings rates"):
    detect.run_detect("m", "o", rates=(0.1,))


@pytest.mark.skipif(not os.path.exists(os.path.join(
    os.environ.get("EXPLICABLE_JAX_DATA", "../shared/data"), "cifar10_test.npz")),
    reason="needs the local CIFAR-10 copy")
def test_detect_command_on_the_committed_resnet20(tmp_path):
  root = os.path.dirname(os.path.dirname(__file__))
  res = detect.run_detect(os.path.join(root, "experiments/checkpoints/resnet20_cifar10"),
                          str(tmp_path), dataset="cifar10", limit=300, n_resamples=50,
                          progress=False)
  assert res["layer"] is None and set(res["table"]) == set(detect.logit_score_names())
  # The 300 first test-half images of the committed model (86.8% on the half).
  assert 0.8 < res["accuracy"]["test"] < 0.95
  # MSP ranks this model's errors far better than chance.
  assert res["table"]["msp"]["auroc"] > 0.8


@pytest.mark.skipif(not os.path.exists(os.path.join(
    os.environ.get("EXPLICABLE_JAX_DATA", "../shared/data"), "cifar10_test.npz")),
    reason="needs the local CIFAR-10 copy")
def test_error_detection_script_runs_end_to_end_and_resumes(tmp_path):
  """``experiments/error_detection_cifar10/run.py`` on 200 images per split: every
  table of the page is written, and a rerun reads the caches and reproduces it."""
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  cmd = [sys.executable, os.path.join(root, "experiments/error_detection_cifar10/run.py"),
         "--model", os.path.join(root, "experiments/checkpoints/resnet20_cifar10"),
         "--data-dir", os.environ.get("EXPLICABLE_JAX_DATA", "../shared/data"),
         "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--limit", "200",
         "--mutants", "4", "--extra-mutants", "2", "--operator", "NAI", "--rate", "0.01",
         "--gate-images", "100", "--train-subset", "100", "--detector-epochs", "2"]
  env = {**os.environ, "PYTHONPATH": root}
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  res = json.loads((tmp_path / "o" / "results.json").read_text())
  names = set(res["ours"]["test"])
  assert {"MSP", "LCR", "conductance", "conductance (Wu)", "Mahalanobis",
          "MSP + LCR (logreg)", "all (nn)"} <= names
  assert set(res["wu_protocol"]["test"]) >= {"LCR + conductance (rf)", "MSP"}
  assert {"test_s3", "test_s5"} <= set(res["ours"])
  # Each bootstrap interval is an interval around its difference.
  for c in res["ours"]["test_vs_msp"].values():
    assert c["low"] <= c["high"]
  again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  res2 = json.loads((tmp_path / "o" / "results.json").read_text())
  assert res2["ours"]["test"] == res["ours"]["test"]
  assert "mutant predictions" not in again.stdout  # every stage came from the cache


def test_the_error_detection_page_is_what_its_committed_outputs_give():
  """Every number on ``experiments/results/error_detection_cifar10.md`` is
  written by ``make_page.py`` from the committed ``results.json``/``tables.md``
  and logs of the runs; an edit by hand, or a rerun without the page, fails."""
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "experiments/error_detection_cifar10/make_page.py",
                        "--check"], cwd=root, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
