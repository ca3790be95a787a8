"""``explicable-jax audit``: known answers of its stages, a user's own (linen)
model audited end to end from Python, resuming from the caches, and one-line
errors for bad arguments. The report's rendering in Chromium is checked by
tests/test_demo.py (the demo is this audit on built-in data)."""
import json
import os

import jax
import numpy as np
import optax
import pytest

from explicable_jax import data, detection, losses, metrics, mutation, rrr, training
from explicable_jax.app import audit, cli
from explicable_jax.app.audit import context
from explicable_jax.detection import pipeline

import test_classifier


def test_mistakes_stage_known_answer():
  w = np.array([[1.0, 0.6, 0.2],
                [0.6, 1.0, 0.4],
                [0.2, 0.4, 1.0]])
  y = np.array([0, 0, 0, 1, 2, 2])
  p = np.array([0, 1, 1, 2, 2, 2])  # mistakes: 0->1 twice, 1->2 once
  m = audit.mistakes_stage(y, p, w, ["a", "b", "c"], reference_pred=np.array([0, 2, 2, 0, 2, 2]))
  assert m["accuracy"] == pytest.approx(3 / 6) and m["mistakes"] == 3
  assert m["mean_similarity_of_mistakes"] == pytest.approx((0.6 + 0.6 + 0.4) / 3)
  # Chance: the mean off-diagonal W of each mistake's true row.
  assert m["chance_similarity_of_mistakes"] == pytest.approx((0.4 + 0.4 + 0.5) / 3)
  assert m["confusion"] == [[1, 2, 0], [0, 0, 1], [0, 0, 2]]
  assert m["frequent_confusions"][0] == {"true": "a", "predicted": "b", "count": 2,
                                         "similarity": 0.6}
  assert [c["similarity"] for c in m["least_explicable"]] == [0.4, 0.6]
  # The reference gets 0->2 (0.2) and 1->0 (0.6) wrong; both models miss images 1, 2, 3.
  hs = m["hard_soft"]
  assert hs["num_common_mistakes"] == 3
  assert hs["hard"] == {"model": 2, "reference": 1}  # 0.6 > 0.2 twice; 0.6 > 0.4 for image 3


def test_coverage_threshold_accepts_the_asked_share():
  s = np.arange(10.0)
  assert audit.coverage_threshold(s, 0.9) == 8.0  # accepts 0..8: 9 of 10
  assert audit.coverage_threshold(s, 0.95) == 9.0  # ceil(9.5) = 10
  assert audit.coverage_threshold(s, 0.01) == 0.0


@pytest.fixture(scope="module")
def users_model(tmp_path_factory):
  """A user's linen CNN (the contract's adapter), trained on the digits, and
  the digits as an .npz."""
  train, test = data.load("digits", "train"), data.load("digits", "test")
  clf = test_classifier.MAKERS["linen"]()
  opt = optax.adam(1e-2)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  state, _ = training.fit(state, train, train_step=training.make_train_step(
      losses.cross_entropy_loss, opt), epochs=4, batch_size=64, progress=False)
  folder = tmp_path_factory.mktemp("users_data")
  npz = str(folder / "digits.npz")
  np.savez(npz, x_train=train.x, y_train=train.y, x_test=test.x, y_test=test.y)
  ann = np.zeros((8, 8), np.float32)
  ann[:2, :2] = 1  # "do not use the top-left corner"
  np.savez(str(folder / "ann.npz"), mask=ann)
  w = np.eye(10) + 0.1 * (1 - np.eye(10))
  w[3, 8] = w[8, 3] = 0.7
  np.save(str(folder / "w.npy"), w)
  return state.classifier, npz, str(folder / "ann.npz"), str(folder / "w.npy")


QUICK = dict(mutants=4, rates=(0.05,), noise=(0.1,), fgsm=(0.05,),
             corruptions=("contrast",), severities=(3,), hardest=3, train_limit=400,
             faithfulness_images=8, adversarial_images=30, progress=False)


def test_audit_of_a_users_linen_model(users_model, tmp_path, monkeypatch):
  clf, npz, ann, w_path = users_model
  out = str(tmp_path / "audit")
  res = audit.audit(clf, out, data_file=npz, similarity=w_path, annotations=ann,
                    classes=[f"d{i}" for i in range(10)], **QUICK)
  r = json.load(open(res.results))
  assert set(r) >= {"summary", "mistakes", "detection", "reliance", "hesitation", "robustness",
                    "faithfulness", "command", "wall_seconds", "data"}
  # Against a hand computation on the same test half.
  splits, _ = pipeline.load_splits(None, npz, None, 0, None)
  x, y = splits["test"]
  logits = np.asarray(training.predict(clf, x))
  wrong = logits.argmax(-1) != y
  assert r["mistakes"]["accuracy"] == pytest.approx(1 - wrong.mean())
  msp = np.asarray(detection.scores.msp(logits))
  assert r["detection"]["table"]["MSP"]["auroc"] == pytest.approx(metrics.auroc(msp, wrong),
                                                                  abs=1e-6)
  assert r["mistakes"]["mean_similarity_of_mistakes"] == pytest.approx(
      metrics.mean_mistake_similarity(y, logits.argmax(-1), np.load(w_path)), abs=1e-6)
  # Reliance: the share of |input gradient| on the corner, by hand.
  g = np.abs(rrr.model_input_gradients(clf, x))
  share = g[:, :2, :2].sum((1, 2, 3)) / g.sum((1, 2, 3))
  assert r["reliance"]["gradient_share_on_annotation"] == pytest.approx(share.mean(), rel=1e-4)
  assert r["reliance"]["annotated_share_of_input"] == pytest.approx(4 / 64)
  assert r["robustness"]["rows"][0]["accuracy"] == pytest.approx(1 - wrong.mean())
  _check_adversarial_detection(r, clf, x, y, logits, splits["validation"])
  # The coverage threshold accepts about 90% of the validation half.
  cov = r["detection"]["at_coverage"]["MSP"]
  assert 0.9 <= cov["validation"]["coverage"] < 0.93
  assert len(r["hesitation"]["images"]) == 3
  assert r["detection"]["layer"] in clf.layers and "conductance detector" in r["detection"]["table"]
  # Faithfulness: every map the audit reads, the sanity check and the
  # insertion AUC against a hand computation on the first 8 test images.
  f = r["faithfulness"]
  assert f["images"] == 8 and set(f["methods"]) == {"input gradient", "class map",
                                                     "conductance", "random ranking"}
  assert f["methods"]["conductance"]["layer"] == r["detection"]["layer"]
  # A map that ignores the model keeps Spearman 1 under randomisation: it fails.
  rnd = f["methods"]["random ranking"]
  assert rnd["randomisation"]["mean"] == pytest.approx(1.0) and not rnd["passes"]
  from explicable_jax.attribution import evaluation
  x8, t8 = x[:8], logits[:8].argmax(-1)
  g8 = np.abs(np.asarray(jax.grad(lambda v: jax.nn.log_softmax(clf.logits(v)).sum())(x8)))
  auc = evaluation.area_under_curve(evaluation.insertion_curve(clf, x8, g8.sum(-1),
                                                               target=t8))
  grad = f["methods"]["input gradient"]
  assert grad["insertion"]["mean"] == pytest.approx(float(np.mean(auc)), abs=1e-5)
  assert grad["insertion"]["low"] <= grad["insertion"]["mean"] <= grad["insertion"]["high"]
  assert grad["passes"] == (grad["randomisation"]["high"] < 0.5)
  assert "Are its explanations faithful?" in r["summary"]
  html = open(res.report).read()
  for anchor in ("summary", "mistakes", "detection", "reliance", "hesitation", "robustness",
                 "faithfulness"):
    assert f'id="{anchor}"' in html
  assert html.count("<img ") >= 4
  robustness_part = html[html.index('id="robustness"'):html.index('id="faithfulness"')]
  assert "AUROC of LCR" in robustness_part and "DeepFool" in robustness_part
  assert "Can its adversarial inputs be told from normal ones?" in r["summary"]
  # The caches are keyed by the weights: another model audited into the same
  # folder gets its own numbers, not the first model's.
  other = clf.with_params(jax.tree.map(lambda a: a * 0.5, clf.params))
  second = audit.audit(other, out, data_file=npz, similarity=w_path, annotations=ann,
                       classes=[f"d{i}" for i in range(10)], **{**QUICK, "adversarial_images": 0})
  acc = float(np.mean(np.asarray(training.predict(other, x)).argmax(-1) == y))
  assert second.mistakes["accuracy"] == pytest.approx(acc)
  assert "adversarial_detection" not in second.robustness  # adversarial_images=0 skips it
  assert second.detection["table"]["MSP"] != res.detection["table"]["MSP"]
  # A rerun resumes from the caches: no mutant is drawn again.
  monkeypatch.setattr(mutation, "make_mutants", lambda *a, **k: pytest.fail("recomputed"))
  again = audit.audit(clf, out, data_file=npz, similarity=w_path, annotations=ann,
                      classes=[f"d{i}" for i in range(10)], **QUICK)
  assert again.detection["table"] == res.detection["table"]
  assert again.hesitation == res.hesitation and again.robustness == res.robustness


def _check_adversarial_detection(r, clf, x, y, logits, validation):
  """The robustness section's adversarial rows against a direct computation
  on the same inputs: the first 30 correctly classified test images, FGSM at
  the largest epsilon and DeepFool on them, the successful ones kept, LCR over
  the error-detection section's mutants (same key, operator, rate, count and
  gate), MSP by hand, AUROC by scikit-learn."""
  from sklearn.metrics import roc_auc_score
  from explicable_jax import robustness
  adv = r["robustness"]["adversarial_detection"]
  keep = np.flatnonzero(logits.argmax(-1) == y)[:30]
  xn, yn = x[keep], y[keep]
  attacked = {"FGSM": robustness.fgsm(clf, xn, yn, 0.05),
              "DeepFool": robustness.deepfool(clf, xn, yn, overshoot=0.02, max_iter=50)}
  sets = {"normal": xn}
  for name, xa in attacked.items():
    xa = np.asarray(xa)
    sets[name] = xa[np.asarray(training.predict(clf, xa)).argmax(-1) != yn]
  assert adv["normal"] == 30 and adv["mutants"] == QUICK["mutants"]
  assert adv["rate"] == r["detection"]["rate"] and "same ensemble" in adv["mutants_from"]
  z = {k: np.asarray(training.predict(clf, v)) for k, v in sets.items()}
  lcr, _ = pipeline.lcr_scores(
      jax.random.key(0), clf, sets, {k: v.argmax(-1) for k, v in z.items()},
      pipeline.Mutants(QUICK["mutants"], "NAI", adv["rate"], pipeline.mutated_layers(clf)),
      pipeline.accuracy_gate(clf, validation))
  p = {k: np.exp(v - v.max(-1, keepdims=True)) for k, v in z.items()}
  msp = {k: 1 - (v / v.sum(-1, keepdims=True)).max(-1) for k, v in p.items()}
  rows = {row["attack"]: row for row in adv["attacks"]}
  assert set(rows) == {"FGSM", "DeepFool"} and rows["FGSM"]["strength"] == "epsilon 12.75/255"
  for name in rows:
    n = len(sets[name])
    assert rows[name]["adversarial"] == n and rows[name]["attacked"] == 30 and n > 0
    truth = np.r_[np.ones(n), np.zeros(30)]
    for score, s in (("LCR", lcr), ("MSP", msp)):
      want = roc_auc_score(truth, np.concatenate([s[name], s["normal"]]))
      assert rows[name]["auroc"][score] == pytest.approx(want, abs=1e-6), (name, score)
  assert adv["normal_mean"]["LCR"] == pytest.approx(lcr["normal"].mean())
  assert rows["DeepFool"]["adversarial"] >= 25  # DeepFool nearly always succeeds


def test_an_attack_that_never_succeeds_gives_an_empty_row_not_an_error():
  """The thirty-second trial: an attack with no successful input (FGSM far
  too weak here) used to fail reshaping its zero deltas."""
  from explicable_jax import models
  from explicable_jax.app.audit.robustness import adversarial_detection_stage
  ds = data.load("digits", "test")
  x, y = ds.x[:64], ds.y[:64]
  clf = models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1), num_classes=10,
                          widths=[4], dense=8)
  right = int((np.asarray(training.predict(clf, x)).argmax(-1) == y).sum())
  assert right > 0
  out = adversarial_detection_stage(
      jax.random.key(1), clf, x, y, num_images=8, epsilon=1e-7,
      mutants=pipeline.Mutants(2, "NAI", 0.5, pipeline.mutated_layers(clf)),
      gate=pipeline.accuracy_gate(clf, (x, y)))
  fgsm = next(row for row in out["attacks"] if row["attack"] == "FGSM")
  assert fgsm["adversarial"] == 0 and fgsm["attacked"] == min(8, right)
  assert fgsm["mean_l2"] is None and fgsm["auroc"] == {"LCR": None, "MSP": None}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
  from explicable_jax import models
  path = str(tmp_path_factory.mktemp("saved") / "m")
  models.save(path, models.classifier(jax.random.key(0), "cnn", input_shape=(8, 8, 1),
                                      num_classes=10, widths=[4], dense=8))
  return path


@pytest.mark.parametrize("argv, message", [
    (["--model", "/nonexistent", "--dataset", "digits"], "neither a train workdir"),
    (["--dataset", "digits", "--similarity", "wordnet"], "similarity must be one of"),
    (["--dataset", "digits", "--similarity", "ihl"], "needs dataset='cifar10'"),
    (["--dataset", "digits", "--coverage", "1.5"], "coverage"),
    (["--dataset", "digits", "--rates", "0.01,x"], "comma-separated list of numbers"),
    (["--dataset", "digits", "--severities", "9"], "severities"),
    (["--dataset", "digits", "--annotations", "/nope.npz"], "annotations file"),
    (["--dataset", "digits", "--adversarial-images", "-1"], "adversarial_images"),
    (["--dataset", "digits", "--adversarial-mutants", "0"], "adversarial_mutants"),
])
def test_audit_bad_arguments_get_one_line_errors(argv, message, saved_model, tmp_path, capsys):
  if "--model" not in argv:
    argv = ["--model", saved_model, *argv]
  try:
    code = cli.main(["audit", *argv, "--out", str(tmp_path / "o"), "--no-progress"])
  except SystemExit as e:  # argparse's own errors (also one line, status 2)
    code = e.code
  err = capsys.readouterr().err.strip()
  assert code == 2, err
  assert len(err.splitlines()) == 1 and message in err, err


def _audit_cli(argv, capsys):
  try:
    code = cli.main(["audit", *argv, "--no-progress"])
  except SystemExit as e:
    code = e.code
  return code, capsys.readouterr().err.strip().splitlines()


def test_rates_that_select_no_unit_are_called_too_low(saved_model, tmp_path, capsys):
  """The small CNN has 4 filters: every default rate changes no filter. The
  error says the rates are too low (and from what rate one works), not that
  lower rates are needed."""
  code, err = _audit_cli(["--model", saved_model, "--dataset", "digits", "--sections",
                          "detection", "--limit", "200", "--out", str(tmp_path / "o")], capsys)
  assert code == 2 and len(err) == 1, err
  assert "too low" in err[0] and "Give higher rates" in err[0] and "rate >= 0.25" in err[0]
  assert "lower" not in err[0], err


def test_trials_rejected_by_the_gate_ask_for_lower_rates():
  trials = [pipeline.failed_trial(r, mutation.GateRejectedError("too high", drawn=20,
                                                                 accepted=0))
            for r in (0.5, 0.9)]
  with pytest.raises(ValueError, match="too high.*Give lower rates"):
    pipeline.choose_rate(trials, operator="NAI")
  low = pipeline.failed_trial(0.001, ValueError("rate=0.001 selects no unit: use rate >= 0.1."))
  with pytest.raises(ValueError, match=r"\[0.001\] change no unit.*\[0.5, 0.9\] give mutants"):
    pipeline.choose_rate([low, *trials], operator="NAI")
  ok = {"rate": 0.2, "validation_auroc": 0.7, "drawn": 10}
  assert pipeline.choose_rate([low, ok, {**ok, "rate": 0.3, "validation_auroc": 0.8}],
                              operator="NAI") == 0.3


def test_missing_wordnet_is_one_line_with_the_fix(saved_model, tmp_path, capsys,
                                                  monkeypatch):
  from explicable_jax import similarity

  def missing(*args, **kwargs):
    raise similarity.WordNetNotFoundError("The WordNet corpus was not found. Get it with "
                                          "nltk.download('wordnet').")
  monkeypatch.setattr(similarity, "wordnet", missing)
  monkeypatch.setattr(data, "network_reachable", lambda *a, **k: False)
  code, err = _audit_cli(["--model", saved_model, "--dataset", "digits", "--out",
                          str(tmp_path / "o")], capsys)
  assert code == 2 and len(err) == 1, err
  assert "WordNet" in err[0] and "nltk.download" in err[0] and "--similarity" in err[0]


def test_the_cli_reads_the_section_registry(saved_model, tmp_path, capsys):
  """A section registered from outside is a --sections choice, runs, and has
  its summary row, its numbers in results.json and its part of the report."""

  class Count(audit.Section):
    name = "count"
    title = "Count: how many test images?"

    def run(self, config, ctx):
      return {"images": int(len(ctx.splits["test"][1])), "limit": config.limit}

    def summary(self, result, ctx):
      return [("How many test images?", str(result["images"]))]

    def report(self, page, result, figure):
      page.table(["measure", "value"], [["test images", result["images"]]])

  argv = ["--model", saved_model, "--dataset", "digits", "--sections", "count", "--limit",
          "50", "--out", str(tmp_path / "o")]
  assert _audit_cli(argv, capsys)[0] == 2  # not registered yet
  audit.register_section(Count(), after="mistakes")
  try:
    assert audit.section_names()[:3] == ("mistakes", "count", "detection")
    code, err = _audit_cli(argv, capsys)
  finally:
    audit.SECTIONS.remove(audit.section.section("count"))
  assert code == 0, err
  r = json.loads((tmp_path / "o" / "results.json").read_text())
  assert r["count"] == {"images": 50, "limit": 50}
  assert r["summary"] == {"How many test images?": "50"}
  assert r["settings"]["sections"] == ["count"] and "mistakes" not in r
  html = (tmp_path / "o" / "report.html").read_text()
  assert 'id="count"' in html and "1. Count: how many test images?" in html
  with pytest.raises(ValueError, match="already an audit section"):
    audit.register_section(audit.SECTIONS[0])


def test_config_is_the_clis_defaults_and_the_command_round_trips():
  """The parser's defaults are AuditConfig's; the equivalent command written
  into the report parses back to the same settings (fractions exactly)."""
  import shlex
  from explicable_jax.app import _options
  parser = cli.build_parser()
  args = parser.parse_args(["audit", "--model", "m", "--dataset", "digits", "--out", "o"])
  assert _options.from_args(audit.AuditConfig, args) == audit.AuditConfig(dataset="digits")
  default = audit.AuditConfig(dataset="digits")
  assert (default.adversarial_images, default.adversarial_mutants) == (200, None)
  config = audit.AuditConfig(dataset="digits", classes=tuple("abcdefghij"), rates=(0.05,),
                             fgsm=(1 / 255, 0.1), scores=("entropy",), layer="conv_0",
                             limit=40, adversarial_images=0, adversarial_mutants=50)
  command = audit.equivalent_command("m", config, "o")
  assert "--fgsm 1/255,0.1" in command
  assert "--adversarial-images 0" in command and "--adversarial-mutants 50" in command
  back = parser.parse_args(shlex.split(command)[1:])
  assert _options.from_args(audit.AuditConfig, back) == config
  with pytest.raises(TypeError, match="unknown settings ratez"):
    audit.audit("m", "o", dataset="digits", ratez=(0.1,))


def test_annotations_take_one_mask_for_all_or_one_per_test_image(tmp_path):
  x = np.zeros((3, 4, 4, 2), np.float32)
  splits = {"test": (x, np.zeros(3, int))}
  index = {"test": np.array([4, 0, 2]), "num_test": 5}
  one = np.zeros((4, 4), np.float32)
  one[0, 0] = 1
  np.savez(tmp_path / "one.npz", mask=one)
  m = context.load_annotations(str(tmp_path / "one.npz"), splits, index)
  assert m.shape == x.shape and m[:, 0, 0].sum() == 3 * 2 and m.sum() == 3 * 2
  per = np.zeros((5, 4, 4), np.float32)
  per[np.arange(5), np.arange(5) % 4, 0] = 1  # image i marks row i % 4
  np.savez(tmp_path / "per.npz", mask=per)
  m = context.load_annotations(str(tmp_path / "per.npz"), splits, index)
  # The test half's images are 4, 0 and 2 of the whole test set.
  assert [int(np.argwhere(m[j, :, 0, 0])[0, 0]) for j in range(3)] == [0, 0, 2]
  np.savez(tmp_path / "bad.npz", mask=np.zeros((2, 4, 4)))
  with pytest.raises(ValueError, match="one per test image"):
    context.load_annotations(str(tmp_path / "bad.npz"), splits, index)
  np.savez(tmp_path / "none.npz", other=one)
  with pytest.raises(ValueError, match="must hold an array 'mask'"):
    context.load_annotations(str(tmp_path / "none.npz"), splits, index)


def test_resnet20_audit_page_is_current_and_its_same_setting_rows_agree():
  """The committed audit of the ResNet-20: the page is what make_page.py
  writes from results.json, and every row that claims the same settings as
  an experiment page shows the same number."""
  import subprocess
  import sys
  root = os.path.join(os.path.dirname(__file__), "..")
  r = subprocess.run([sys.executable, "experiments/audit_resnet20/make_page.py", "--check"],
                     cwd=root, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stdout + r.stderr
  import importlib.util
  # Loaded by path under its own name: other page tests import other
  # experiments' make_page.py, and sys.modules would hand back theirs.
  spec = importlib.util.spec_from_file_location(
      "audit_resnet20_make_page", os.path.join(root, "experiments", "audit_resnet20",
                                               "make_page.py"))
  make_page = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(make_page)
  with open(make_page.RESULTS) as f:
    res = json.load(f)
  with open(make_page.DETECTION) as f:
    det = json.load(f)
  with open(make_page.TRAINING) as f:
    train = json.load(f)
  rows = make_page.comparison_rows(res, det, train)
  same = [r for r in rows if r[3] == "yes"]
  assert len(same) == 5
  for quantity, page, ours, _ in same:
    assert page.split(" ")[0] == ours, quantity
  assert res["wall_seconds"] > 0 and res["settings"]["model"].endswith("resnet20_cifar10/model")
