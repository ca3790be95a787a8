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
                                    "experiments/explicable_cifar10/make_page_resnet20.py",
                                    "experiments/adversarial_detection/make_page.py"])
def test_results_pages_are_what_their_committed_outputs_give(script):
  """Every measured number on the RRR, deliberative and ResNet-20 Olmo pages
  is written by their page makers from the committed results.json; an edit by
  hand, or a rerun without the page, fails."""
  _run([script, "--check"])


def test_olmo_page_sentences_follow_the_numbers(tmp_path):
  """The ResNet-20 Olmo page's claims are computed: a loss 3 points below its
  control with a significant paired test reads "detectably lower", an equal
  one "no detectable difference"; a mistake-similarity or soft-score gap
  whose bootstrap interval covers 0 is "no detectable difference"; two runs
  that differ on one image are one model; the paper row says its settings
  differ; seeds not yet published are pending."""
  sys.path.insert(0, os.path.join(ROOT, "experiments", "explicable_cifar10"))
  try:
    import make_page_resnet20 as page
  finally:
    sys.path.pop(0)

  def boot(est, lo, hi, p):
    return {"estimate": est, "low": lo, "high": hi, "p_value": p, "dropped": 0}

  def model(top1, sim, vs=None):
    m = {"top1": top1, "mean_mistake_similarity_M": sim, "gaussian_noise_0.2": 0.2,
         "corrupted_top1": 0.7, "weight_change_max": 1e-4, "weight_change_rel": 1e-3,
         "bn_stats_change_max": 2.0}
    return m | ({"vs_control": vs} if vs else {})

  def vs(d, better, worse, p, dm):
    return {"delta_top1": d, "better": better, "worse": worse, "mcnemar_p": p,
            "M_difference": dm}

  soft = {"authors/cce_s0": 20.0, "authors/ihl_s0": 25.0, "authors/chl_s0": 20.0,
          "authors/ekl_s0": 10.0}
  res = {"test_images": 5000, "corrupted_images": 30000, "models": {
      "base/cce_s0": model(0.868, 0.07),
      "authors/cce_s0": model(0.84, 0.07),
      "authors/ihl_s0": model(0.81, 0.08, vs(-0.03, 10, 160, 1e-30,
                                              boot(0.01, 0.004, 0.016, 0.001))),
      "authors/chl_s0": model(0.84, 0.07, vs(0.0, 5, 5, 1.0, boot(0.0, -0.002, 0.002, 0.9))),
      "authors/ekl_s0": model(0.845, 0.0695, vs(0.005, 30, 5, 1e-5,
                                                 boot(-0.0005, -0.002, 0.001, 0.4)))},
      "disagreements": {"authors/ihl_s0 vs authors/ekl_s0": {"test": 1, "corrupted": 3},
                        "authors/cce_s0 vs authors/chl_s0": {"test": 40, "corrupted": 90}},
      "hard_soft": {"authors_s0": {w: {"num_common_mistakes": 100, "hard": {
          f"authors/{l}_s0": 3 for l in ("cce", "ihl", "chl", "ekl")}, "soft": soft,
          "soft_vs_control": {"authors/ihl_s0": boot(5.0, 1.0, 9.0, 0.01),
                              "authors/chl_s0": boot(0.0, -2.0, 2.0, 1.0),
                              "authors/ekl_s0": boot(-10.0, -14.0, -6.0, 0.0)}}
          for w in ("in_distribution", "corrupted")}},
      "over_seeds": {"ours/ihl": {"seeds": [0, 1], "measures": {
          "top1": {"values": [-0.001, -0.003], "per_seed": [{"p_value": 0.8}, {"p_value": 0.4}],
                   "t_test": {"mean": -0.002, "sd": 0.001414, "n": 2, "t": -2.0,
                              "p_value": 0.3}, "pooled": boot(-0.002, -0.006, 0.002, 0.3)},
          "M": {"values": [0.001, 0.003], "per_seed": [boot(0.001, -0.001, 0.003, 0.3),
                                                        boot(0.003, 0.001, 0.005, 0.01)],
                "t_test": {"mean": 0.002, "sd": 0.001414, "n": 2, "t": 2.0, "p_value": 0.3},
                "pooled": boot(0.002, 0.0005, 0.0035, 0.01)}}}},
      "pending": {"ours/ihl": [2]}}
  text = page.comparisons(res)
  ihl = text.split("  * IHL:")[1].split("\n")[0]
  assert "top-1 81.00% against the control's 84.00% (-3.00 points; detectably lower" in ihl
  assert "it alone gets 10 right, the control alone 160" in ihl
  assert "(+0.0100 [95% CI +0.0040, +0.0160]" in ihl
  assert "higher: its mistakes are more explicable" in ihl
  chl = text.split("  * CHL:")[1].split("\n")[0]
  assert "(+0.00 points; no detectable difference" in chl
  # EKL and IHL differ on 1 of 5000 images: the EKL line says it is IHL's model.
  ekl = text.split("  * EKL (practically one model with IHL (1 differing test "
                   "predictions)):")[1].split("\n")[0]
  assert "(+0.50 points; detectably higher" in ekl
  assert "(-0.0005 [95% CI -0.0020, +0.0010], paired bootstrap over the test images, " \
         "p = 0.4: no detectable difference)" in ekl
  assert "IHL 25.0 (+5.0 [95% CI +1.0, +9.0], p = 0.01: detectably above)" in text
  assert "CHL 20.0 (+0.0 [95% CI -2.0, +2.0], p = 1: no detectable difference)" in text
  assert "EKL 10.0 (-10.0 [95% CI -14.0, -6.0], p = 0: detectably below)" in text
  assert ("authors/ihl_s0 and authors/ekl_s0 are practically one model:** their predictions "
          "differ on 1 of 5000 test images") in text
  assert "authors/cce_s0 and authors/chl_s0 are practically" not in text
  assert "IHL against the control over seeds 0, 1** (seeds 2 pending)" in text
  assert ("  * top-1: -0.20 points [-0.60, +0.20] (per seed -0.10, -0.30; same sign on 2 of 2 "
          "seeds; t-test over the 2 seeds p = 0.3): no detectable difference (the pooled "
          "interval includes 0).") in text
  # Both seeds higher and the pooled interval above 0: claimed, with its interval.
  assert ("  * mean M of mistakes: +0.0020 [+0.0005, +0.0035] (per seed +0.0010, +0.0030; same "
          "sign on 2 of 2 seeds; t-test over the 2 seeds p = 0.3): detectably higher (the pooled "
          "interval excludes 0 and every seed has its sign).") in text
  assert "IHL: paper -8.24 points; ours (authors' recipe, seed 0) -3.00 points " \
         "(detectably lower, p = 1e-30): the same sign, smaller in size." in text
  assert "CHL: paper -0.68 points; ours (authors' recipe, seed 0) +0.00 points " \
         "(no detectable difference, p = 1): no detectable change, where the paper reports " \
         "a loss." in text
  for line in page.paper_table(res).splitlines()[2:6]:
    assert "| no: ResNet-20 base (86.8%) not ResNet-29 v2 (91.85%)" in line
  assert "| EKL | 86.03% | 84.50% (practically one model with IHL (1 differing test " \
         "predictions)) |" in page.paper_table(res)
  bn = {"base_accuracy": {"validation": 0.868, "test": 0.868},
        "statistics_only": [{"epoch": 3, "validation_accuracy": 0.83, "test_accuracy": 0.835}]}
  # 4175 vs 4340 of 5000: -3.30 points, Newcombe's interval [-4.69, -1.91] excludes 0.
  assert ("takes its test top-1 from 86.80% to 83.50% (-3.30 points, 95% interval [-4.69, "
          "-1.91], unpaired (Newcombe): detectably lower); the largest gap between an "
          "authors'-recipe fine-tune and it is 2.50 points (not tested") in page.comparisons(res, bn)
  assert "| base, statistics re-estimated for 3 epoch(s), weights fixed | 83.00% | 83.50% |" \
      in page.statistics_only(bn)
  res["pending"]["ours/chl"] = [1, 2]
  table = page.seeds_table(res)
  assert ("| IHL - control | top-1 | s0: -0.10 (p = 0.8); s1: -0.30 (p = 0.4) | -0.20 ± 0.14 "
          "(t-test p = 0.3) | -0.20 [-0.60, +0.20] | 2 of 2 | no detectable difference |") in table
  assert "| IHL - control | mean M of mistakes |" in table
  assert "|t| > 12.71" in table  # two seeds: 1 degree of freedom
  assert "Pending: ours/ihl (seeds 2); ours/chl (seeds 1, 2)." in table


def test_olmo_three_seed_rule_needs_the_interval_and_every_seed():
  """A weighted loss differs from its control over seeds only when the pooled
  bootstrap interval excludes 0 and every seed has the pooled sign: a
  consistent drop is "detectably lower", the same interval with one seed of
  the other sign, or an interval over 0, "no detectable difference"."""
  sys.path.insert(0, os.path.join(ROOT, "experiments", "explicable_cifar10"))
  try:
    import make_page_resnet20 as page
  finally:
    sys.path.pop(0)
  pooled = {"estimate": -0.01, "low": -0.015, "high": -0.005, "p_value": 0.0}
  steady = page.three_seed_verdict({"values": [-0.01, -0.012, -0.008], "pooled": pooled})
  assert steady["claimed"] and steady["word"] == "detectably lower"
  split = page.three_seed_verdict({"values": [-0.02, -0.012, 0.002], "pooled": pooled})
  assert not split["claimed"] and split["same_sign"] == 2
  assert split["word"] == "no detectable difference"
  wide = page.three_seed_verdict({"values": [0.01, 0.012, 0.008], "pooled": {
      "estimate": 0.01, "low": -0.001, "high": 0.02, "p_value": 0.06}})
  assert not wide["claimed"] and wide["word"] == "no detectable difference"
  assert round(page.t_threshold(3), 2) == 4.30


def test_olmo_page_quotes_are_the_papers_words():
  """Every passage the Olmo page quotes (lemmas, appendix claims) is in the
  paper's text, up to spacing, a footnote line and its LaTeX, and the Table 1
  numbers the page pairs with ours are the paper's CIFAR-10 rows."""
  import re
  path = os.path.join(os.path.dirname(ROOT), "shared", "papers",
                      "olmo_explicable_misclassification_paper.md")
  if not os.path.exists(path):
    pytest.skip("the paper's text is not in ../shared/papers")
  sys.path.insert(0, os.path.join(ROOT, "experiments", "explicable_cifar10"))
  try:
    import make_page_resnet20 as page
  finally:
    sys.path.pop(0)

  def norm(t):
    t = re.sub(r"(?m)^<sup>.*$", "", t)  # a footnote inside Lemma 1's sentence
    t = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", t)
    t = re.sub(r"\\(epsilon|tau|log)", r"\1", t)
    return re.sub(r"[\s$*]", "", t)
  text = open(path).read()
  paper = norm(text)
  ours = open(os.path.join(ROOT, "experiments/results/explicable_cifar10_resnet20.md")).read()
  quotes = [page.LEMMA1, page.LEMMA2, *(q for pair in page.APPENDIX.values() for q in pair),
            "where the condition in Lemma 1 holds", "where the condition in Lemma 2 does not hold",
            page.PAPER_COMMON_QUOTE]
  assert [q for q in quotes if norm(q) not in paper] == []
  assert [q for q in quotes if q not in ours] == []
  assert f"only {page.PAPER_COMMON} images" in page.PAPER_COMMON_QUOTE
  flat = re.sub(r"\s+", " ", text)
  for loss, name in (("cce", "CCE"), ("ihl", "IHL"), ("chl", "CHL"), ("ekl", "EKL")):
    p = page.PAPER[loss]
    row = re.search(rf"ResNet-v2 \({name}\) ([0-9.]+)% \S+ (\d+) (\d+)", flat)
    assert (row[1], int(row[2]), int(row[3])) == (f"{100 * p['top1']:.2f}", *p["hard_soft"])


def _import_page(folder, name="make_page"):
  """An experiment's page maker as a module of its own name (several are
  called make_page.py)."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      f"{folder}_{name}", os.path.join(ROOT, "experiments", folder, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_deliberative_orderings_need_a_significant_paired_test():
  """A paired difference is "agrees" / "differs" only when its t-test over
  the seeds gives p < 0.05: a consistent +1 point over three seeds agrees
  with a positive paper difference, the same mean with a large spread is
  "not resolved"."""
  page = _import_page("deliberative")
  rs = page.RS

  def seed(iou_a, iou_b):
    row = lambda v: {r: {"iou": v} for r in rs}
    return {"results": {"random": {"a": row(iou_a), "b": row(iou_b)}}}

  steady = {"seeds": [0, 1, 2], "per_seed": {
      "0": seed(0.21, 0.20), "1": seed(0.25, 0.239), "2": seed(0.18, 0.171)}}
  t = page.pair_test(steady, "random", "a", "b")
  assert t["p_value"] < 0.05 and page.verdict(t, +0.5) == "agrees"
  assert page.verdict(t, -0.5) == "differs" and "resolved" in page.pair_cell(t)
  noisy = {"seeds": [0, 1, 2], "per_seed": {
      "0": seed(0.23, 0.20), "1": seed(0.20, 0.23), "2": seed(0.23, 0.20)}}
  t = page.pair_test(noisy, "random", "a", "b")
  assert t["p_value"] > 0.05 and page.verdict(t, +0.5) == "not resolved"
  assert "resolved" not in page.pair_cell(t)


def test_rrr_claims_test_our_seeds_against_their_single_run():
  """R-row verdicts come from a t-test of our seeds against the authors'
  number: three seeds far above it are "detectably above their run", three
  seeds around it "no detectable difference"."""
  page = _import_page("rrr")
  far = page.vs_their_run({"values": [0.55, 0.56, 0.565]}, "0.5155")
  near = page.vs_their_run({"values": [0.955, 0.962, 0.96]}, "0.9607")
  assert page.word(far, "above their run") == "detectably above their run"
  assert page.word(near) == "no detectable difference"
  same = page.vs_their_run({"values": [1.0, 1.0, 1.0]}, "1.0")
  assert page.word(same) == "no detectable difference"


def test_olmo_pooled_bootstrap_is_the_mean_of_the_same_seed_differences():
  """evaluate_resnet20's pooled statistic over seeds is the mean of the
  per-seed differences (top-1, mean M of mistakes, soft score), the per-image
  hard / soft contributions sum to metrics.hard_soft_scores, and a loss that
  is right on 40 more of 200 images on every seed has an interval above 0."""
  import jax
  import numpy as np

  from explicable_jax import metrics
  sys.path.insert(0, os.path.join(ROOT, "experiments", "explicable_cifar10"))
  try:
    import evaluate_resnet20 as ev
  finally:
    sys.path.pop(0)
  rng = np.random.default_rng(0)
  m = rng.random((4, 4)) + np.eye(4)
  y = rng.integers(0, 4, 200)
  wrong = lambda: (y + rng.integers(1, 4, 200)) % 4
  ctrl = np.stack([np.where(rng.random(200) < 0.5, y, wrong()) for _ in range(3)], -1)
  loss = ctrl.copy()
  for s in range(3):  # 40 of the control's mistakes corrected on every seed
    loss[np.flatnonzero(ctrl[:, s] != y)[:40], s] = y[np.flatnonzero(ctrl[:, s] != y)[:40]]
  cs, cc = {"soft": [], "hard": []}, {"soft": [], "hard": []}
  for s in range(3):
    preds = {"a": loss[:, s], "b": ctrl[:, s], "c": wrong()}
    contrib = ev.score_contributions(preds, y, m)
    scores = metrics.hard_soft_scores(preds, y, m)
    assert contrib["soft"]["a"].sum() == pytest.approx(scores["soft"]["a"])
    assert contrib["hard"]["c"].sum() == scores["hard"]["c"]
    for kind in cs:
      cs[kind].append(contrib[kind]["a"])
      cc[kind].append(contrib[kind]["b"])
  out = ev.pooled_over_seeds(jax.random.key(0), y, loss, ctrl,
                             {k: np.stack(v, -1) for k, v in cs.items()},
                             {k: np.stack(v, -1) for k, v in cc.items()}, m, n_resamples=200)
  assert out["top1"]["estimate"] == pytest.approx(40 / 200)
  assert out["top1"]["low"] > 0
  dm = np.mean([metrics.mean_mistake_similarity(y, loss[:, s], m)
                - metrics.mean_mistake_similarity(y, ctrl[:, s], m) for s in range(3)])
  assert out["M"]["estimate"] == pytest.approx(dm, abs=1e-6)
  assert out["soft"]["estimate"] == pytest.approx(
      np.mean([cs["soft"][s].sum() - cc["soft"][s].sum() for s in range(3)]))
  # The corrupted set is corruption-major: source image i's versions are i, n + i, 2n + i.
  assert ev._clusters(np.arange(6), 2).tolist() == [[0, 2, 4], [1, 3, 5]]
