import json
import os
import pathlib
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
