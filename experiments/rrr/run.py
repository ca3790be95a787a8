"""Right for the Right Reasons (Ross, Hughes and Doshi-Velez, IJCAI 2017) on
Toy Colors, Decoy MNIST and 20 Newsgroups, plus certainty regularisation
against FGSM, under two protocols side by side and over several seeds.

    python experiments/rrr/run.py --data-dir ../shared/data --workdir runs/rrr \\
        --out experiments/results/rrr --seeds 0 1 2

Protocols (``--protocols``):

* ``paper``: the authors' code (dtak/rrr, ``rrr/multilayer_perceptron.py``
  and the notebooks): raw 0-255 pixels; MLP 50-30 with every weight and bias
  drawn from N(0, 0.1^2); Adam 1e-3, batch 256, 64 epochs over fixed,
  unshuffled slices (the last one partial); ``l2_params`` 1e-4; lambda in
  their units; explanation masks and rule scores from the gradient of the
  largest probability; 20 Newsgroups as ``TfidfVectorizer(lowercase=False,
  max_features=5000)``.
* ``ours``: the library's defaults: [0, 1] pixels (lambda divided by 255^2 so
  that it means the same), He initialisation, no weight penalty, reshuffled
  batches, masks from the penalty's own gradient (``sum_k log p_k``); the
  same epochs, optimiser and batch size. 20 Newsgroups with lowercase,
  ``min_df=2``, sublinear TF.

Every trained model's numbers are saved in ``--workdir`` as soon as it is
done, so an interrupted run resumes, with the same command, at the first
model not yet trained. ``--out`` receives ``results.json`` (every seed's
numbers and the mean and standard deviation), ``tables.md`` and the plots.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import time
import zlib

import jax
import numpy as np
import optax

from explicable_jax import data, losses, models, robustness, rrr, training
from explicable_jax.app import reporting
from explicable_jax.data import rrr as drrr

PIXEL_LAMBDA_SCALE = 1.0 / 255 ** 2

PROTOCOLS = {
    "paper": {
        "pixels": 255.0, "init": "normal", "l2_params": 1e-4, "shuffle": False,
        "lam_scale": 1.0, "mask": ("linear", "max"),
        "newsgroups": {"min_df": 1, "max_features": 5000, "lowercase": False,
                       "sublinear_tf": False},
    },
    "ours": {
        "pixels": 1.0, "init": "he", "l2_params": 0.0, "shuffle": True,
        "lam_scale": PIXEL_LAMBDA_SCALE, "mask": ("log", "sum"),
        "newsgroups": {"min_df": 2, "lowercase": True, "sublinear_tf": True},
    },
}
# The score that Ross et al.'s rule1_score / rule2_score measure: the
# gradient of the largest probability. Used for every protocol so that the
# columns measure the same thing.
RULE_SCORE_GRADIENT = {"scale": "linear", "classes": "max"}


def _name_key(key, name: str):
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _pixels(ds: data.Dataset, proto: dict) -> data.Dataset:
  """Images as float32 in [0, 1] (ours) or raw 0-255 values (paper)."""
  if ds.x.dtype != np.uint8:
    return ds
  return dataclasses.replace(ds, x=data.to_float(ds.x) * np.float32(proto["pixels"]))


def _with_annotation(ds, annotation):
  return dataclasses.replace(ds, extras={"annotation": np.asarray(annotation, np.float32)})


def _fit(key, ds, proto, *, lam, epochs, batch_size=256, model="mlp", model_kwargs=None,
         certainty=False):
  if model == "mlp":
    model_kwargs = {"hidden": (50, 30), "init": proto["init"], **(model_kwargs or {})}
  make = models.create_model(jax.random.fold_in(key, 0), model, input_shape=ds.input_shape,
                             num_classes=ds.num_classes, **(model_kwargs or {}))
  opt = optax.adam(1e-3)
  # Their objective sums over the batch and adds l2_params ||theta||^2 once;
  # ours averages, so the same objective (up to the factor Adam ignores) has
  # l2 = l2_params / batch.
  l2 = proto["l2_params"] / batch_size
  if certainty:
    loss = losses.make_certainty_loss(lam, l2=l2)
  else:
    if "annotation" not in ds.extras:
      ds = _with_annotation(ds, np.zeros(ds.x.shape))
    loss = losses.make_rrr_loss(lam, l2=l2)
  state = training.create_train_state(jax.random.fold_in(key, 1), make, opt)
  if proto["pixels"] != 1:  # The original's 0..255 inputs: the model declares that scale.
    state = state.replace(spec=dataclasses.replace(state.spec, input_range=None))
  order = ({"seed": int(jax.random.randint(key, (), 0, 2**30))} if proto["shuffle"]
           else {"shuffle": False})  # a seed is read only to shuffle
  return training.fit(state, ds, train_step=training.make_train_step(loss, opt),
                      epochs=epochs, batch_size=batch_size, progress=False,
                      drop_remainder=proto["shuffle"], **order)[0]


def _acc(state, ds):
  return float(training.evaluate(state, ds)["accuracy"])


class Records:
  """One JSON file per trained model (or chain) under ``workdir``: the
  resume points of the run."""

  def __init__(self, workdir: str):
    self.dir = os.path.join(workdir, "records")
    os.makedirs(self.dir, exist_ok=True)

  def get(self, name: str, compute):
    path = os.path.join(self.dir, name.replace("/", "__") + ".json")

    def timed():
      t0 = time.time()
      rec = compute()
      rec["seconds"] = time.time() - t0
      print(name, {k: v for k, v in rec.items() if not isinstance(v, (list, dict))},
            flush=True)
      return rec
    return reporting.cached_json(path, timed)


def _rule_scores(state, x):
  return drrr.toy_colors_rule_scores(rrr.model_input_gradients(state, x, **RULE_SCORE_GRADIENT))


def toy_colors(args, proto_name, seed, rec: Records):
  proto = PROTOCOLS[proto_name]
  key = jax.random.key(seed)
  train = _pixels(drrr.toy_colors("train", n=args.toy_n, seed=seed), proto)
  test = _pixels(drrr.toy_colors("test", n=args.toy_n, seed=seed), proto)
  corners = drrr.toy_colors_rule_mask("corners")
  middle = drrr.toy_colors_rule_mask("top_middle")
  scale = proto["lam_scale"]
  out = {}

  def model(name, mask, lam):
    def compute():
      ds = _with_annotation(train, np.broadcast_to(mask, train.x.shape))
      st = _fit(_name_key(key, name), ds, proto, lam=lam * scale, epochs=args.epochs)
      probs = jax.nn.softmax(training.predict(st, test.x[:2000]), -1)
      return {"lambda": lam, "test_accuracy": _acc(st, test),
              "train_accuracy": _acc(st, train), **_rule_scores(st, test.x[:2000]),
              "mean_max_probability": float(probs.max(-1).mean())}
    out[name] = rec.get(f"toy_colors/{proto_name}/seed{seed}/{name}", compute)

  model("plain", np.zeros_like(corners), 0.0)
  model("penalise rule 1 (corners), lambda 1e3", corners, 1e3)
  model("penalise rule 2 (top middle), lambda 1e3", middle, 1e3)
  model("penalise both rules, lambda 1e3", corners | middle, 1e3)
  model("penalise both rules, lambda 1e6", corners | middle, 1e6)

  def chain():
    found = rrr.find_another_explanation(
        _name_key(key, "find another explanation"), train, n_models=3,
        make_model=lambda k: models.from_nnx(
            models.create_model(k, "mlp", input_shape=train.input_shape, num_classes=2,
                                hidden=(50, 30), init=proto["init"]),
            input_range=None if proto["pixels"] != 1 else (0.0, 1.0)),
        optimizer=optax.adam(1e-3), lam=[l * scale for l in args.fae_lambdas],
        epochs=args.epochs, batch_size=256, eval_ds=test,
        mask_scale=proto["mask"][0], mask_classes=proto["mask"][1],
        l2=proto["l2_params"] / 256,
        fit_options={"shuffle": proto["shuffle"], "drop_remainder": proto["shuffle"]})
    return {"models": [
        {"lambda": lam, "test_accuracy": f.eval_accuracy, "train_accuracy": f.train_accuracy,
         "annotated_fraction": float(f.annotation.mean()),
         # Examples whose explanation is empty (an all-zero input gradient,
         # e.g. a probability that rounds to 1 in float32).
         "empty_mask_fraction": float(1 - f.mask.reshape(len(f.mask), -1).any(1).mean()),
         **_rule_scores(f.state, test.x[:2000])}
        for lam, f in zip(args.fae_lambdas, found)]}
  out["find another explanation"] = rec.get(
      f"toy_colors/{proto_name}/seed{seed}/find another explanation", chain)

  if seed == args.seeds[0]:
    sweep = []
    for lam in args.sweep:
      name = f"sweep, corners, lambda {lam:g}"
      model(name, corners, lam)
      sweep.append(out.pop(name))
    out["lambda sweep (corners)"] = sweep
  return out


def decoy_mnist(args, proto_name, seed, rec: Records):
  proto = PROTOCOLS[proto_name]
  key = jax.random.key(seed)
  train = _pixels(data.load("decoy_mnist", "train", data_dir=args.data_dir, seed=seed), proto)
  test = _pixels(data.load("decoy_mnist", "test", data_dir=args.data_dir, seed=seed), proto)
  out = {"data": train.note}

  def model(name, ds, lam, eval_ds):
    def compute():
      st = _fit(_name_key(key, name), ds, proto, lam=lam * proto["lam_scale"],
                epochs=args.epochs)
      return {"lambda": lam, "test_accuracy": _acc(st, eval_ds), "train_accuracy": _acc(st, ds)}
    out[name] = rec.get(f"decoy_mnist/{proto_name}/seed{seed}/{name}", compute)

  model("no annotation", _with_annotation(train, np.zeros(train.x.shape)), 0.0, test)
  model("swatch annotated, lambda 1e3", train, 1e3, test)
  clean_train = _pixels(data.load("mnist", "train", data_dir=args.data_dir), proto)
  clean_test = _pixels(data.load("mnist", "test", data_dir=args.data_dir), proto)
  model("the same MLP on clean MNIST", clean_train, 0.0, clean_test)
  return out


def newsgroups(args, proto_name, seed, rec: Records):
  proto = PROTOCOLS[proto_name]
  key = jax.random.key(seed)
  opts = proto["newsgroups"]

  def compute():
    train = drrr.newsgroups("train", data_dir=args.data_dir, **opts)
    test = drrr.newsgroups("test", data_dir=args.data_dir, **opts)
    st = _fit(_name_key(key, "plain"), train, proto, lam=0.0, epochs=args.epochs)
    g = rrr.model_input_gradients(st, test.x[:6])
    words = []
    for i in range(6):
      present = np.flatnonzero(test.x[i] > 0)
      top = present[np.argsort(-np.abs(g[i][present]))[:8]]
      words.append({"label": test.class_names[test.y[i]],
                    "top_words": [(test.feature_names[j], float(g[i][j])) for j in top]})
    return {"test_accuracy": _acc(st, test), "vocabulary": len(train.feature_names),
            "explanations": words}
  return {"plain": rec.get(f"newsgroups/{proto_name}/seed{seed}/plain", compute)}


def certainty(args, proto_name, seed, rec: Records):
  """Certainty regularisation against FGSM (section 5): ours only; the
  paper's figure uses its own CNN, which its code does not include."""
  key = jax.random.key(seed)
  train = data.load("mnist", "train", data_dir=args.data_dir)
  test = data.load("mnist", "test", data_dir=args.data_dir)
  train = train.take(np.arange(min(len(train), args.cert_n)))
  test = test.take(np.arange(min(len(test), 2000)))
  xt = data.to_float(test.x)
  out = {"train_images": len(train), "epochs": args.cert_epochs, "eps": list(args.eps)}
  for name, lam in (("plain CNN", 0.0), ("certainty-regularised CNN", args.cert_lam)):
    def compute(name=name, lam=lam):
      st = _fit(_name_key(key, name), train, PROTOCOLS["ours"], lam=lam,
                epochs=args.cert_epochs, model="cnn",
                model_kwargs={"widths": [16, 32], "dense": 64, "pool": "flatten"},
                certainty=lam > 0)
      f = jax.jit(lambda x, st=st: st.apply(x)[0])
      return {"lambda": lam, "accuracy_under_fgsm": [robustness.accuracy_under(
          f, xt, test.y, key=key,
          perturb=lambda k, xb, yb, e=e: robustness.fgsm(f, xb, yb, e)) for e in args.eps]}
    out[name] = rec.get(f"certainty/{proto_name}/seed{seed}/{name}", compute)
  return out


PARTS = {"toy_colors": toy_colors, "decoy_mnist": decoy_mnist, "newsgroups": newsgroups,
         "certainty": certainty}


def _numbers(tree, prefix=()):
  """Flattens a record tree into ``{path: number}`` (lists by index)."""
  out = {}
  items = tree.items() if isinstance(tree, dict) else enumerate(tree)
  for k, v in items:
    if k == "seconds":
      continue
    if isinstance(v, (dict, list)):
      out.update(_numbers(v, prefix + (str(k),)))
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      out[prefix + (str(k),)] = float(v)
  return out


def summarize(per_seed: dict) -> dict:
  """Mean, standard deviation (ddof 1) and the values of every number
  over the seeds that have it."""
  flat = {s: _numbers(t) for s, t in per_seed.items()}
  paths = sorted({p for f in flat.values() for p in f})
  out = {}
  for p in paths:
    vals = [f[p] for f in flat.values() if p in f]
    out[" / ".join(p)] = {"mean": float(np.mean(vals)),
                          "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                          "n": len(vals), "values": vals}
  return out


def _fmt(stat):
  if stat is None:
    return "n/a"
  if stat["std"] is None:
    return f"{stat['mean']:.4f} (1 run)"
  return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def write_tables(res: dict, path: str) -> None:
  lines = [f"# RRR tables (mean ± standard deviation over seeds {res['seeds']}; "
           "written by experiments/rrr/run.py)", ""]
  for part in res["parts"]:
    protos = [p for p in res["protocols"] if p in res["summary"].get(part, {})]
    if not protos:
      continue
    keys = sorted({k for p in protos for k in res["summary"][part][p]})
    lines += [f"## {part}", "", "| quantity | " + " | ".join(protos) + " |",
              "|---|" + "---|" * len(protos)]
    for k in keys:
      lines.append(f"| {k} | " + " | ".join(_fmt(res["summary"][part][p].get(k))
                                           for p in protos) + " |")
    lines.append("")
  with open(path, "w") as f:
    f.write("\n".join(lines))


def plots(res: dict, out: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  first = str(res["seeds"][0])
  if "toy_colors" in res["per_seed"]:
    fig, axes = plt.subplots(1, len(res["protocols"]), figsize=(5 * len(res["protocols"]), 3.4),
                             squeeze=False)
    for ax, proto in zip(axes[0], res["protocols"]):
      sweep = res["per_seed"]["toy_colors"].get(proto, {}).get(first, {}).get(
          "lambda sweep (corners)")
      if not sweep:
        continue
      lams = [s["lambda"] for s in sweep]
      ax.semilogx(lams, [s["test_accuracy"] for s in sweep], "o-", label="test accuracy")
      ax.semilogx(lams, [s["rule1"] for s in sweep], "s--", label="rule 1 score (corners)")
      ax.semilogx(lams, [s["rule2"] for s in sweep], "^--", label="rule 2 score (top middle)")
      ax.set_xlabel("lambda (original units, 0-255 inputs)")
      ax.set_title(f"Toy Colors, corners penalised ({proto} protocol, seed {first})",
                   fontsize=8)
      ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "toy_colors_lambda_sweep.png"), dpi=110)
    plt.close(fig)
  cert = res["summary"].get("certainty", {}).get("ours")
  if cert:
    eps = res["per_seed"]["certainty"]["ours"][first]["eps"]
    plt.figure(figsize=(4.5, 3.2))
    for name in ("plain CNN", "certainty-regularised CNN"):
      m = [cert[f"{name} / accuracy_under_fgsm / {i}"]["mean"] for i in range(len(eps))]
      s = [cert[f"{name} / accuracy_under_fgsm / {i}"]["std"] or 0.0 for i in range(len(eps))]
      plt.errorbar(eps, m, yerr=s, marker="o", label=name, capsize=2)
    plt.xlabel("FGSM epsilon ([0, 1] pixels)")
    plt.ylabel("test accuracy")
    plt.legend(fontsize=7)
    plt.tight_layout()
    plt.savefig(os.path.join(out, "certainty_fgsm.png"), dpi=110)
    plt.close()


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data-dir", default=None)
  p.add_argument("--out", required=True)
  p.add_argument("--workdir", required=True, help="per-model records (the resume points)")
  p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  p.add_argument("--protocols", default="paper,ours")
  p.add_argument("--parts", default="toy_colors,decoy_mnist,newsgroups,certainty")
  p.add_argument("--epochs", type=int, default=64)
  p.add_argument("--toy-n", type=int, default=20000)
  p.add_argument("--fae-lambdas", type=float, nargs="+", default=[0.0, 1e3, 1e6],
                 help="find-another-explanation: one lambda per model (original units)")
  p.add_argument("--sweep", type=float, nargs="+",
                 default=[1, 10, 100, 1000, 10000, 100000, 1000000])
  p.add_argument("--cert-n", type=int, default=20000)
  p.add_argument("--cert-epochs", type=int, default=3)
  p.add_argument("--cert-lam", type=float, default=1.0)
  p.add_argument("--eps", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
  args = p.parse_args(argv)
  parts = args.parts.split(",")
  protos = args.protocols.split(",")
  for name in parts:
    if name not in PARTS:
      p.error(f"--parts: unknown part {name!r}; valid: {', '.join(PARTS)}")
  for name in protos:
    if name not in PROTOCOLS:
      p.error(f"--protocols: unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
  os.makedirs(args.out, exist_ok=True)
  rec = Records(args.workdir)
  t0 = time.time()
  per_seed, summary = {}, {}
  for part in parts:
    for proto in (["ours"] if part == "certainty" else protos):
      runs = {str(s): PARTS[part](args, proto, s, rec) for s in args.seeds}
      per_seed.setdefault(part, {})[proto] = runs
      summary.setdefault(part, {})[proto] = summarize(
          {s: {k: v for k, v in r.items() if k != "lambda sweep (corners)"}
           for s, r in runs.items()})
  res = {"date": datetime.date.today().isoformat(), "command_args": vars(args),
         "seeds": args.seeds, "parts": parts, "protocols": protos,
         "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}",
         "protocol_settings": PROTOCOLS, "rule_score_gradient": RULE_SCORE_GRADIENT,
         "model_seconds_total": sum(
             json.load(open(os.path.join(rec.dir, f))).get("seconds", 0.0)
             for f in os.listdir(rec.dir) if f.endswith(".json")),
         "wall_seconds_this_invocation": time.time() - t0,
         "summary": summary, "per_seed": per_seed}
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(res, f, indent=1, default=str)
  write_tables(res, os.path.join(args.out, "tables.md"))
  plots(res, args.out)
  print(f"wall time {time.time() - t0:.0f}s")


if __name__ == "__main__":
  main()
