"""The issue-18 reproduction scripts end to end on tiny settings: both
protocols side by side, the authors' recipes as documented, and a rerun that
resumes from the saved records instead of training again."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd=ROOT):
  out = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
  return out.stdout


def test_rrr_script_runs_both_protocols_and_resumes(tmp_path):
  args = ["experiments/rrr/run.py", "--parts", "toy_colors", "--seeds", "0", "1",
          "--epochs", "1", "--toy-n", "512", "--sweep", "1",
          "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")]
  _run(args)
  res = json.load(open(tmp_path / "o" / "results.json"))
  assert set(res["per_seed"]["toy_colors"]) == {"paper", "ours"}
  paper = res["summary"]["toy_colors"]["paper"]
  row = paper["penalise both rules, lambda 1e6 / test_accuracy"]
  assert row["n"] == 2 and len(row["values"]) == 2 and row["std"] is not None
  chain = res["per_seed"]["toy_colors"]["paper"]["0"]["find another explanation"]["models"]
  assert [m["lambda"] for m in chain] == [0.0, 1e3, 1e6]
  assert chain[0]["annotated_fraction"] == 0.0 < chain[1]["annotated_fraction"]
  assert "| penalise both rules, lambda 1e6 / test_accuracy |" in open(
      tmp_path / "o" / "tables.md").read()
  records = sorted(os.listdir(tmp_path / "w" / "records"))
  stamps = {f: os.path.getmtime(tmp_path / "w" / "records" / f) for f in records}
  out = _run(args)  # every model is read back: nothing is trained again
  assert sorted(os.listdir(tmp_path / "w" / "records")) == records
  assert all(os.path.getmtime(tmp_path / "w" / "records" / f) == t for f, t in stamps.items())
  assert json.load(open(tmp_path / "o" / "results.json"))["summary"] == res["summary"]
  assert "toy_colors/" not in out  # the per-model lines are printed only when trained


def test_finetune_recipes_are_the_documented_ones():
  sys.path.insert(0, os.path.join(ROOT, "experiments", "explicable_cifar10"))
  try:
    import finetune
  finally:
    sys.path.pop(0)
  base = os.path.join(ROOT, "experiments/checkpoints/resnet20_cifar10")

  def cfg(recipe, loss):
    return finetune.config_for(finetune.argparse.Namespace(
        base=base, matrices="M", loss=loss, recipe=recipe, epochs=3, seed=0, data_dir=None))
  a = cfg("authors", "chl")
  assert (a.optimizer, a.learning_rate, a.schedule, a.weight_decay, a.augment,
          a.batch_size) == ("adam", 1e-7, "constant", 0.0, "none", 128)
  assert a.loss_kwargs["target"] == "authors" and a.loss_kwargs["kind"] == "chl"
  assert a.loss_kwargs["weights"].endswith("W_chl_raw.npy")  # the raw 0-4 ratings
  o = cfg("ours", "ekl")
  assert (o.optimizer, o.learning_rate, o.schedule, o.augment) == ("sgd", 0.02, "cosine",
                                                                   "crop_flip")
  assert o.loss_kwargs == {"weights": os.path.abspath("M/W_ekl.npy"), "target": "l1"}
  assert cfg("authors", "cce").loss == "cross_entropy"
  assert a.model == "resnet20" and a.init_from == base and a.validation == "paper"


def test_finetune_keeps_the_best_validation_epoch_and_resumes(tmp_path, shared_data):
  _run(["experiments/explicable_cifar10/matrices.py", "--data-dir", shared_data,
        "--out", str(tmp_path / "m")])
  args = ["experiments/explicable_cifar10/finetune.py",
          "--base", "experiments/checkpoints/resnet20_cifar10", "--matrices",
          str(tmp_path / "m"), "--loss", "chl", "--recipe", "authors", "--epochs", "2",
          "--data-dir", shared_data, "--workdir", str(tmp_path / "ft"), "--limit", "256"]
  _run(args)
  res = json.load(open(tmp_path / "ft" / "result.json"))
  table = res["epoch_table"]
  assert [d["epoch"] for d in table] == [1, 2]
  best = max(table, key=lambda d: d["validation_accuracy"])
  assert res["chosen_epoch"] == best["epoch"]
  assert res["validation"]["accuracy"] == pytest.approx(best["validation_accuracy"], abs=1e-6)
  _run(args)  # finished: the rerun trains nothing and gives the same result
  again = json.load(open(tmp_path / "ft" / "result.json"))
  assert again["epoch_table"] == table and again["test"] == res["test"]


@pytest.mark.parametrize("script", ["experiments/rrr/make_page.py",
                                    "experiments/deliberative/make_page.py",
                                    "experiments/explicable_cifar10/make_page_resnet20.py"])
def test_results_pages_are_what_their_committed_outputs_give(script):
  """Every measured number on the RRR, deliberative and ResNet-20 Olmo pages
  is written by their page makers from the committed results.json; an edit by
  hand, or a rerun without the page, fails."""
  _run([script, "--check"])


def test_olmo_page_sentences_follow_the_numbers(tmp_path):
  """The ResNet-20 Olmo page's claims are computed: a loss 3 points below its
  control with a significant paired test reads "detectably lower", an equal
  one "no detectable difference"; the paper row says its settings differ."""
  sys.path.insert(0, os.path.join(ROOT, "experiments", "explicable_cifar10"))
  try:
    import make_page_resnet20 as page
  finally:
    sys.path.pop(0)

  def model(top1, sim, vs=None):
    m = {"top1": top1, "mean_mistake_similarity_M": sim, "gaussian_noise_0.2": 0.2,
         "corrupted_top1": 0.7, "weight_change_max": 1e-4, "weight_change_rel": 1e-3,
         "bn_stats_change_max": 2.0}
    return m | ({"vs_control": vs} if vs else {})

  res = {"models": {
      "base/cce_s0": model(0.868, 0.07),
      "authors/cce_s0": model(0.84, 0.07),
      "authors/ihl_s0": model(0.81, 0.08, {"better": 10, "worse": 160, "mcnemar_p": 1e-30}),
      "authors/chl_s0": model(0.84, 0.07, {"better": 5, "worse": 5, "mcnemar_p": 1.0}),
      "authors/ekl_s0": model(0.845, 0.06, {"better": 30, "worse": 5, "mcnemar_p": 1e-5})},
      "hard_soft": {"authors_s0": {w: {"num_common_mistakes": 100, "hard": {
          f"authors/{l}_s0": 3 for l in ("cce", "ihl", "chl", "ekl")}, "soft": {
          "authors/cce_s0": 20.0, "authors/ihl_s0": 25.0, "authors/chl_s0": 20.0,
          "authors/ekl_s0": 10.0}} for w in ("in_distribution", "corrupted")}}}
  text = page.comparisons(res)
  assert "IHL: top-1 81.00% (-3.00 points against the control; detectably lower" in text
  assert "higher: its mistakes are more explicable" in text.split("IHL:")[1].split("\n")[0]
  assert "CHL: top-1 84.00% (+0.00 points against the control; no detectable difference" in text
  assert "EKL: top-1 84.50% (+0.50 points against the control; detectably higher" in text
  assert "IHL above the control (20.0)" in text
  assert "IHL: paper -8.24 points; ours (authors' recipe) -3.00 points: the same sign, " \
         "smaller in size." in text
  assert "CHL: paper -0.68 points; ours (authors' recipe) +0.00 points: no change" in text
  for line in page.paper_table(res).splitlines()[2:]:
    assert line.endswith("checkpoint on the validation half not the test set |")
  bn = {"base_accuracy": {"validation": 0.868, "test": 0.868},
        "statistics_only": [{"epoch": 3, "validation_accuracy": 0.83, "test_accuracy": 0.835}]}
  assert ("takes its test top-1 from 86.80% to 83.50%; every authors'-recipe fine-tune is "
          "within 2.50 points of that") in page.comparisons(res, bn)
  assert "| base, statistics re-estimated for 3 epoch(s), weights fixed | 83.00% | 83.50% |" \
      in page.statistics_only(bn)
