"""Writes experiments/results/explicable_cifar10_resnet20.md from the results of
``evaluate_resnet20.py`` (issue 18's Olmo rerun).

    python experiments/explicable_cifar10/make_page_resnet20.py [--check] \\
        [--results experiments/results/explicable_cifar10_resnet20/results.json] \\
        [--page experiments/results/explicable_cifar10_resnet20.md]

Every sentence that compares two numbers is generated here from the tables
on the page (the direction and size of each difference are computed, never
written by hand), and every comparison with the paper says which settings
differ. ``--check`` exits with an error when the committed page differs from
what the results give.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from explicable_jax import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KINDS = ("IHL", "CHL", "EKL")
LOSSES = ("cce", "ihl", "chl", "ekl")
NAMES = {"cce": "CCE control", "ihl": "IHL", "chl": "CHL", "ekl": "EKL"}

# Olmo, Sengupta and Kambhampati, Table 1 (CIFAR-10, ResNet-29 v2 trained 200
# epochs, the authors' softmax targets): top-1, hard / soft in distribution.
PAPER = {"cce": {"top1": 0.9185, "hard_soft": (18, 80)},
         "ihl": {"top1": 0.8361, "hard_soft": (13, 67)},
         "chl": {"top1": 0.9117, "hard_soft": (16, 76)},
         "ekl": {"top1": 0.8603, "hard_soft": (17, 73)}}

PROTOCOL = [
    ("base model", "ResNet-29 v2, 200 epochs (91.85%)", "same (cifar10_resnet.py)",
     "the committed ResNet-20 (He et al.), 30 epochs, 86.8% on the test half: **not the "
     "paper's base**", "same as ours, authors' recipe"),
    ("fine-tune optimiser", "Adam", "Adam, lr 1e-7; ReduceLROnPlateau(min_lr 0.5e-6) never "
     "fires below min_lr, so constant", "Adam, lr 1e-7, constant", "SGD + Nesterov 0.9, lr 0.02, "
     "cosine to 0, weight decay 5e-4"),
    ("epochs", "30", "30", "3 (budget: 2 CPU cores)", "3"),
    ("batch, augmentation", "128, not stated", "128, none", "128, none", "128, crop + flip"),
    ("targets", "softmax(W_y)", "softmax of the stored matrices: raw 0-4 CHL, L1-normalised EKL, "
     "IHL as is", "the same (`losses.weighted_targets(target=\"authors\")`)",
     "the paper's equation, W_y / sum W_y (L1)"),
    ("IHL built from", "CIFAR-10H, all 10000 test images", "same",
     "CIFAR-10H of the validation half only", "same as ours, authors' recipe"),
    ("checkpoint chosen on", "not stated", "the test set (ModelCheckpoint on val = test); "
     "`model.save` after fit keeps the last epoch", "the validation half (5000 test images, "
     "seed 0)", "the validation half"),
    ("reported on", "CIFAR-10 test set", "same", "the test half (the other 5000 images)",
     "the test half"),
    ("out of distribution", "\"CIFAR-10+\" (Table 1; not described further)",
     "`utils.py` loads CIFAR-10.1 v6 (`cifar10_1`); `explicability.py` defaults to "
     "`cifar10_extra`", "CIFAR-10-C-style corruptions in code (neither set available offline)",
     "same"),
    ("seeds", "1 (not stated)", "1", "see the tables (mean ± sd where more than one)", "same"),
]


def _pct(v):
  return f"{100 * v:.2f}%"


def _pts(d):
  return f"{100 * d:+.2f} points"


def protocol_table() -> str:
  rows = ["| item | paper | authors' code | ours, authors' recipe | ours, our recipe |",
          "|---|---|---|---|---|"]
  rows += [f"| {' | '.join(r)} |" for r in PROTOCOL]
  return "\n".join(rows)


def _seeds(models: dict, recipe: str) -> list[int]:
  """The seeds of ``recipe``'s published runs (names ``RECIPE/LOSS_sSEED``)."""
  return sorted({int(n.rsplit("_s", 1)[1]) for n in models if n.startswith(recipe + "/")})


def _name(recipe, loss, seed):
  return f"{recipe}/{loss}_s{seed}"


def statistics_only(bn: dict | None) -> str:
  """The table of ``bn_statistics.py``: the base with only its batch-norm
  running statistics re-estimated on the recipe's unaugmented batches."""
  if not bn:
    return "(`bn_statistics.py` has not been run.)"
  rows = ["| model | validation top-1 | test top-1 |", "|---|---|---|",
          f"| base (30 epochs, statistics from augmented batches) | "
          f"{_pct(bn['base_accuracy']['validation'])} | {_pct(bn['base_accuracy']['test'])} |"]
  rows += [f"| base, statistics re-estimated for {e['epoch']} epoch(s), weights fixed | "
           f"{_pct(e['validation_accuracy'])} | {_pct(e['test_accuracy'])} |"
           for e in bn["statistics_only"]]
  return "\n".join(rows)


def _p(p):
  return f"p = {p:.2g}"


def _ci(d, digits=4, scale=1.0):
  f = lambda v: f"{scale * v:+.{digits}f}"
  return f"{f(d['estimate'])} [95% CI {f(d['low'])}, {f(d['high'])}]"


def _top1_test(m, ctrl, vs) -> str:
  """The top-1 sentence of a fine-tune against its control (McNemar)."""
  d = m["top1"] - ctrl["top1"]
  if not vs:
    return f"top-1 {_pct(m['top1'])} against the control's {_pct(ctrl['top1'])} ({_pts(d)}; no paired test recorded)"
  return (f"top-1 {_pct(m['top1'])} against the control's {_pct(ctrl['top1'])} ({_pts(d)}; "
          f"{stats.verdict(vs['mcnemar_p'], d)}: McNemar on the same test images, it alone gets "
          f"{vs['better']} right, the control alone {vs['worse']}, {_p(vs['mcnemar_p'])})")


def _m_test(m, ctrl, vs) -> str:
  """The mistake-similarity sentence against the control (paired bootstrap)."""
  text = (f"mean M[y, pred] of its mistakes {m['mean_mistake_similarity_M']:.4f} against the "
          f"control's {ctrl['mean_mistake_similarity_M']:.4f}")
  md = (vs or {}).get("M_difference")
  if not md:
    return text + " (no paired test recorded)"
  word = stats.verdict(md["p_value"], md["estimate"], higher="higher: its mistakes are more "
                       "explicable by this measure", lower="lower: its mistakes are less "
                       "explicable by this measure")
  return (text + f" ({_ci(md)}, paired bootstrap over the test images, {_p(md['p_value'])}: "
          f"{word})")


HANDFUL = 0.002  # two fine-tunes differing on at most this share of test images are one model


def one_model_pairs(res: dict, handful: float = HANDFUL) -> dict:
  """``frozenset({a, b}) -> differing test predictions`` for the weighted-loss
  fine-tunes of one recipe and seed that are practically one model."""
  n = res["test_images"]
  return {frozenset(pair.split(" vs ")): d["test"]
          for pair, d in res.get("disagreements", {}).items()
          if d["test"] <= handful * n and "/cce_" not in pair}


def disagreement_notes(res: dict, handful: float = HANDFUL) -> list[str]:
  """Fine-tunes of one recipe and seed whose test predictions differ on at
  most ``handful`` of the images: one model, reported as such."""
  out = []
  n = res["test_images"]
  for pair, d in res.get("disagreements", {}).items():
    if d["test"] <= handful * n and "/cce_" not in pair:
      a, b = pair.split(" vs ")
      out.append(f"* **{a} and {b} are practically one model:** their predictions differ on "
                 f"{d['test']} of {n} test images and {d['corrupted']} of "
                 f"{res['corrupted_images']} corrupted images, so their rows below are one "
                 "finding, not two.")
  return out


def comparisons(res: dict, bn: dict | None = None) -> str:
  """The page's claims, each computed from the tables above it: every
  difference names what it pairs and carries its paired test."""
  models, out = res["models"], []
  out += disagreement_notes(res)
  if bn:
    last = bn["statistics_only"][-1]
    authors = {n: m for n, m in models.items() if n.startswith("authors/")}
    if authors:
      gap = max(abs(m["top1"] - last["test_accuracy"]) for m in authors.values())
      n = res["test_images"]
      k_bn, k_base = (round(v * n) for v in (last["test_accuracy"],
                                             bn["base_accuracy"]["test"]))
      sys.path.insert(0, HERE)
      try:
        import legacy_intervals  # this folder's interval helper (one copy of Newcombe's rule)
      finally:
        sys.path.remove(HERE)
      _, lo, hi = legacy_intervals.newcombe_difference(k_bn, n, k_base, n)
      out.append(f"* **Batch-norm statistics alone.** Re-estimating only the base's running "
                 f"statistics for {last['epoch']} epochs of unaugmented batches (weights fixed) "
                 f"takes its test top-1 from {_pct(bn['base_accuracy']['test'])} to "
                 f"{_pct(last['test_accuracy'])} ({100 * (k_bn - k_base) / n:+.2f} points, "
                 f"95% interval [{100 * lo:+.2f}, {100 * hi:+.2f}], unpaired (Newcombe): "
                 f"{'detectably lower' if hi < 0 else 'detectably higher' if lo > 0 else stats.NO_DIFFERENCE}"
                 f"); the largest gap between an authors'-recipe fine-tune and it is "
                 f"{100 * gap:.2f} points (not tested: `bn_only.json` keeps no per-image "
                 "predictions).")
  recipes = sorted({n.split("/")[0] for n in models if not n.startswith("base")})
  base = models.get("base/cce_s0")
  multi = {k.split("/")[0] for k in res.get("over_seeds", {})}
  one = one_model_pairs(res)
  for recipe in recipes:
    if recipe in multi:  # its sentences are over the seeds (over_seed_claims)
      continue
    for seed in _seeds(models, recipe):
      ctrl = models.get(_name(recipe, "cce", seed))
      if ctrl is None:
        out.append(f"* {recipe}, seed {seed}: no cross-entropy control yet; no comparison.")
        continue
      who = "The authors'" if recipe == "authors" else "Our"
      out.append(f"* **{who} recipe, seed {seed}** (each weighted loss against the "
                 f"cross-entropy control fine-tuned by the same recipe, seed and epochs, on the "
                 f"same {res['test_images']} test images; control top-1 {_pct(ctrl['top1'])}"
                 + (f"; the base before fine-tuning: {_pct(base['top1'])}" if base else "")
                 + "):")
      moved = [models[_name(recipe, l, seed)] for l in LOSSES
               if _name(recipe, l, seed) in models]
      if moved and "weight_change_max" in moved[0]:
        out.append(f"  * How far the fine-tunes moved the base: weights by at most "
                   f"{max(m['weight_change_max'] for m in moved):.2g} (relative norm at most "
                   f"{max(m['weight_change_rel'] for m in moved):.2g}), batch-norm running "
                   f"statistics by up to {max(m['bn_stats_change_max'] for m in moved):.3g}.")
      for loss in LOSSES[1:]:
        m = models.get(_name(recipe, loss, seed))
        if m is None:
          out.append(f"  * {NAMES[loss]}: not run yet.")
          continue
        vs = m.get("vs_control", {})
        twin = [f"practically one model with {NAMES[l]} ({k} differing test predictions)"
                for l in LOSSES[1:LOSSES.index(loss)]
                for k in [one.get(frozenset({_name(recipe, l, seed), _name(recipe, loss, seed)}))]
                if k is not None]
        line = (f"  * {NAMES[loss]}" + (f" ({'; '.join(twin)})" if twin else "")
                + f": {_top1_test(m, ctrl, vs)}; {_m_test(m, ctrl, vs)}")
        cm = vs.get("corrupted_mcnemar")
        if cm:
          d = m["corrupted_top1"] - ctrl["corrupted_top1"]
          line += (f"; corrupted top-1 {_pts(d)} ({stats.verdict(cm['p_value'], d)}, McNemar "
                   f"on the {res['corrupted_images']} corrupted images, {_p(cm['p_value'])})")
        out.append(line + ".")
      hs = res["hard_soft"].get(f"{recipe}_s{seed}")
      if hs:
        for kind, where, label in (
            ("soft", "in_distribution", "in distribution"), ("hard", "in_distribution",
                                                             "in distribution"),
            ("soft", "corrupted", "corrupted"), ("hard", "corrupted", "corrupted")):
          s = hs[where]
          cname = _name(recipe, "cce", seed)
          parts = []
          digits = 1 if kind == "soft" else 0
          for l in LOSSES[1:]:
            n = _name(recipe, l, seed)
            tst = s.get(f"{kind}_vs_control", {}).get(n)
            d = s[kind][n] - s[kind][cname]
            parts.append(f"{NAMES[l]} {s[kind][n]:.{digits}f} ("
                         + (f"{_ci(tst, digits)}, {_p(tst['p_value'])}: "
                            f"{stats.verdict(tst['p_value'], d, higher='above', lower='below')}"
                            if tst else f"{d:+.{digits}f}, no paired test recorded") + ")")
          over = ("the source images, each with its "
                  f"{res['corrupted_images'] // max(1, res.get('ood_source_images', 1000))} "
                  "corrupted versions" if where == "corrupted" else "the images")
          out.append(f"  * {kind.capitalize()} score {label} (on the {s['num_common_mistakes']} "
                     f"images all four models misclassify; each weighted loss against the "
                     f"control's {s[kind][cname]:.{digits}f}, paired bootstrap over {over}): "
                     + "; ".join(parts) + ".")
  out += over_seed_claims(res)
  # The paper's claim (1), comparable top-1: its differences beside ours.
  out.append("* **Top-1 cost of the weighted losses, paper vs ours** (paper: Table 1, "
             "against its CCE model, one run, no test; ours: the authors' recipe against its "
             "control, McNemar on our test half, and our recipe over its seeds; *not the same "
             "settings*: base, epochs and "
             "checkpoint choice differ, see the protocol table):")
  for loss in LOSSES[1:]:
    paper = PAPER[loss]["top1"] - PAPER["cce"]["top1"]
    m = models.get(_name("authors", loss, 0))
    ctrl = models.get(_name("authors", "cce", 0))
    if m is None or ctrl is None:
      out.append(f"  * {NAMES[loss]}: paper {_pts(paper)}; ours not run yet.")
      continue
    ours = m["top1"] - ctrl["top1"]
    vs = m.get("vs_control", {})
    word = stats.verdict(vs.get("mcnemar_p"), ours)
    out.append(f"  * {NAMES[loss]}: paper {_pts(paper)}; ours (authors' recipe, seed 0) "
               f"{_pts(ours)} ({word}" + (f", {_p(vs['mcnemar_p'])}" if vs else "") + ")"
               + (_sign_and_size(ours, paper) if word != stats.NO_DIFFERENCE else
                  ": no detectable change, where the paper reports "
                  + ("a loss." if paper < 0 else "a gain.")))
    o = res.get("over_seeds", {}).get(f"ours/{loss}")
    if o:
      t = o["measures"]["top1"]
      v = three_seed_verdict(t)
      out[-1] += (f" Our recipe (seeds {', '.join(map(str, o['seeds']))}, mean of the same-seed "
                  f"differences): {_pts(t['pooled']['estimate'])} "
                  f"{_interval('top1', t['pooled'])} ({v['word']}, the three-seed rule)"
                  + (_against_paper(t["pooled"], paper) if v["claimed"] else
                     ": no detectable change, where the paper reports "
                     + ("a loss." if paper < 0 else "a gain.")))
  return "\n".join(out)


def _seed_list(values, fmt):
  return ", ".join(fmt(v) for v in values)


# The measures of the three-seed comparison: label, per-seed test, format of
# a difference (top-1 in points).
MEASURES = {"top1": ("top-1", "McNemar"), "M": ("mean M of mistakes", "bootstrap"),
            "hard": ("hard score", "bootstrap"), "soft": ("soft score", "bootstrap"),
            "hard_corrupted": ("hard score, corrupted", "bootstrap"),
            "soft_corrupted": ("soft score, corrupted", "bootstrap")}


def _diff(measure, v, sign=True):
  if measure == "top1":
    return f"{100 * v:{'+' if sign else ''}.2f}"
  if measure == "M":
    return f"{v:{'+' if sign else ''}.4f}"
  return f"{v:{'+' if sign else ''}.1f}"


def _interval(measure, d):
  return f"[{_diff(measure, d['low'])}, {_diff(measure, d['high'])}]"


def t_threshold(n: int) -> float:
  """|t| a two-sided paired t-test over ``n`` seeds needs for p < 0.05."""
  from scipy import stats as st
  return float(st.t.ppf(0.975, n - 1))


def three_seed_verdict(m: dict) -> dict:
  """Issue 33's rule for a weighted loss against the same seed's control:
  a difference is claimed only when the 95% interval of the paired bootstrap
  over the test images, pooled over the seeds, excludes 0 **and** every
  seed's difference has the pooled estimate's sign; otherwise "no detectable
  difference". The t-test over the seeds is reported beside it, not used
  alone (three seeds give it 2 degrees of freedom)."""
  pooled, values = m["pooled"], m["values"]
  excludes = pooled["low"] > 0 or pooled["high"] < 0
  sign = (pooled["estimate"] > 0) - (pooled["estimate"] < 0)
  agree = sum(((v > 0) - (v < 0)) == sign for v in values) if sign else 0
  claimed = excludes and sign != 0 and agree == len(values)
  word = (("detectably higher" if sign > 0 else "detectably lower") if claimed
          else stats.NO_DIFFERENCE)
  return {"excludes_zero": excludes, "same_sign": agree, "seeds": len(values),
          "claimed": claimed, "word": word}


def _per_seed_cell(measure, m) -> str:
  cells = []
  for s, v, t in zip(m.get("seeds", []) or range(len(m["values"])), m["values"], m["per_seed"]):
    test = (f"p = {t['p_value']:.2g}" if MEASURES[measure][1] == "McNemar"
            else _interval(measure, t))
    cells.append(f"s{s}: {_diff(measure, v)} ({test})")
  return "; ".join(cells)


def _t_cell(measure, t) -> str:
  if t["sd"] is None:
    return _diff(measure, t["mean"])
  p = "—" if t["p_value"] is None else f"{t['p_value']:.2g}"
  return f"{_diff(measure, t['mean'])} ± {_diff(measure, t['sd'], False)} (t-test p = {p})"


def _mean_sd(values, fmt) -> str:
  import statistics
  sd = f" ± {fmt(statistics.stdev(values))}" if len(values) > 1 else ""
  return f"{fmt(statistics.fmean(values))}{sd}"


def _recipe_seeds(res: dict, recipe: str) -> list[int]:
  """Seeds whose four fine-tunes of ``recipe`` are all published."""
  return sorted(int(k.rsplit("_s", 1)[1]) for k in res.get("hard_soft", {})
                if k.startswith(recipe + "_s"))


def three_seed_levels(res: dict, recipe: str = "ours") -> str:
  """Each loss of ``recipe`` over its seeds: top-1, mean M of mistakes and the
  hard / soft scores (of the four fine-tunes of each seed), mean ± sd."""
  seeds = _recipe_seeds(res, recipe)
  if not seeds:
    return f"(No seed of {recipe!r} has all four fine-tunes published.)"
  models, hs = res["models"], res["hard_soft"]
  pct = lambda v: f"{100 * v:.2f}%"
  rows = [f"| {recipe} / loss | test top-1 | mean M of mistakes | hard | soft | hard, corrupted | "
          "soft, corrupted |", "|---|---|---|---|---|---|---|"]
  for loss in LOSSES:
    names = [_name(recipe, loss, s) for s in seeds]
    score = lambda kind, where: _mean_sd(
        [hs[f"{recipe}_s{s}"][where][kind][n] for s, n in zip(seeds, names)],
        lambda v: f"{v:.1f}")
    rows.append(f"| {NAMES[loss]} | {_mean_sd([models[n]['top1'] for n in names], pct)} | "
                f"{_mean_sd([models[n]['mean_mistake_similarity_M'] for n in names], lambda v: f'{v:.4f}')} | "
                f"{score('hard', 'in_distribution')} | {score('soft', 'in_distribution')} | "
                f"{score('hard', 'corrupted')} | {score('soft', 'corrupted')} |")
  common = ", ".join(f"s{s}: {hs[f'{recipe}_s{s}']['in_distribution']['num_common_mistakes']} "
                     f"/ {hs[f'{recipe}_s{s}']['corrupted']['num_common_mistakes']}"
                     for s in seeds)
  return ("\n".join(rows) + f"\n\nMean ± sd over seeds {', '.join(map(str, seeds))} (sample sd, "
          f"{len(seeds)} seeds). Images all four fine-tunes of a seed misclassify, which the hard "
          f"and soft scores share out (in distribution / corrupted): {common}.")


def three_seed_differences(res: dict, recipe: str = "ours") -> str:
  """Each weighted loss minus the same seed's control, per measure: per-seed
  differences with their tests, mean ± sd with the t-test over the seeds,
  the pooled paired bootstrap over images, the sign count and the verdict of
  :func:`three_seed_verdict`."""
  rows = ["| loss - control | measure | per seed (per-seed test) | mean ± sd over seeds | pooled "
          "paired bootstrap over images [95% CI] | same sign | verdict |",
          "|---|---|---|---|---|---|---|"]
  keys = [k for k in res.get("over_seeds", {}) if k.startswith(recipe + "/")]
  if not keys:
    return f"(Fewer than two seeds of {recipe!r} published: no comparison over seeds.)"
  for key in keys:
    o = res["over_seeds"][key]
    loss = key.split("/")[1]
    for measure, m in o["measures"].items():
      v = three_seed_verdict(m)
      p = m["pooled"]
      rows.append(f"| {NAMES[loss]} - control | {MEASURES[measure][0]} | "
                  f"{_per_seed_cell(measure, m | {'seeds': o['seeds']})} | "
                  f"{_t_cell(measure, m['t_test'])} | {_diff(measure, p['estimate'])} "
                  f"{_interval(measure, p)} | {v['same_sign']} of {v['seeds']} | "
                  f"{'**' + v['word'] + '**' if v['claimed'] else v['word']} |")
  return "\n".join(rows)


def over_seed_claims(res: dict) -> list[str]:
  """A recipe's weighted losses over seeds, one sentence per measure, each
  generated from :func:`three_seed_differences`' row (verdict by
  :func:`three_seed_verdict`)."""
  out = []
  for key, o in res.get("over_seeds", {}).items():
    recipe, loss = key.split("/")
    pend = res.get("pending", {}).get(key, [])
    seeds = ", ".join(map(str, o["seeds"]))
    who = "Our" if recipe == "ours" else "The authors'"
    out.append(f"* **{who} recipe, {NAMES[loss]} against the control over seeds {seeds}**"
               + (f" (seeds {', '.join(map(str, pend))} pending)" if pend else "")
               + f" (each seed's {NAMES[loss]} fine-tune minus the cross-entropy control of "
               f"the same seed, on the same {res['test_images']} test images; pooled: the "
               "paired bootstrap over images of the mean over seeds):")
    for measure, m in o["measures"].items():
      v, p, t = three_seed_verdict(m), m["pooled"], m["t_test"]
      unit = " points" if measure == "top1" else ""
      why = ("the pooled interval excludes 0 and every seed has its sign" if v["claimed"] else
             ("the pooled interval excludes 0 but the seeds' signs differ" if v["excludes_zero"]
              else "the pooled interval includes 0"))
      tt = ("" if t["p_value"] is None else
            f"; t-test over the {t['n']} seeds p = {t['p_value']:.2g}")
      out.append(f"  * {MEASURES[measure][0]}: {_diff(measure, p['estimate'])}{unit} "
                 f"{_interval(measure, p)} (per seed "
                 f"{_seed_list(m['values'], lambda x: _diff(measure, x))}; same sign on "
                 f"{v['same_sign']} of {v['seeds']} seeds{tt}): {v['word']} ({why}).")
  return out


def seeds_table(res: dict) -> str:
  """The three-seed section: levels, differences, and pending seeds."""
  pend = [f"{k} (seeds {', '.join(map(str, v))})" for k, v in res.get("pending", {}).items()]
  n = max((len(o["seeds"]) for o in res.get("over_seeds", {}).values()), default=0)
  k = sum(len(o["measures"]) for o in res.get("over_seeds", {}).values())
  thr = (f"With {n} seeds the t-test has {n - 1} degrees of freedom: p < 0.05 needs "
         f"|t| > {t_threshold(n):.2f}, so it finds only large, steady effects; it is reported "
         f"beside the rule, not used alone. The table holds {k} comparisons and no correction "
         "for their number: a claim whose interval only just excludes 0 is the weakest."
         if n >= 2 else "")
  return "\n\n".join(x for x in (
      three_seed_levels(res), three_seed_differences(res), thr,
      ("Pending: " + "; ".join(pend) + ".") if pend else "") if x)


def _sign_and_size(ours: float, paper: float) -> str:
  if abs(ours) < 0.0005:
    return ": no change (the paper's is " + ("a loss" if paper < 0 else "a gain") + ")."
  same = (ours < 0) == (paper < 0)
  return (f": {'the same sign' if same else 'the opposite sign'}, "
          f"{'smaller' if abs(ours) < abs(paper) else 'larger'} in size.")


# Olmo et al., section 5.1, on the same table (quoted on the page).
PAPER_COMMON = 298
PAPER_COMMON_QUOTE = ("As the classifiers have high accuracy, we find that only 298 images are "
                      "misclassified by all models; less samples makes the hard and soft scores "
                      "unreliable to distinguish between the classifiers is terms of "
                      "explicability.")
PAPER_SETTINGS = ("ResNet-20 base (86.8%) not ResNet-29 v2 (91.85%), 3 epochs not 30, "
                  "checkpoint on the validation half not the test set")


def _against_paper(pooled: dict, paper: float) -> str:
  """A claimed difference with its interval beside the paper's single number:
  smaller / larger in size only when the whole interval is."""
  lo, hi = pooled["low"], pooled["high"]
  if (lo > 0) != (paper > 0):
    return ": the opposite sign."
  if min(abs(lo), abs(hi)) > abs(paper):
    size = "larger in size (the whole interval is beyond the paper's)"
  elif max(abs(lo), abs(hi)) < abs(paper):
    size = "smaller in size (the whole interval is)"
  else:
    size = "the interval covers the paper's difference"
  return f": the same sign, {size}."


def paper_table(res: dict) -> str:
  """The paper's Table 1 (CIFAR-10 rows, quoted) beside ours: the authors'
  recipe (seed 0) and our recipe (mean ± sd over its seeds); no row is the
  paper's settings, and two of our fine-tunes that are practically one model
  are marked."""
  models = res["models"]
  seeds = _recipe_seeds(res, "ours")
  rows = ["| model | paper top-1 | ours, authors' recipe (seed 0) | ours, our recipe (mean ± sd, "
          f"seeds {', '.join(map(str, seeds)) or '—'}) | paper hard / soft (of "
          f"{PAPER_COMMON}) | ours hard / soft, authors' recipe (seed 0) | ours hard / soft, our "
          "recipe (mean) | same settings? |", "|---|---|---|---|---|---|---|---|"]
  hs = res["hard_soft"].get("authors_s0", {}).get("in_distribution")
  one = one_model_pairs(res)
  for loss in LOSSES:
    m = models.get(_name("authors", loss, 0))
    twin = [f"practically one model with {NAMES[l]} ({k} differing test predictions)"
            for l in LOSSES[1:] if l != loss
            for k in [one.get(frozenset({_name("authors", l, 0), _name("authors", loss, 0)}))]
            if k is not None]
    ours_hs = (f"{hs['hard'][_name('authors', loss, 0)]} / "
               f"{hs['soft'][_name('authors', loss, 0)]:.1f} "
               f"(of {hs['num_common_mistakes']})") if hs else "not run yet"
    if seeds:
      tops = [models[_name("ours", loss, s)]["top1"] for s in seeds]
      ours_top = _mean_sd(tops, _pct)
      ind = [res["hard_soft"][f"ours_s{s}"]["in_distribution"] for s in seeds]
      ours_r = (f"{sum(h['hard'][_name('ours', loss, s)] for h, s in zip(ind, seeds)) / len(seeds):.1f}"
                f" / {sum(h['soft'][_name('ours', loss, s)] for h, s in zip(ind, seeds)) / len(seeds):.1f}"
                f" (of {sum(h['num_common_mistakes'] for h in ind) / len(seeds):.0f})")
    else:
      ours_top = ours_r = "not run yet"
    rows.append(f"| {NAMES[loss]} | {_pct(PAPER[loss]['top1'])} | "
                f"{_pct(m['top1']) if m else 'not run yet'}"
                + (f" ({'; '.join(twin)})" if twin else "") + f" | {ours_top} | "
                f"{PAPER[loss]['hard_soft'][0]} / {PAPER[loss]['hard_soft'][1]} | {ours_hs} | "
                f"{ours_r} | no: {PAPER_SETTINGS}; our recipe also SGD 0.02 with augmentation "
                "and L1 targets |")
  common = ([f"authors' recipe, seed 0: {hs['num_common_mistakes']}"] if hs else []) + (
      [f"our recipe, seeds {', '.join(map(str, seeds))}: " + ", ".join(
          str(res["hard_soft"][f"ours_s{s}"]["in_distribution"]["num_common_mistakes"])
          for s in seeds)] if seeds else [])
  return ("\n".join(rows) + f"\n\nThe paper's hard and soft scores are counted on the images all "
          f"four of its models misclassify (section 5.1): \"{PAPER_COMMON_QUOTE}\" Ours are "
          "counted the same way on our test half (5000 images, the paper's 10000), among the four "
          "fine-tunes of one recipe and seed: " + "; ".join(common) + ".")


# The paper's words (olmo_explicable_misclassification_paper.md), quoted.
LEMMA1 = ("A two-way swap between the probabilities assigned to an inexplicable vs. an "
          "explicable class penalizes the inexplicable misclassification more than the "
          "explicable one when using weighted CCEs with W representing M_h.")
LEMMA2 = ("When using weighted categorical cross entropy loss with W representing M_h, an "
          "increase epsilon in the confidence of a misclassification to class b is penalized if "
          "the probability epsilon is assigned to class(es) a that is(are) tau-times more "
          "explicable than b where, tau = log((p_a + epsilon)/p_a) / log((p_b + epsilon)/p_b), "
          "p_a is the probability given to class a when the misclassification to class b has "
          "higher confidence, and p_b is the probability given to class b when the class b has "
          "lower confidence.")
APPENDIX = {
    "c explicable, f inexplicable": (
        "as the confidence on the egregious class increases along the x-axis, the value of the "
        "loss function, plotted along the y-axis, also increases", "when the probability "
        "assigned to the correct class is higher, the magnitude of the penalty decreases "
        "significantly"),
    "c and f both inexplicable": (
        "the monotonic trend of the loss always penalizing higher confidence classification to "
        "the semantically further class c does not hold", "if the difference is assigned to "
        "the correct class the loss penalized the misclassification less"),
    "c and f both explicable": (
        "the general trend of the loss function values violating the monotonicity of "
        "penalizing the loss on placing higher confidence in f holds", "the use of the vanilla "
        "CCE loss forces the classifier to push for the correct class more than our proposed "
        "loss function"),
}


def appendix_verdict(name: str, r: dict) -> str:
  """Each of the appendix's two claims per setting (``APPENDIX``) against the
  regenerated curves ``r`` of ``loss_behaviour.py``: the first is about the
  loss along p_f within a panel, the second about it across panels (p_t)."""
  pan = r["panels"]
  rising = min(p["share_rising"] for p in pan)
  rises = [p["rise_to_share_0.9"] for p in pan]
  falls = r["falls_panel_to_panel"]
  if name == "c explicable, f inexplicable":
    x = ("holds" if rising == 1 else f"holds on {rising:.0%} of each panel's range only (near "
         "p_f = 0 the loss falls)")
    shrinks = all(b < a - 1e-3 for a, b in zip(rises, rises[1:]))
    span = (f"{min(rises):.3f}" if f"{min(rises):.3f}" == f"{max(rises):.3f}" else
            f"{min(rises):.3f}-{max(rises):.3f}")
    t = ("holds" if shrinks else f"does not hold for the penalty: the rise with p_f is {span} "
         "in every panel, and the loss at p_f = (1 - p_t)/2 "
         + ("falls in every step of p_t" if all(falls) else "does not fall in every step of p_t"))
  elif name == "c and f both inexplicable":
    x = ("agrees: the loss is not monotonic in p_f" if rising < 1 else
         "does not agree: the loss rises with p_f on the whole range")
    t = ("agrees: the loss at p_f = (1 - p_t)/2 falls in every step of p_t" if all(falls) else
         "agrees only in part: the loss at p_f = (1 - p_t)/2 falls in "
         f"{sum(falls)} of {len(falls)} steps of p_t")
  elif name == "c and f both explicable":
    x = ("agrees: the loss is not monotonic in p_f" if rising < 1 else
         "does not agree: the loss rises with p_f on the whole range")
    t = (f"agrees: the loss is lowest at p_t = {r['lowest_p_t']:.2f}, CCE's at p_t = 1"
         if r["lowest_p_t"] < 1 else "does not agree: the loss is lowest at p_t = 1, as CCE's")
  else:
    return "not checked"
  return f"first claim: {x}; second claim: {t}"


def lemma_section(lb: dict | None) -> str:
  """The lemmas and the appendix figure's claims, each beside what the
  regenerated curves (``loss_behaviour.json``) and the property tests show."""
  if not lb:
    return "(`loss_behaviour.py` has not been run.)"
  ex = lb["lemma2_examples"]
  ok, bad = ex["premise holds"], ex["premise fails"]
  out = [f"**Lemma 1** (quoted): \"{LEMMA1}\"", "",
         "`tests/test_olmo_lemmas.py` checks it on the library's weighted cross-entropy over "
         "random probability vectors and weight rows (hypothesis; L1 and softmax targets): a "
         "swap of h > l between an explicable class e and an inexplicable class i changes the "
         "loss by (log h - log l)(t_e - t_i) > 0, the paper's equation (2) with t the target "
         "row. **It holds.**", "",
         f"**Lemma 2** (quoted): \"{LEMMA2}\"", "",
         "The proof's own difference, L_h - L_l = W_ca log((p_a + eps)/p_a) - W_cb log((p_b + "
         "eps)/p_b), is what the library's loss gives (tested over random vectors), so the "
         "increase is penalised exactly when **W_ca > W_cb / tau**: the proof's last step "
         "inverts the ratio. Under the paper's premise p_a < p_b, tau > 1 and the stated "
         "condition W_ca > tau W_cb is sufficient (tested) but not necessary, so \"a has to be "
         "a tau-times more explicable class\" does not follow:",
         f"* p_a = {ok['p_a']}, p_b = {ok['p_b']}, eps = {ok['eps']}: tau = {ok['tau']:.2f}; "
         f"with W_cb = {ok['w_cb']} and W_ca = {ok['w_ca']} (not tau times more explicable) the "
         f"loss still rises by {ok['loss_high_minus_low']:+.4f} (L1 targets): penalised, as "
         f"W_ca > W_cb / tau = {ok['w_cb'] / ok['tau']:.3f} says;",
         f"* without the premise (p_a = {bad['p_a']}, p_b = {bad['p_b']}, eps = {bad['eps']}, "
         f"tau = {bad['tau']:.3f}) the stated condition holds (W_ca = {bad['w_ca']} > tau W_cb) "
         f"but the loss falls by {-bad['loss_high_minus_low']:.4f}: not penalised.", "",
         "**The appendix's figure** (\"Comparing Categorical Cross-Entropy to our loss ... for a "
         "three-class classification problem\"), regenerated by `python "
         "experiments/explicable_cifar10/loss_behaviour.py --out "
         "experiments/results/explicable_cifar10_resnet20`: correct class t (W_tt = 1), class c "
         "(W_c), class f (W_f); four panels per setting at p_t = "
         + ", ".join(map(str, lb["panels_p_t"])) + " (our choice: the figure is not in the "
         "text), p_f on the x-axis over " + str(lb["grid"]) + " points, p_c = 1 - p_t - p_f; "
         "the library's weighted cross-entropy with L1 targets (a positive rescaling of the "
         "paper's -sum_j W_tj log p_j, which changes none of the checks below).", "",
         "![weighted loss on three classes](explicable_cifar10_resnet20/loss_behaviour.png)", "",
         "| setting | W_c / W_f | the paper says | the curves show | verdict |",
         "|---|---|---|---|---|"]
  for name, r in lb["settings"].items():
    claim_x, claim_t = APPENDIX[name]
    pan = r["panels"]
    rising = pan[0]["share_rising"]
    same = max(p["share_rising"] for p in pan) - min(p["share_rising"] for p in pan) < 1e-9
    steps = " -> ".join(f"{p['loss_at_half']:.3f}" for p in pan)
    falls = r["falls_panel_to_panel"]
    trend = ("falls from every panel to the next" if all(falls) else
             "falls, then rises (" + ", ".join("falls" if f else "rises" for f in falls) + ")")
    rises = [p["rise_to_share_0.9"] for p in pan]
    x_text = (f"the loss rises with p_f on {rising:.0%} of each panel's range"
              + (" (the same share in every panel)" if same else "")
              + f" and falls before: lowest at p_f = {pan[0]['lowest_at_share']:.2f} (1 - p_t) "
              f"(closed form W_f / (W_c + W_f) = {r['lowest_share_closed_form']:.3f}), as "
              "-W_f log p_f grows without bound at p_f = 0")
    t_text = (f"at p_f = (1 - p_t) / 2 the loss {trend} across p_t = "
              + ", ".join(str(p["p_t"]) for p in pan) + f" ({steps}); over p_t it is lowest at "
              f"p_t = 1 / (1 + W_c + W_f) = {r['lowest_p_t']:.2f}, where CCE's is at 1; within a "
              f"panel the rise from the lowest point to p_f = 0.9 (1 - p_t) is "
              + (f"{min(rises):.3f}" if f"{min(rises):.3f}" == f"{max(rises):.3f}" else
                 f"{min(rises):.3f}-{max(rises):.3f}")
              + " in every panel (only the x-range shrinks)")
    out.append(f"| {name} | {r['w_c']} / {r['w_f']} | \"{claim_x}\"; \"{claim_t}\" | "
               f"{x_text}; {t_text} | {appendix_verdict(name, r)} |")
  s1 = lb["settings"]
  lines = []
  for name, r in s1.items():
    st_ = r["lemma2_steps"]
    lines.append(f"{name}: the loss rises on {st_['rises']} of {st_['steps']} steps; W_c > W_f / "
                 f"tau is right on {st_['steps'] - st_['exact_wrong']} of them; the stated "
                 f"W_c > tau W_f holds on {st_['stated_says_rises']} and is wrong on "
                 f"{st_['stated_wrong']}; on the {st_['premise_holds']} steps where its premise "
                 f"p_c < p_f holds it is wrong {st_['stated_wrong_with_premise'] + st_['stated_misses_with_premise']}"
                 f" times, {st_['stated_wrong_with_premise']} of them a penalty that is not there")
  out += ["", "Lemma 2 on the same curves: each grid step moves eps = (1 - p_t) / "
          f"{lb['grid'] + 1} from c (the lemma's a) to f (its b). " + "; ".join(lines) + ". "
          "The paper says the first setting is one \"where the condition in Lemma 1 holds\" "
          "and the other two ones \"where the condition in Lemma 2 does not hold\"; on these "
          "grids the condition as stated holds on part of every setting's steps (counts above), "
          "and whether a step is penalised follows W_c > W_f / tau."]
  return "\n".join(out)


def build(res: dict, folder: str) -> dict:
  """The page's placeholders from ``results.json`` and ``folder/tables.md``."""
  args = res["command_args"]
  command = ("python experiments/explicable_cifar10/evaluate_resnet20.py "
             + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in args.items()
                        if v is not None))
  with open(os.path.join(folder, "tables.md")) as f:
    tables = f.read().strip()
  bn = None
  if os.path.exists(os.path.join(folder, "bn_only.json")):
    with open(os.path.join(folder, "bn_only.json")) as f:
      bn = json.load(f)
  lb = None
  if os.path.exists(os.path.join(folder, "loss_behaviour.json")):
    with open(os.path.join(folder, "loss_behaviour.json")) as f:
      lb = json.load(f)
  wall = (f"{res['evaluation_seconds']:.0f} s summed over the models' cached evaluations, "
          f"{res['wall_seconds']:.0f} s for the last invocation"
          if "evaluation_seconds" in res else f"{res['wall_seconds']:.0f} s")
  return {"DATE": res["date"], "PROTOCOL": protocol_table(), "COMMAND": command,
          "WALL": wall, "DATA": res["data"], "SEEDS_TABLE": seeds_table(res),
          "LEMMAS": lemma_section(lb),
          "TEST_IMAGES": str(res["test_images"]), "CORRUPTED": str(res["corrupted_images"]),
          "TABLES": tables, "PAPER_TABLE": paper_table(res), "CLAIMS": comparisons(res, bn),
          "STATISTICS_ONLY": statistics_only(bn)}


def main(argv=None) -> None:
  from explicable_jax.app import reporting
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--results", default=os.path.join(
      ROOT, "experiments/results/explicable_cifar10_resnet20/results.json"))
  p.add_argument("--page", default=os.path.join(
      ROOT, "experiments/results/explicable_cifar10_resnet20.md"))
  p.add_argument("--template", default=os.path.join(HERE, "page_resnet20.md.in"))
  p.add_argument("--check", action="store_true")
  args = p.parse_args(argv)
  folder = os.path.dirname(os.path.abspath(args.results))
  reporting.make_page(args.template, args.page, args.results, lambda res: build(res, folder),
                      ["--check"] if args.check else [])


if __name__ == "__main__":
  main(sys.argv[1:])
