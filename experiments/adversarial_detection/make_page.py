"""Writes ``experiments/results/adversarial_detection.md`` from the outputs of
``run.py`` (MNIST: ``results.json``, ``lcr_<op>.npz``, ``baseline_scores.npz``)
and ``run_cifar10.py`` (``results.json``, ``scores.npz``); ``--check`` only
compares the page with what the outputs give.

    python experiments/adversarial_detection/make_page.py [--check]

Every number on the page is read from those files or computed from them here
(bootstrap intervals with fixed keys); the sentences are computed from the
tables.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)
import config  # noqa: E402

from explicable_jax import metrics, stats  # noqa: E402

NAMES = {"fgsm": "FGSM", "jsma": "JSMA", "cw": "C&W", "bb": "black-box", "deepfool": "DeepFool",
         "normal": "normal", "sprt_normal": "normal (SPRT set)", "wl": "wrongly classified"}
OFF = 0.03
LOST_SCORES = (
    "`run.py` wrote its per-input scores (`lcr_<op>.npz`, `baseline_scores.npz`) to a file "
    "type that `.gitignore` then excluded, and the working folder that held them was lost "
    "before they were committed (they are committed from now on). Every number below is read "
    "from the committed `results.json` of that run; the 95% intervals and the paired tests "
    "against MSP need the per-input scores and are left out until `run.py` is rerun (its C&W "
    "stage, 10000 iterations as theirs, took 3.4 h of the run's compute on 2 CPU cores). "
    "Until then a difference on this page is a point difference, not a claim that ours agree "
    "with or differ from theirs.")
RESAMPLES = 1000
MNIST_DIR = os.path.join(ROOT, "experiments", "results", "adversarial_detection")
CIFAR_DIR = os.path.join(ROOT, "experiments", "results", "adversarial_detection_cifar10")
PAGE = os.path.join(ROOT, "experiments", "results", "adversarial_detection.md")

PROTOCOL = [
    ("model", "LeNet-5 on MNIST", "`models/lenet.py` MnistNet4, trained weights "
     "`build-in-resource/pretrained-model/mnist/lenet.pkl` (test accuracy 0.9829)",
     "their LeNet architecture, {lenet}; test accuracy {acc:.4f}"),
    ("training", "-", "`utils/model_trainer.py`: SGD lr 0.01 momentum 0.5, batch 64; epochs not "
     "in the repository", "same, {epochs} epochs, seed {seed}"),
    ("input scaling", "-", "`utils/data_manger.py`: (x/255 - 0.1307) / 0.3081",
     "the model normalises [0, 1] images inside; budgets x 0.3081"),
    ("normal inputs", "1000 test images", "`lcr_auc/mutated_testing.py`, `attacks/attack_util.py` "
     "`load_natural_data`: 1000 random correctly classified test images",
     "{normal} random correctly classified test images (seed 5566)"),
    ("FGSM", "eps 0.35", "`scripts/craftAdvSamples.sh` (0.35,true); `attacks/attack_type/fgsm.py` "
     "nll_loss on logits, no clip", "same (eps 0.1078 in pixels, sign of -dZ_y/dx, no clip)"),
    ("JSMA", "gamma 0.12", "(0.12); `jsma.py` theta 1, one pixel per iteration, random target",
     "`robustness.jsma(pixels=1, theta=0.3081, gamma=0.12, clip=None)`"),
    ("C&W", "L2, c 0.6", "(0.6,10000); `carlinl2.py`: Adam lr 1e-3, k 0, no binary search, "
     "0.5 tanh(x_norm + W) (no arctanh), last iterate; at most 1500 batches of 2 images",
     "`robustness.carlini_wagner_l2` with one run at c = 0.6 std^2, {cw_it} iterations, their "
     "start and box; best successful iterate; at most 3000 images"),
    ("black-box", "Papernot et al.", "(0.35,6,10,200,0.1); `blackBox.py` ArchA substitute, "
     "SGD 0.01/0.5, FGSM on train + test", "`robustness.train_substitute` + their FGSM, same "
     "settings (lambda 0.0308, eps 0.1078)"),
    ("DeepFool", "overshoot 0.02", "(0.02,50); `deepfool.py` all 10 classes, no clip",
     "`robustness.deepfool(overshoot=0.02, max_iter=50, clip=None)`"),
    ("validity", "-", "`craftAdvSamples.sh` -> `rename_advlabel_deflected_img`: saved with "
     "scipy imsave (min-max to uint8), reloaded; removed if true label, relabelled otherwise",
     "same round trip (`models.their_png_round_trip`) and check"),
    ("adversarial inputs", "-", "`MyDataset(max_size=1000)`: 1000 random files",
     "up to {max_adv} random valid images per attack"),
    ("mutation rate", "0.05 (MNIST)", "`scripts/default-test/build_mnist_auc_analysis.sh` 5e-2p",
     "{rate}"),
    ("mutants", "500 per operator", "maxModelsUsed 500", "{mutants} per operator"),
    ("accuracy gate", "90%", "`mutationOperator.py` acc_tolerant 0.9 on 10000 test images",
     "`mutation.accuracy_gate` {gate} on the 10000 test images"),
    ("operators", "NAI, GF, WS, NS", "`mutationOperator.py`: GF all params N(mean, std) of the "
     "tensor; NAI/WS neurons of conv + dense kernels; NS per layer >= 10 neurons, weights only",
     "`mutation` operators (GF layers='all' replace; NAI/WS layers='kernels'; NS layers "
     "where theirs changes anything, bias moved with the neuron; WS a cyclic derangement)"),
    ("metric", "AUROC of LCR", "`lcr_auc_analysis.py`: LCR = 1 - votes[label]/total, label = the "
     "model's label; AUROC adversarial vs normal", "same, from `mutation.mutant_predictions` and "
     "`metrics.auroc` (ties 1/2), with a 95% bootstrap interval over the inputs"),
    ("SPRT", "alpha = beta = 0.05", "`detect/`: threshold = mean normal LCR + 99% CI, "
     "indifference 0.1 threshold, at most 500 mutants, normal set = 1000 random test images "
     "with true labels", "`mutation.sprt_detect` (and their off-by-one ratio, `run.their_sprt`)"),
    ("baselines", "KDE + BU", "`baseline/kde.py` (commit b42474807a): bandwidth 1.2, last "
     "hidden layer; 50 dropout passes p 0.5; LR fitted in sample", "same, plus MSP (the model's "
     "own confidence) on the same inputs"),
]


def _key(*tags):
  k = jax.random.key(0)
  for t in tags:
    k = jax.random.fold_in(k, int.from_bytes(t.encode()[:4].ljust(4, b"\0"), "little"))
  return k


def auroc_interval(pos, neg, *tags):
  """AUROC of ``pos`` above ``neg`` with a 95% bootstrap interval over the
  inputs (pooled resampling, fixed key)."""
  s = np.r_[pos, neg]
  t = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
  b = stats.paired_bootstrap(_key("auroc", *tags), metrics.auroc, [s, t],
                             n_resamples=RESAMPLES)
  return b["estimate"], b["low"], b["high"]


def vs_msp(lcr_pos, lcr_neg, msp_pos, msp_neg, *tags):
  """AUROC(LCR) - AUROC(-MSP) on the same inputs, paired bootstrap."""
  t = np.r_[np.ones(len(lcr_pos), bool), np.zeros(len(lcr_neg), bool)]
  return metrics.bootstrap_auroc_difference(
      _key("msp", *tags), np.r_[lcr_pos, lcr_neg], -np.r_[msp_pos, msp_neg], t,
      n_resamples=RESAMPLES)


def fmt_ci(est, lo, hi):
  return f"{est:.4f} [{lo:.4f}, {hi:.4f}]"


def _vs_words(d):
  p = 2 * min(d["p_not_better"], 1 - d["p_not_better"])
  return stats.verdict(p, d["difference"], higher="above MSP", lower="below MSP")


def mnist_part(r, lcr, base):
  attacks = [a for a in config.ATTACKS if a in r["adv_counts"]]
  ops = [o for o in config.OPERATORS if o in r["auroc"]]
  s = r["settings"]
  out = ["## MNIST (LeNet): protocol", "",
         "| item | paper | their code (dgl-prc/m_testing_adversatial_sample) | ours |",
         "| --- | --- | --- | --- |"]
  for item, paper, theirs, ours in PROTOCOL:
    ours = ours.format(lenet="their trained weights" if s.get("lenet") == "theirs"
                       else "trained here", acc=r["test_accuracy"], normal=r["sizes"]["normal"],
                       cw_it=s["cw_iterations"], max_adv=config.MAX_ADV, rate=s["rate"],
                       mutants=s["mutants"], gate=s["gate"], epochs=s["epochs"], seed=s["seed"])
    out.append(f"| {item} | {paper} | {theirs} | {ours} |")
  out += ["", "Wang, Dong, Sun, Wang, Zhang, \"Adversarial Sample Detection for Deep Neural "
          "Network through Model Mutation Testing\" (ICSE 2019): adversarial inputs change "
          "label under small random mutations of the model more often than normal inputs, so "
          "the label change rate (LCR) over mutants separates them. The paper's text is not in "
          "`../shared/papers`; the protocol is read from their code "
          "(dgl-prc/m_testing_adversatial_sample, commit d45cf9b) and their README's tables."]
  out += ["", f"Run {r['date']}; wall time of the last `run.py` call "
          f"{r['wall_seconds_this_run'] / 60:.1f} min (stages cached by earlier calls are read "
          "back, not recomputed); attack times below (each attack's own compute, summed over "
          "its chunks). 2 CPU cores shared with other jobs.", "",
          "Commands (the first two only with `--lenet`, to run on their weights instead; the "
          "results below are from a LeNet trained here):", "", "```",
          "git -C <mirror> show HEAD:build-in-resource/pretrained-model/mnist/lenet.pkl "
          "> runs/adversarial_detection/lenet.pkl",
          "python experiments/adversarial_detection/their_lenet.py "
          "runs/adversarial_detection/lenet.pkl runs/adversarial_detection/lenet_theirs.npz",
          r["command"],
          "python experiments/adversarial_detection/make_page.py", "```", ""]
  out += ["### Data caveats", "",
          "- MNIST is the exact dataset (`/work/shared/data/mnist.npz`, see its README).",
          "- Their adversarial images are not in the repository snapshot (only the model is); "
          "ours are crafted here with their settings, so they are other images of the same "
          "kinds, and their validity round trip keeps a different subset.",
          "- Their README table comes from their mutants and images; ours are fresh draws of "
          "the same operators (differences listed in the protocol). Their table gives no "
          "interval; the intervals below are ours only.", ""]
  out += ["### Adversarial inputs", "",
          "| attack | valid images found | used | attack time (s) |", "| --- | --- | --- | --- |"]
  for a in attacks:
    used = r["sizes"][a]
    secs = r["attack_seconds"].get(a)
    # Under 0.1 s is the time to read a cache written before times were kept.
    shown = "not recorded (cached)" if secs is None or secs < 0.1 else f"{secs:.0f}"
    out.append(f"| {NAMES[a]} | {r['adv_counts'][a]} | {used} | {shown} |")
  out.append(f"| wrongly classified natural test images | - | {r['sizes']['wl']} | - |")
  if "bb_substitute" in r:
    b = r["bb_substitute"]
    out += ["", f"Black-box substitute: agreement with the target on the held-out test images "
            f"{b['agreement_test']:.4f}; training-set sizes {b['sizes']}."]
  out += ["", "### Mutants", "", "| operator | drawn | accepted | original accuracy | "
          "mean mutant accuracy |", "| --- | --- | --- | --- | --- |"]
  for o in ops:
    g = r["gate"][o]
    out.append(f"| {o} | {g['drawn']} | {g['accepted']} | {g['original_accuracy']:.4f} | "
               f"{g['mean_mutant_accuracy']:.4f} |")
  if lcr is None:
    out += ["", "### The per-input scores of this run are not in the repository", "",
            LOST_SCORES]
  out += ["", "### AUROC of LCR, adversarial vs normal: ours beside theirs", ""]
  if lcr is None:
    out += ["Each cell: ours (point estimate, no interval: see above) / theirs (README) / "
            "difference; `*` marks |difference| > 0.03.", ""]
  else:
    out += ["Each cell: ours [95% bootstrap interval over the inputs] / theirs (README) / "
            "difference; `*` marks |difference| > 0.03, `~` marks theirs inside our interval.",
            ""]
  out += ["| attack | " + " | ".join(ops) + " |", "| --- |" + " --- |" * len(ops)]
  big, inside, below, diffs = [], 0, 0, []
  for a in attacks:
    cells = []
    for o in ops:
      theirs = config.PAPER_AUROC[a][o]
      if lcr is None:
        est = r["auroc"][o][a]
        d = est - theirs
        diffs.append(d)
        if abs(d) > OFF:
          big.append((a, o, d))
        cells.append(f"{est:.4f} / {theirs:.4f} / {d:+.4f}" + ("*" if abs(d) > OFF else ""))
        continue
      est, lo, hi = auroc_interval(lcr[o][a], lcr[o]["normal"], "mnist", o, a)
      if abs(est - r["auroc"][o][a]) > 1e-9:
        raise ValueError(f"lcr_{o}.npz does not match results.json ({a}: {est} vs "
                         f"{r['auroc'][o][a]}); rerun run.py")
      d = est - theirs
      diffs.append(d)
      mark = ("*" if abs(d) > OFF else "") + ("~" if lo <= theirs <= hi else "")
      inside += lo <= theirs <= hi
      below += theirs < lo
      if abs(d) > OFF:
        big.append((a, o, d))
      cells.append(f"{fmt_ci(est, lo, hi)} / {theirs:.4f} / {d:+.4f}{mark}")
    out.append(f"| {NAMES[a]} | " + " | ".join(cells) + " |")
  n = len(diffs)
  within = sum(abs(d) <= OFF for d in diffs)
  if lcr is None:
    out += ["", f"{within} of {n} cells are within {OFF} of theirs. The mean difference is "
            f"{sum(diffs) / n:+.4f}, the largest {max(diffs, key=abs):+.4f}. Without the "
            "per-input scores these are point differences with no interval, so this page "
            "makes no claim that ours agree with or differ from theirs."]
  else:
    out += ["", f"{within} of {n} cells are within {OFF} of theirs; their value lies inside our "
            f"95% interval in {inside} of {n} (no detectable difference there, at our sample "
            f"size). The mean difference is {sum(diffs) / n:+.4f}, the largest "
            f"{max(diffs, key=abs):+.4f}. Theirs lies below our interval in {below} of {n} "
            f"cells and above it in {n - inside - below}: on this run our AUROCs are "
            f"{'detectably higher than' if below > n / 2 else 'not systematically above'} "
            "their README's (their values carry no interval and are taken as fixed; their "
            "images and mutants differ from ours)."]
  best = {a: max(ops, key=lambda o: r["auroc"][o][a]) for a in attacks}
  their_best = {a: max(ops, key=lambda o: config.PAPER_AUROC[a][o]) for a in attacks}
  same = [a for a in attacks if best[a] == their_best[a]]
  out.append(f"The operator with the highest AUROC per attack is the same as theirs for "
             f"{len(same)} of {len(attacks)} attacks "
             f"({', '.join(NAMES[a] for a in same) or 'none'}); "
             + ("the operators' AUROCs for one attack are often within each other's intervals, "
                "so this ordering is weak evidence either way." if lcr is not None else
                "with no intervals here, this ordering is not evidence either way."))
  if big:
    out += ["", "Cells off by more than 0.03 (each marked open: the causes below are "
            "candidates computed from our run, not tested against their images):", ""]
    for a, o, d in big:
      why = []
      if r["adv_counts"][a] < config.MAX_ADV:
        why.append(f"only {r['adv_counts'][a]} valid {NAMES[a]} images survive their round trip")
      if a == "cw" and s["cw_iterations"] != config.ATTACK_SETTINGS["cw"]["iterations"]:
        why.append(f"{s['cw_iterations']} C&W iterations instead of their "
                   f"{config.ATTACK_SETTINGS['cw']['iterations']}")
      if o == "NS":
        why.append("our NS moves the bias with the neuron and switches every chosen neuron")
      if o == "WS":
        why.append("our WS is a cyclic derangement (theirs a random shuffle)")
      why.append("a LeNet trained here, fresh mutants and adversarial images")
      out.append(f"- {NAMES[a]} / {o}: {d:+.4f}. Open; candidates: {'; '.join(why)}.")
  sets = list(r["mean_lcr"][ops[0]])
  out += ["", "Mean LCR per input set:", "",
          "| operator | " + " | ".join(NAMES.get(k, k) for k in sets) + " |",
          "| --- |" + " --- |" * len(sets)]
  for o in ops:
    out.append(f"| {o} | " + " | ".join(f"{r['mean_lcr'][o][k]:.4f}" for k in sets) + " |")

  # The simplest detector of the same job: the model's own confidence.
  if lcr is None or base is None:
    out += ["", "### Against the model's own confidence (MSP) on the same inputs", "",
            "AUROC of -MSP and of LCR per operator (adversarial vs normal), point estimates "
            "from `results.json`. The paired test of LCR against MSP needs the per-input "
            "scores (see above), so no row here is called above, below or equal to MSP.", "",
            "| set | MSP | " + " | ".join(f"LCR {o}" for o in ops) + " |",
            "| --- | --- |" + " --- |" * len(ops)]
    for a in [*attacks, "wl"]:
      cells = [f"{r['auroc'][o][a]:.4f}" if a in r["auroc"][o] else "-" for o in ops]
      out.append(f"| {NAMES[a]} | {r['baselines'][a]['msp']:.4f} | " + " | ".join(cells) + " |")
  else:
    out += ["", "### Against the model's own confidence (MSP) on the same inputs", "",
            "AUROC of -MSP (adversarial vs normal), and AUROC(LCR) - AUROC(MSP) per operator "
            "with its paired bootstrap 95% interval (the same inputs resampled for both).", "",
            "| set | MSP | " + " | ".join(f"LCR {o} - MSP" for o in ops) + " |",
            "| --- | --- |" + " --- |" * len(ops)]
    words = {}
    for a in [*attacks, "wl"]:
      m_est = metrics.auroc(-np.r_[base[f"msp_{a}"], base["msp_normal"]],
                            np.r_[np.ones(len(base[f"msp_{a}"]), bool),
                                  np.zeros(len(base["msp_normal"]), bool)])
      cells = []
      for o in ops:
        d = vs_msp(lcr[o][a], lcr[o]["normal"], base[f"msp_{a}"], base["msp_normal"], "m", o, a)
        words[(a, o)] = _vs_words(d)
        cells.append(f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
      out.append(f"| {NAMES[a]} | {m_est:.4f} | " + " | ".join(cells) + " |")
    n_above = sum(w.endswith("above MSP") for w in words.values())
    n_below = sum(w.endswith("below MSP") for w in words.values())
    out += ["", f"Of the {len(words)} (set, operator) pairs, LCR is detectably above MSP in "
            f"{n_above}, detectably below it in {n_below}, and shows {stats.NO_DIFFERENCE} in "
            f"{len(words) - n_above - n_below} (two-sided bootstrap p < 0.05)."]
    for a in [*attacks, "wl"]:
      ws = {o: words[(a, o)] for o in ops}
      groups = {}
      for o, w in ws.items():
        groups.setdefault(w, []).append(o)
      out.append(f"- {NAMES[a]}: " + "; ".join(f"{w} for {', '.join(os_)}"
                                               for w, os_ in groups.items()) + ".")
  out += ["", "Feinman et al.'s detectors as their repository runs them (AUROC, set vs normal; "
          "the KDE + BU logistic regression is fitted and scored on the same inputs, in "
          "sample, as theirs, so it is optimistic):", "",
          "| set | MSP | KDE | BU | KDE + BU (LR, in sample) | LCR (NAI) |",
          "| --- | --- | --- | --- | --- | --- |"]
  for a in [*attacks, "wl"]:
    bl = r["baselines"][a]
    if lcr is not None:
      pos, neg = lcr["NAI"][a], lcr["NAI"]["normal"]
      truth = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
      lcr_nai = f"{metrics.auroc(np.r_[pos, neg], truth):.4f}"
    else:
      lcr_nai = f"{r['auroc']['NAI'][a]:.4f}" if a in r["auroc"]["NAI"] else "-"
    out.append(f"| {NAMES[a]} | {bl['msp']:.4f} | {bl['kde']:.4f} | {bl['bu']:.4f} | "
               f"{bl['kde_bu_lr_in_sample']:.4f} | {lcr_nai} |")

  out += ["", "### SPRT (alpha = beta = 0.05, threshold = mean normal LCR + 99% CI, "
          "indifference 0.1 threshold, at most 500 mutants)", "",
          "Detection accuracy (normal: not flagged; the others: flagged) / mean mutants used. "
          "`ours`: `mutation.sprt_detect`; `their rule`: `detect/detector.py`, whose ratio "
          "does not yet count the current mutant's change. Theirs: the paper's per-attack "
          "table could not be read here (it is not in `../shared/papers`, and no full text of "
          "the ICSE 2019 paper is reachable from this machine); their repository gives their "
          "thresholds (from the comments of `detect/adv_detect.py`, commit 82b1e3d) and one "
          "output, the expected output of `detect.sh` in their README (NAI, JSMA). Those are "
          "the 'theirs' entries; the other cells of theirs are open.", "",
          "| operator | threshold (ours / theirs) | set | ours | their rule | theirs (README) |",
          "| --- | --- | --- | --- | --- | --- |"]
  for o in ops:
    for k in ["sprt_normal", "wl", *attacks]:
      a, b = r["sprt"][o][k], r["sprt_theirs"][o][k]
      t = config.THEIR_SPRT.get((o, k))
      theirs = f"{t['accuracy']:.4f} / {t['mutants_used']:.1f}" if t else "not available"
      out.append(f"| {o} | {r['sprt'][o]['threshold']:.4f} / {config.THEIR_THRESHOLDS[o]:.4f} | "
                 f"{NAMES[k]} | {a['accuracy']:.4f} / {a['mutants_used']:.1f} | "
                 f"{b['accuracy']:.4f} / {b['mutants_used']:.1f} | {theirs} |")
  for (o, k), t in config.THEIR_SPRT.items():
    if o in r["sprt"] and k in r["sprt"][o]:
      a = r["sprt"][o][k]
      out += ["", f"Beside their one reported SPRT output ({o}, {NAMES[k]}): our accuracy "
              f"{a['accuracy']:.4f} against their {t['accuracy']:.4f} "
              f"({a['accuracy'] - t['accuracy']:+.4f}), {a['mutants_used']:.1f} mutants used "
              f"against their {t['mutants_used']:.1f} (their run's images and mutants differ; "
              "no interval is available for theirs)."]
  return out


def cifar_part(c, sc):
  s = c["settings"]
  attacks = [a for a in ("fgsm", "cw", "deepfool") if c["sizes"].get(a, 0)]
  ops = [o for o in ("NAI", "GF", "NS", "WS") if o in c["auroc"]]
  out = ["## CIFAR-10 (our ResNet-20 in place of their GoogLeNet)", "",
         "| item | paper | their code | ours |", "| --- | --- | --- | --- |",
         "| model | GoogLeNet | `models/googlenet.py` | the committed ResNet-20 "
         f"(`{s['model']}`), **not their model** |",
         "| data | CIFAR-10 test set | same | the JPEG-decoded CIFAR-10 copy (only images "
         "marked lossless are pixel-exact; see `/work/shared/data/README.md`); images from "
         "the paper split's test half, the gate on its validation half |",
         f"| normal inputs | 1000 | 1000 | {c['sizes']['normal']} correctly classified "
         "(fewer: CPU time) |",
         f"| attacks | FGSM 0.03, C&W (0.6, 1000), DeepFool (0.02, 50), JSMA, black-box | "
         "`craftAdvSamples.sh` CIFAR-10 branch | FGSM, C&W, DeepFool only, budgets x their std "
         f"0.2503; library C&W ({s['cw_iterations']} iterations, lr 1e-3, one c); "
         f"{c['attempted']} attacked images each, 8-bit round trip, kept if the label "
         f"changed, at most {s['max_adv']} used |",
         f"| mutants | 500 per operator, rate 0.005 | `build_cifar10_auc_analysis.sh` | "
         f"{s['mutants']} per operator (fewer: CPU time), rate {s['rate']} |",
         f"| accuracy gate | 90% | acc_tolerant 0.9 on the test set | {s['gate']} on "
         f"{s['gate_images']} validation-half images |",
         "| metric | AUROC of LCR | same | same, with 95% bootstrap intervals |", "",
         f"Run {c['date']}, wall time {c['wall_seconds_this_run'] / 60:.1f} min of the last "
         "call (cached stages read back); attack compute "
         + ", ".join(f"{NAMES[a]} {c['attack_seconds'][a]:.0f} s" for a in c["attack_seconds"])
         + ". Command:", "", "```", c["command"],
         "python experiments/adversarial_detection/make_page.py", "```", "",
         "| attack | images used | " + " | ".join(ops) + " | MSP |",
         "| --- | --- |" + " --- |" * (len(ops) + 1)]
  for a in attacks:
    cells = []
    for o in ops:
      est, lo, hi = auroc_interval(sc[f"lcr_{o}_{a}"], sc[f"lcr_{o}_normal"], "cifar", o, a)
      theirs = c["paper"][a][o]
      cells.append(f"{fmt_ci(est, lo, hi)} / {theirs:.4f}")
    m = auroc_interval(-sc[f"msp_{a}"], -sc["msp_normal"], "cifar", "msp", a)
    out.append(f"| {NAMES[a]} | {c['sizes'][a]} | " + " | ".join(cells) + f" | {fmt_ci(*m)} |")
  missing = [a for a in ("fgsm", "cw", "deepfool") if a not in attacks]
  out += ["", "Cells: ours [95% interval] / their GoogLeNet's. Not the same model, data copy, "
          "or sample sizes, so the pairs are not like for like; they are set side by side, "
          "not compared."]
  if missing:
    out.append("No valid adversarial images (after the 8-bit round trip) for: "
               + ", ".join(NAMES[a] for a in missing) + ".")
  few = [a for a in attacks if c["sizes"][a] < 50]
  if few:
    out += ["", "Few images: " + ", ".join(
        f"{NAMES[a]} {c['sizes'][a]} of {c['attempted']} attacked" for a in few)
        + " succeed after the 8-bit round trip (C&W runs at their one fixed c, with no "
        "search; rounding to 8 bits undoes many of DeepFool's minimal perturbations). Those "
        "rows rest on so few adversarial images that their bootstrap intervals are rough, "
        "and they say nothing about the attacks' images in general."]
  for o, g in c["gate"].items():
    if "rejected" in g:
      out += ["", f"{o}: no mutant passed the gate ({g['accepted']} of {g['drawn']} drawn). Our "
              "NS switches max(2, floor(rate x n)) neurons in every layer with at least 10; at "
              "rate 0.005 their `ns` picks ceil(0.005 n) = 1 neuron per ResNet-20 layer "
              "(n <= 64) and swaps it with itself, i.e. leaves the model unchanged, so their NS "
              "has no counterpart to run on this network at this rate."]
  out.append("")
  vs = []
  for a in attacks:
    for o in ops:
      d = vs_msp(sc[f"lcr_{o}_{a}"], sc[f"lcr_{o}_normal"], sc[f"msp_{a}"], sc["msp_normal"],
                 "c", o, a)
      vs.append((a, o, d, _vs_words(d)))
  out += ["LCR against MSP on the same inputs (AUROC difference, paired bootstrap 95%):", ""]
  for a, o, d, w in vs:
    out.append(f"- {NAMES[a]}, {o}: {d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]: "
               f"{w}.")
  return out


def build() -> str:
  with open(os.path.join(MNIST_DIR, "results.json")) as f:
    r = json.load(f)
  ops = [o for o in config.OPERATORS if o in r["auroc"]]
  files = [os.path.join(MNIST_DIR, f"lcr_{o}.npz") for o in ops]
  files.append(os.path.join(MNIST_DIR, "baseline_scores.npz"))
  lcr: dict | None = None
  base: dict | None = None
  if all(os.path.exists(f) for f in files):
    lcr = {}
    for o, f in zip(ops, files):
      with np.load(f) as z:
        lcr[o] = {k: z[k] for k in z.files}
    with np.load(files[-1]) as z:
      base = {k: z[k] for k in z.files}
  elif any(os.path.exists(f) for f in files):
    raise ValueError(f"{MNIST_DIR} holds some of the per-input score files and not others "
                     f"({', '.join(os.path.basename(f) for f in files if not os.path.exists(f))} "
                     "missing); rerun run.py")
  out = ["# Wang et al.'s experiment: adversarial inputs detected by model mutation", ""]
  out += mnist_part(r, lcr, base)
  out.append("")
  cpath = os.path.join(CIFAR_DIR, "results.json")
  if os.path.exists(cpath):
    with open(cpath) as f:
      c = json.load(f)
    with np.load(os.path.join(CIFAR_DIR, "scores.npz")) as z:
      sc = {k: z[k] for k in z.files}
    out += cifar_part(c, sc)
  else:
    out += ["## CIFAR-10", "", "`run_cifar10.py` has not produced results yet (open).", ""]
  return "\n".join(out) + "\n"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
  args = ap.parse_args()
  text = build()
  if args.check:
    with open(PAGE) as f:
      if f.read() != text:
        print(f"{PAGE} differs from what the outputs give; rerun make_page.py")
        sys.exit(1)
    print("page matches its outputs")
    return
  with open(PAGE, "w") as f:
    f.write(text)
  print(f"wrote {PAGE}")


if __name__ == "__main__":
  main()
