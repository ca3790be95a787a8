import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from explicable_jax.app import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_help_explains_every_train_option(capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "--help"])
  text = capsys.readouterr().out
  for option in ("--dataset", "--model", "--loss", "--epochs", "--batch-size",
                 "--schedule", "--seed", "--workdir", "--data-dir", "--resume"):
    assert option in text
  assert "resnet20" in text and "cifar10" in text and "one_cycle" in text


def test_unknown_names_and_bad_numbers_exit_2_with_a_message(tmp_path, capsys):
  assert cli.main(["train", "--dataset", "cifar11", "--workdir", str(tmp_path)]) == 2
  assert "valid datasets are" in capsys.readouterr().err
  assert cli.main(["train", "--lr", "0", "--workdir", str(tmp_path)]) == 2
  assert "learning_rate must be a positive number" in capsys.readouterr().err
  assert cli.main(["train", "--batch-size", "-4", "--workdir", str(tmp_path)]) == 2
  assert "batch_size must be a positive integer" in capsys.readouterr().err


def test_train_then_evaluate_on_digits(tmp_path, capsys):
  work = tmp_path / "run"
  assert cli.main(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "3",
                   "--batch-size", "64", "--lr", "0.1", "--workdir", str(work),
                   "--no-progress"]) == 0
  result = json.loads((work / "result.json").read_text())
  assert result["test"]["accuracy"] > 0.8
  assert (work / "model" / "model.json").exists()
  capsys.readouterr()
  assert cli.main(["evaluate", str(work)]) == 0
  out = capsys.readouterr().out
  evaluated = json.loads(out[out.index("{"):])
  assert evaluated["accuracy"] == pytest.approx(result["test"]["accuracy"])


def test_console_command_and_quickstart_run():
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  out = subprocess.run([sys.executable, "-m", "explicable_jax", "quickstart", "--epochs", "2",
                        "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "test accuracy" in out.stdout


@pytest.mark.parametrize("command", ["detect", "audit"])
def test_operator_choices_are_the_mutation_registry(command, capsys):
  """--operator takes its choices from explicable_jax.mutation's registry
  when the parser is built: a registered operator is accepted."""
  from explicable_jax import mutation
  argv = [command, "--model", "m", "--dataset", "digits", "--out", "o", "--operator", "ZERO"]
  with pytest.raises(SystemExit):
    cli.build_parser().parse_args(argv)
  assert "invalid choice: 'ZERO'" in capsys.readouterr().err
  mutation.register_operator("ZERO", lambda key, params, rate: params)
  try:
    assert cli.build_parser().parse_args(argv).operator == "ZERO"
  finally:
    del mutation.OPERATORS["ZERO"]


def test_evaluate_attributions_writes_the_method_by_metric_table(tmp_path, capsys,
                                                                  monkeypatch):
  """``evaluate-attributions`` on a saved CNN: results.json and table.md with
  one row per method and one column per metric; the numbers are the
  evaluation package's on the same images; a map that ignores the model
  fails the sanity check; a rerun reads the per-method caches."""
  import jax
  import numpy as np
  from explicable_jax import models
  from explicable_jax.attribution import evaluation
  from explicable_jax.detection import pipeline
  path = str(tmp_path / "m")
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                          widths=[4], dense=8)
  models.save(path, clf)
  out = tmp_path / "o"
  argv = ["evaluate-attributions", "--model", path, "--dataset", "digits", "--images", "6",
          "--methods", "gradient,Grad-CAM,random ranking (reference)",
          "--metrics", "randomisation,deletion AUC", "--out", str(out), "--no-progress"]
  assert cli.main(argv) == 0
  printed = capsys.readouterr().out
  r = json.loads((out / "results.json").read_text())
  table = (out / "table.md").read_text()
  assert table in printed and r["command"].startswith("explicable-jax evaluate-attributions")
  assert list(r["methods"]) == ["gradient", "Grad-CAM", "random ranking (reference)"]
  assert table.splitlines()[0].startswith("| method | layer | randomisation ↓ | deletion AUC ↓")
  assert len(table.splitlines()) == 2 + 3 and r["images"] == 6
  assert r["methods"]["Grad-CAM"]["layer"] == r["layer"] == "conv_0"
  rnd = r["methods"]["random ranking (reference)"]
  assert rnd["intervals"]["randomisation"]["mean"] == pytest.approx(1.0) and not rnd["passes"]
  assert "| random ranking (reference) | - | 1 [1, 1] |" in table
  # The gradient's deletion AUC, by hand on the same six images.
  splits, _ = pipeline.load_splits("digits", None, None, 0, None)
  x = splits["test"][0][:6]
  t = np.asarray(clf.logits(x)).argmax(-1)
  g = np.abs(np.asarray(jax.vmap(jax.grad(
      lambda v, c: clf.logits(v[None])[0, c]))(x, t))).sum(-1)
  auc = np.asarray(evaluation.area_under_curve(evaluation.deletion_curve(clf, x, g, target=t)))
  got = r["methods"]["gradient"]
  assert got["per_image"]["deletion AUC"] == pytest.approx(auc.tolist(), abs=1e-6)
  c = got["intervals"]["deletion AUC"]
  half = 1.96 * auc.std(ddof=1) / np.sqrt(6)
  assert (c["mean"], c["low"], c["high"]) == pytest.approx(
      (auc.mean(), auc.mean() - half, auc.mean() + half), abs=1e-6)
  # A rerun resumes from the caches.
  from explicable_jax.app.audit import faithfulness
  monkeypatch.setattr(faithfulness, "score_explanations",
                      lambda *a, **k: pytest.fail("recomputed"))
  assert cli.main(argv) == 0
  assert json.loads((out / "results.json").read_text())["methods"] == r["methods"]
  # A layer method on a model without a spatial layer: one line naming --layer.
  mlp = str(tmp_path / "mlp")
  models.save(mlp, models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1),
                                     num_classes=10, hidden=[8]))
  capsys.readouterr()
  assert cli.main(["evaluate-attributions", "--model", mlp, "--dataset", "digits",
                   "--methods", "Grad-CAM", "--out", str(tmp_path / "o2"),
                   "--no-progress"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--layer" in err[0], err


def _one_line_error(argv, capsys):
  """``cli.main(argv)``'s exit status and its one stderr line (argparse's own
  errors exit through SystemExit)."""
  try:
    rc = cli.main(argv)
  except SystemExit as e:
    rc = e.code
  err = capsys.readouterr().err.strip().splitlines()
  assert not any("Traceback" in line for line in err), err
  assert len(err) == 1, err
  return rc, err[0]


@pytest.mark.parametrize("argv", [
    ["train", "--dataset", "digits", "--model", "mlp", "--workdir", "{file}"],
    ["quickstart", "--workdir", "{file}"],
    ["demo", "--quick", "--out", "{file}"],
    ["detect", "--model", "m", "--dataset", "digits", "--out", "{file}"],
    ["audit", "--model", "m", "--dataset", "digits", "--out", "{file}"],
    ["evaluate-attributions", "--model", "m", "--dataset", "digits", "--out", "{file}"],
], ids=lambda a: a[0])
def test_a_folder_option_naming_a_file_is_refused(argv, tmp_path, capsys):
  """Every --out / --workdir: an existing file is one error line, exit 2."""
  afile = tmp_path / "afile"
  afile.write_text("not a folder")
  rc, line = _one_line_error([a.replace("{file}", str(afile)) for a in argv], capsys)
  assert rc == 2
  assert re.search(rf"explicable-jax {argv[0]}: error: argument --(out|workdir): path "
                   rf"'{re.escape(str(afile))}' is a file; expected a folder", line), line
  assert afile.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["train", "evaluate", "demo", "quickstart"])
def test_a_negative_seed_is_refused_naming_it(command, tmp_path, capsys):
  extra = {"train": ["--workdir", str(tmp_path / "w")], "evaluate": [str(tmp_path / "m")]}
  rc, line = _one_line_error([command, "--seed", "-1", *extra.get(command, [])], capsys)
  assert rc == 2
  assert "argument --seed: seed must be a non-negative integer; got -1" in line, line


def test_evaluate_refuses_half_with_another_split(tmp_path, capsys):
  """--half halves the test set: with --split train it would evaluate test
  images labelled 'train'."""
  rc, line = _one_line_error(["evaluate", str(tmp_path / "m"), "--split", "train",
                              "--half", "test"], capsys)
  assert rc == 2
  assert re.search(r"--half test takes a half of the test set, so --split must be test; "
                   r"got --split train", line), line


def test_detect_data_that_is_not_an_npz_is_named(tmp_path, capsys):
  bad = tmp_path / "notjson.json"
  bad.write_text('{"x": 1}')
  rc, line = _one_line_error(["detect", "--model", str(tmp_path / "m"), "--data", str(bad),
                              "--out", str(tmp_path / "o")], capsys)
  assert rc == 2
  assert re.search(r"data_file '.*notjson\.json' is not an \.npz file; expected an \.npz "
                   r"\(numpy\.savez\) holding x_train, y_train, x_test and y_test", line), line
