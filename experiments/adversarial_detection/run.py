"""Wang et al.'s experiment on MNIST: adversarial inputs detected by model mutation.

    python experiments/adversarial_detection/run.py --data-dir /work/shared/data \
        --workdir runs/adversarial_detection --out experiments/results/adversarial_detection

Every stage is cached in ``--workdir`` (``.npz``/``.json``, written
atomically; long attacks in chunks), so rerunning the same command resumes
where an interrupted run stopped. Stages:

1. LeNet (their ``MnistNet4``) trained on the 60000 training images;
2. the input sets: 1000 random correctly classified test images (normal),
   every misclassified test image (wrongly classified natural inputs), 1000
   random test images with their true labels (SPRT's normal set, as in their
   ``detect/adv_detect.py``);
3. the five attacks with their settings (``config.ATTACK_SETTINGS``), their
   save-and-reload round trip and validity check (an image the model gives
   its true label is removed; the label the model gives the reloaded image is
   its adversarial label), then up to 1000 at random;
4. for each operator, 500 mutants through the accuracy gate and their
   predictions on every input;
5. LCR, AUROC (adversarial vs normal), SPRT, and the baselines (MSP,
   Feinman et al.'s KDE and Bayesian uncertainty and their logistic
   combination as in ``baseline/kde.py``); ``results.json`` in ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import config  # noqa: E402
import models  # noqa: E402

from explicable_jax import _batching, data, metrics, mutation, robustness  # noqa: E402
from explicable_jax.app import reporting  # noqa: E402

STD = models.STD


CACHE_FROM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "checkpoints",
                          "adversarial_detection_mnist")
"""Committed copies of the run's costliest caches (``lenet.npz`` and the C&W
chunks ``adv_cw<iterations>_<k>.npz``, a few KB each: only the valid
adversarial images, as uint8): C&W at 10000 iterations takes about 3.4 h of
one CPU, more than a session, and a fresh checkout has no ``runs/``."""


def seed_workdir(source, workdir) -> None:
  """Copies the committed caches of ``source`` into ``workdir`` where the
  workdir lacks them (a cache already there is never replaced)."""
  if not source or not os.path.isdir(source):
    return
  import shutil
  for name in sorted(os.listdir(source)):
    if name.endswith(".npz") and not os.path.exists(os.path.join(workdir, name)):
      shutil.copy2(os.path.join(source, name), os.path.join(workdir, name))
      _log(f"cache {name} copied from {source}")


def _log(msg):
  print(f"[{datetime.datetime.now():%H:%M:%S}] {msg}", flush=True)


def _flatten(params) -> dict:
  return {"/".join(str(k.key) for k in path): np.asarray(v)
          for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}


def _unflatten(flat: dict):
  out: dict = {}
  for k, v in flat.items():
    a, b = k.split("/")
    out.setdefault(a, {})[b] = jnp.asarray(v)
  return out


@jax.jit
def _predict_batch(params, xb):
  return jnp.argmax(models.lenet_apply(params, xb), -1)


def predict(params, x, batch_size=2000):
  return _batching.map_batches(_predict_batch, [np.asarray(x)], batch_size=batch_size,
                               args=(params,))


@jax.jit
def _probs_batch(params, xb):
  return jax.nn.softmax(models.lenet_apply(params, xb), -1)


def train_lenet(key, x, y, settings):
  """Their ``train_mnist_model``: SGD (lr 0.01, momentum 0.5), batches of 64,
  cross-entropy, torch's default initialisation."""
  init_key, order_key = jax.random.split(key)
  params = models.lenet_init(init_key)
  opt = optax.sgd(settings["learning_rate"], momentum=settings["momentum"])
  bs = settings["batch_size"]
  n = len(x) // bs * bs  # torch keeps the last partial batch; 60000 = 937 * 64 + 32

  @jax.jit
  def epoch(params, opt_state, key, x, y):
    order = jax.random.permutation(key, len(x))[:n].reshape(-1, bs)

    def step(carry, idx):
      params, opt_state = carry
      grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
          models.lenet_apply(p, x[idx]), y[idx]).mean())(params)
      updates, opt_state = opt.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None
    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), order)
    return params, opt_state

  opt_state = opt.init(params)
  xj, yj = jnp.asarray(x), jnp.asarray(y)
  for e in range(settings["epochs"]):
    params, opt_state = epoch(params, opt_state, jax.random.fold_in(order_key, e), xj, yj)
    _log(f"lenet epoch {e + 1}/{settings['epochs']}")
  return params


# ---------------------------------------------------------------------------
# Attacks: each returns (x_adv float32 [0, 1] after the round trip, true labels,
# adversarial labels, source ids) of the images that pass the validity check.


def _validity(params, x_adv_raw, true, src):
  """Their save (scipy bytescale to uint8) and ``rename_advlabel_deflected_img``:
  drop images the model gives their true label, relabel the rest."""
  rt = models.their_png_round_trip(x_adv_raw)
  pred = predict(params, rt)
  keep = pred != true
  return {"x": (rt[keep] * 255).round().astype(np.uint8), "true": true[keep],
          "adv": pred[keep].astype(np.int64), "src": src[keep]}


def _chunked(workdir, name, ids, fn, chunk, enough):
  """``fn(ids_chunk) -> dict`` over ``ids`` in chunks cached one by one; stops
  once ``enough`` valid images are collected."""
  parts, total = [], 0

  def timed(idx):
    t0 = time.time()
    out = fn(idx)
    out["chunk_seconds"] = np.array([time.time() - t0])
    return out

  for c, lo in enumerate(range(0, len(ids), chunk)):
    part = reporting.cached_arrays(os.path.join(workdir, f"adv_{name}_{c:03d}.npz"),
                                   lambda lo=lo: timed(ids[lo:lo + chunk]))
    parts.append(part)
    total += len(part["true"])
    _log(f"{name}: chunk {c + 1}, {total} valid so far")
    if total >= enough:
      break
  keys = [k for k in parts[0] if k != "chunk_seconds"]
  out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
  if all("chunk_seconds" in p for p in parts):
    out["chunk_seconds"] = np.array([float(sum(p["chunk_seconds"].sum() for p in parts))])
  return out


def attack_fgsm(params, x, y, correct_ids, s):
  logits = lambda v: models.lenet_apply(params, v)
  fn = jax.jit(lambda xb, yb: models.their_fgsm(logits, xb, yb, s["eps"] * STD))
  raw = _batching.map_batches(fn, [x[correct_ids], y[correct_ids]], batch_size=500)
  return _validity(params, raw, y[correct_ids], correct_ids)


def attack_jsma(key, params, x, y, s):
  logits = lambda v: models.lenet_apply(params, v)

  def fn(idx):
    targets = np.asarray(robustness.random_targets(jax.random.fold_in(key, int(idx[0])),
                                                   y[idx], 10))
    adv = np.asarray(robustness.jsma(logits, x[idx], targets, theta=s["theta"] * STD,
                                     gamma=s["gamma"], pixels=s["pixels"], clip=None))
    hit = predict(params, adv) == targets  # their success check, before saving
    return _validity(params, adv[hit], y[idx][hit], idx[hit])
  return fn


def attack_cw(params, x, y, s):
  logits = lambda v: models.lenet_apply(params, v)
  lo, hi = models.MEAN - STD / 2, models.MEAN + STD / 2

  def fn(idx):
    # Their carlinl2.py maps 0.5 tanh(x_norm + W), W = 0: the attack starts from
    # 0.5 tanh(x_norm), not from x (the arctanh of Carlini's code is missing);
    # in pixel units that is the box (mean -+ std / 2) starting at w = x_norm.
    start = models.MEAN + STD * 0.5 * np.tanh((x[idx] - models.MEAN) / STD)
    pred = predict(params, x[idx])
    adv = np.asarray(robustness.carlini_wagner_l2(
        logits, start, pred, initial_const=s["c"] * STD ** 2, binary_search_steps=1,
        max_iterations=s["iterations"], learning_rate=s["learning_rate"],
        confidence=s["confidence"], clip=(lo, hi)))
    hit = predict(params, adv) != pred  # their check_adversarial_samples
    return _validity(params, adv[hit], y[idx][hit], idx[hit])
  return fn


def attack_deepfool(params, x, y, s):
  logits = lambda v: models.lenet_apply(params, v)

  def fn(idx):
    pred = predict(params, x[idx])
    adv = np.asarray(robustness.deepfool(logits, x[idx], pred, overshoot=s["overshoot"],
                                         max_iter=s["max_iter"], clip=None))
    hit = predict(params, adv) != pred
    return _validity(params, adv[hit], y[idx][hit], idx[hit])
  return fn


def attack_bb(key, params, x_train, y_train, x_test, y_test, s, seed, workdir):
  perm = np.random.default_rng(seed).permutation(len(x_test))
  seed_ids, rest = perm[:s["seed_size"]], perm[s["seed_size"]:]
  oracle = lambda v: models.lenet_apply(params, v)

  def train():
    sub = robustness.train_substitute(
        key, oracle, models.subst_init, models.subst_apply, x_test[seed_ids],
        rounds=s["rounds"], epochs=s["epochs"], step_size=s["step_size"] * STD,
        learning_rate=s["learning_rate"], momentum=s["momentum"], batch_size=s["batch_size"])
    return {**_flatten(sub.params), "_size": np.array([h["size"] for h in sub.history]),
            "_agreement": np.array([h["agreement"] for h in sub.history])}

  flat = reporting.cached_arrays(os.path.join(workdir, "bb_substitute.npz"), train)
  sub = robustness.Substitute(models.subst_apply, _unflatten(
      {k: v for k, v in flat.items() if not k.startswith("_")}),
      tuple({"size": int(a), "agreement": float(b)}
            for a, b in zip(flat["_size"], flat["_agreement"])))
  _log(f"bb substitute: {sub.history}")
  pool_x = np.concatenate([x_train, x_test[rest]])
  pool_y = np.concatenate([y_train, y_test[rest]])
  src = np.concatenate([np.arange(len(x_train)), 60000 + rest])  # ids >= 60000: test
  sub_pred = lambda v: jnp.argmax(sub.logits(v), -1)
  sp = _batching.map_batches(jax.jit(sub_pred), [pool_x], batch_size=2000)
  ok = sp == pool_y  # their exclude_wrong_labeled on the substitute
  fn = jax.jit(lambda xb, yb: models.their_fgsm(sub.logits, xb, yb, s["eps"] * STD))
  raw = _batching.map_batches(fn, [pool_x[ok], pool_y[ok]], batch_size=1000)
  fooled_sub = _batching.map_batches(jax.jit(sub_pred), [raw], batch_size=2000) != pool_y[ok]
  fooled = fooled_sub & (predict(params, raw) != pool_y[ok])
  out = _validity(params, raw[fooled], pool_y[ok][fooled], src[ok][fooled])
  out["sub_agreement_test"] = np.float64(np.mean(
      _batching.map_batches(jax.jit(sub_pred), [x_test[rest]], batch_size=2000)
      == predict(params, x_test[rest])))
  out["sub_history_size"] = np.array([h["size"] for h in sub.history])
  out["sub_history_agreement"] = np.array([h["agreement"] for h in sub.history])
  return out


# ---------------------------------------------------------------------------
# Mutants and scores.


def operator_options(name, params, rate):
  """Our operators configured like theirs (model_mutation/mutationOperator.py):
  GF redraws a fraction of all parameters from N(mean, std) of their tensor;
  NAI and WS pick neurons over all conv and dense kernels; NS switches in
  layers of >= 10 neurons. Their NS switches ``ceil(rate n)`` neurons when
  ``rate n <= 2`` (one neuron: no change), so we exclude the layers where theirs
  changes nothing (``rate n <= 1``)."""
  if name == "GF":
    return {"layers": "all", "granularity": "weight", "mode": "replace"}
  if name in ("NAI", "WS"):
    return {"layers": "kernels"} if name == "WS" else {"layers": "kernels",
                                                      "granularity": "neuron"}
  def ns_layers(path, leaf):
    return (path.endswith("kernel") and np.ndim(leaf) >= 2 and np.shape(leaf)[-1] >= 10
            and np.shape(leaf)[-1] * rate > 1)
  return {"layers": ns_layers, "min_neurons": 10}


def make_mutants(key, params, x_test, y_test, op, n, rate, gate) -> dict:
  """``n`` gated mutants of ``op`` as flat arrays (leading mutant axis) with
  the gate's numbers under ``_``-prefixed keys."""
  accuracy_fn = mutation.accuracy_gate(models.lenet_apply, x_test, y_test, batch_size=2000)
  mutants, info = mutation.make_mutants(
      key, params, n, op, rate, accuracy_fn=accuracy_fn, min_relative_accuracy=gate,
      batch=50, max_draws=40 * n, **operator_options(op, params, rate))
  return {**_flatten(mutants), "_drawn": np.int64(info["drawn"]),
          "_accepted": np.int64(info["accepted"]),
          "_original_accuracy": np.float64(info["original_accuracy"]),
          "_accuracies": np.asarray(info["accuracies"])}


def their_sprt(changes, threshold, sigma, alpha, beta):
  """``detect/detector.py`` ``Detector.detect`` exactly: the ratio is computed
  *before* the current mutant's change is counted, and only checked after a
  change; undecided after all mutants: normal."""
  p1, p0 = threshold + sigma, threshold - sigma
  accept, deny = np.log((1 - beta) / alpha), np.log(beta / (1 - alpha))
  c = np.asarray(changes, bool)
  k = np.arange(1, c.shape[0] + 1)[:, None]
  before = np.cumsum(c, 0) - c
  pr = before * np.log(p1 / p0) + (k - before) * np.log((1 - p1) / (1 - p0))
  stop = c & ((pr >= accept) | (pr <= deny))
  decided = stop.any(0)
  first = np.where(decided, stop.argmax(0), c.shape[0] - 1)
  cols = np.arange(c.shape[1])
  return {"suspicious": decided & (pr[first, cols] >= accept), "mutants_used": first + 1}


def bayesian_uncertainty(key, params, x, passes, rate):
  @jax.jit
  def one(k, xb):
    h = models.lenet_features(params, xb, dropout_key=k, rate=rate)
    return jax.nn.softmax(models.lenet_head(params, h), -1)

  probs = np.stack([_batching.map_batches(lambda xb, i=i: one(jax.random.fold_in(key, i), xb),
                                          [x], batch_size=2000) for i in range(passes)])
  return probs.var(axis=0).mean(axis=1)  # their get_uncerts: var over passes, mean over classes


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--data-dir", default=os.environ.get("EXPLICABLE_JAX_DATA"))
  ap.add_argument("--workdir", default="runs/adversarial_detection")
  ap.add_argument("--out", default="experiments/results/adversarial_detection")
  ap.add_argument("--mutants", type=int, default=config.MUTANTS)
  ap.add_argument("--normal", type=int, default=config.NORMAL)
  ap.add_argument("--max-adv", type=int, default=config.MAX_ADV)
  ap.add_argument("--attacks", default=",".join(config.ATTACKS))
  ap.add_argument("--operators", default=",".join(config.OPERATORS))
  ap.add_argument("--cw-iterations", type=int, default=config.ATTACK_SETTINGS["cw"]["iterations"])
  ap.add_argument("--epochs", type=int, default=config.TRAIN["epochs"])
  ap.add_argument("--chunk", type=int, default=250)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--attacks-only", action="store_true",
                  help="stop after crafting the attacks (e.g. C&W in a second process)")
  ap.add_argument("--cache-from", default=CACHE_FROM,
                  help="committed caches (the LeNet, the C&W chunks) copied into --workdir "
                       "where missing, so a fresh checkout resumes the long attack; "
                       "'' for none")
  ap.add_argument("--lenet", default=None,
                  help="their trained LeNet as .npz (their_lenet.py); default: train our own")
  args = ap.parse_args()
  t_start = time.time()
  os.makedirs(args.workdir, exist_ok=True)
  seed_workdir(args.cache_from, args.workdir)
  os.makedirs(args.out, exist_ok=True)
  key = jax.random.key(args.seed)
  train = data.load("mnist", "train", data_dir=args.data_dir)
  test = data.load("mnist", "test", data_dir=args.data_dir)
  x_train = train.x.astype(np.float32) / 255.0
  x_test = test.x.astype(np.float32) / 255.0
  y_train, y_test = np.asarray(train.y, np.int64), np.asarray(test.y, np.int64)
  rng_seed = config.SEED

  # 1. the model
  settings = dict(config.TRAIN, epochs=args.epochs)
  if args.lenet:
    with np.load(args.lenet) as f:
      flat = {k: f[k] for k in f.files}
  else:
    flat = reporting.cached_arrays(os.path.join(args.workdir, "lenet.npz"), lambda: _flatten(
        train_lenet(jax.random.fold_in(key, 1), x_train, y_train, settings)))
  params = _unflatten(flat)
  pred_test = predict(params, x_test)
  test_acc = float(np.mean(pred_test == y_test))
  _log(f"LeNet test accuracy {test_acc:.4f}")

  # 2. the natural input sets
  correct = np.flatnonzero(pred_test == y_test)
  wrong = np.flatnonzero(pred_test != y_test)
  normal_ids = np.random.default_rng(rng_seed).permutation(correct)[:args.normal]
  sprt_normal_ids = np.random.default_rng(rng_seed + 1).permutation(len(x_test))[:args.normal]
  wl_ids = wrong[:config.MAX_ADV]

  # 3. the attacks
  s = config.ATTACK_SETTINGS
  adv = {}
  attacks = [a for a in args.attacks.split(",") if a]
  shuffled = np.random.default_rng(rng_seed + 2).permutation(correct)
  want = int(args.max_adv * 1.25)  # a margin for the random pick of max_adv
  timings = reporting.cached_json(os.path.join(args.workdir, "attack_times.json"), lambda: {})
  for name in attacks:
    t0 = time.time()
    if name == "fgsm":
      res = reporting.cached_arrays(os.path.join(args.workdir, "adv_fgsm.npz"),
                                    lambda: attack_fgsm(params, x_test, y_test, correct, s["fgsm"]))
    elif name == "jsma":
      res = _chunked(args.workdir, "jsma", shuffled,
                     attack_jsma(jax.random.fold_in(key, 2), params, x_test, y_test, s["jsma"]),
                     args.chunk, want)
    elif name == "cw":
      cw = dict(s["cw"], iterations=args.cw_iterations)
      res = _chunked(args.workdir, f"cw{args.cw_iterations}", correct[:cw["max_images"]],
                     attack_cw(params, x_test, y_test, cw), args.chunk, want)
    elif name == "deepfool":
      res = _chunked(args.workdir, "deepfool", shuffled[:s["deepfool"]["max_images"]],
                     attack_deepfool(params, x_test, y_test, s["deepfool"]), args.chunk * 4, want)
    elif name == "bb":
      res = reporting.cached_arrays(os.path.join(args.workdir, "adv_bb.npz"), lambda: attack_bb(
          jax.random.fold_in(key, 3), params, x_train, y_train, x_test, y_test, s["bb"],
          rng_seed, args.workdir))
    else:
      raise ValueError(f"unknown attack {name!r}")
    pick = np.random.default_rng(rng_seed + 3).permutation(len(res["true"]))[:args.max_adv]
    adv[name] = {k: (v[pick] if np.ndim(v) and len(v) == len(res["true"]) else v)
                 for k, v in res.items()}
    if "chunk_seconds" in res:  # the chunks' own compute time, whichever run made them
      timings[name] = float(res["chunk_seconds"][0])
    elif name not in timings:
      timings[name] = time.time() - t0
    _log(f"{name}: {len(res['true'])} valid adversarial images, {len(pick)} used")
  if args.attacks_only:
    return
  with open(os.path.join(args.workdir, "attack_times.json"), "w") as f:
    json.dump(timings, f)

  # 4. mutants: predictions on every input at once
  sets = {"normal": (x_test[normal_ids], pred_test[normal_ids]),
          "sprt_normal": (x_test[sprt_normal_ids], y_test[sprt_normal_ids]),
          "wl": (x_test[wl_ids], pred_test[wl_ids])}
  for name in attacks:
    sets[name] = (adv[name]["x"].astype(np.float32) / 255.0, adv[name]["adv"])
  names = list(sets)
  sizes = [len(sets[k][0]) for k in names]
  ops = [o for o in args.operators.split(",") if o]
  preds, gate_info = {}, {}
  for i, op in enumerate(ops):
    t0 = time.time()
    box = {}

    def mutants(op=op, i=i, box=box):
      if "m" not in box:
        box["m"] = reporting.cached_arrays(
            os.path.join(args.workdir, f"mutants_{op}_{args.mutants}.npz"),
            lambda: make_mutants(jax.random.fold_in(key, 100 + i), params, x_test, y_test, op,
                                 args.mutants, config.MUTATION_RATE, config.GATE))
      return box["m"]

    parts = []
    for k in names:
      digest = hashlib.sha1(np.ascontiguousarray(sets[k][0]).tobytes()).hexdigest()[:10]
      parts.append(reporting.cached_arrays(
          os.path.join(args.workdir, f"preds_{op}_{args.mutants}_{k}_{digest}.npz"),
          lambda k=k: {"preds": mutation.mutant_predictions(
              models.lenet_apply, _unflatten({a: v for a, v in mutants().items()
                                              if not a.startswith("_")}),
              sets[k][0], mutant_chunk=25, batch_size=1000).astype(np.int8)})["preds"])
    preds[op] = {"preds": np.concatenate(parts, axis=1)}
    m = mutants() if not os.path.exists(os.path.join(args.workdir, f"gate_{op}.json")) else None
    gate_info[op] = reporting.cached_json(
        os.path.join(args.workdir, f"gate_{op}.json"), lambda m=m: {
            "drawn": int(m["_drawn"]), "accepted": int(m["_accepted"]),
            "original_accuracy": float(m["_original_accuracy"]),
            "mean_mutant_accuracy": float(np.mean(m["_accuracies"]))})
    _log(f"{op}: {gate_info[op]} ({time.time() - t0:.0f}s)")

  # 5. scores
  offsets = np.cumsum([0, *sizes])
  part = {k: slice(offsets[j], offsets[j + 1]) for j, k in enumerate(names)}
  results = {"test_accuracy": test_acc, "sizes": dict(zip(names, sizes)),
             "lcr": {}, "auroc": {}, "sprt": {}, "sprt_theirs": {}, "gate": {},
             "mean_lcr": {}, "baselines": {}, "adv_counts": {}, "attack_seconds": timings,
             "settings": {"mutants": args.mutants, "rate": config.MUTATION_RATE,
                          "gate": config.GATE, "cw_iterations": args.cw_iterations,
                          "epochs": args.epochs, "seed": args.seed,
                          "lenet": "theirs" if args.lenet else "trained here"}}
  for name in attacks:
    results["adv_counts"][name] = int(len(adv[name]["true"]))
  if "bb" in adv:
    results["bb_substitute"] = {
        "agreement_test": float(adv["bb"]["sub_agreement_test"]),
        "sizes": adv["bb"]["sub_history_size"].tolist(),
        "agreement_train": adv["bb"]["sub_history_agreement"].tolist()}
  lcr_out = {}
  for op in ops:
    p = preds[op]["preds"]
    results["gate"][op] = gate_info[op]
    changes = {k: p[:, part[k]] != sets[k][1][None, :].astype(np.int8) for k in names}
    lcr = {k: changes[k].mean(0) for k in names}
    results["mean_lcr"][op] = {k: float(v.mean()) for k, v in lcr.items()}
    results["auroc"][op] = {a: metrics.auroc(np.concatenate([lcr[a], lcr["normal"]]),
                                             np.r_[np.ones(len(lcr[a])), np.zeros(len(lcr["normal"]))])
                            for a in attacks}
    nl = lcr["normal"]
    threshold = float(nl.mean() + config.SPRT["z99"] * nl.std() / np.sqrt(len(nl)))
    sigma = config.SPRT["relax"] * threshold
    results["sprt"][op] = {"threshold": threshold}
    results["sprt_theirs"][op] = {"threshold": threshold}
    for k in ["sprt_normal", "wl", *attacks]:
      ours = mutation.sprt_detect(changes[k], threshold, indifference=sigma,
                                  alpha=config.SPRT["alpha"], beta=config.SPRT["beta"])
      theirs = their_sprt(changes[k], threshold, sigma, config.SPRT["alpha"], config.SPRT["beta"])
      for store, r in ((results["sprt"][op], ours), (results["sprt_theirs"][op], theirs)):
        flagged = np.asarray(r["suspicious"], bool)
        acc = 1 - flagged.mean() if k == "sprt_normal" else flagged.mean()
        store[k] = {"accuracy": float(acc), "mutants_used": float(np.mean(r["mutants_used"]))}
    lcr_out[op] = lcr

  # Baselines on the same inputs (normal vs each attack; and vs wl).
  msp = {k: _batching.map_batches(lambda pr, xb: _probs_batch(pr, xb).max(-1), [sets[k][0]],
                                  batch_size=2000, args=(params,)) for k in names}
  feats = lambda xx: _batching.map_batches(
      jax.jit(lambda pr, xb: models.lenet_features(pr, xb)), [xx], batch_size=2000, args=(params,))
  kde = reporting.cached_arrays(os.path.join(args.workdir, "kde_scores.npz"),
                                lambda: _kde_scores(feats, x_train, y_train, sets, names, params))
  bu = reporting.cached_arrays(os.path.join(args.workdir, "bu_scores.npz"), lambda: {
      k: bayesian_uncertainty(jax.random.fold_in(key, 7), params, sets[k][0], config.BU_PASSES,
                              config.BU_RATE) for k in names})
  for a in [*attacks, "wl"]:
    pos = np.r_[np.ones(len(msp[a])), np.zeros(len(msp["normal"]))]
    results["baselines"][a] = {
        "msp": metrics.auroc(-np.concatenate([msp[a], msp["normal"]]), pos),
        "kde": metrics.auroc(-np.concatenate([kde[a], kde["normal"]]), pos),
        "bu": metrics.auroc(np.concatenate([bu[a], bu["normal"]]), pos),
        "kde_bu_lr_in_sample": _lr_in_sample(kde["normal"], kde[a], bu["normal"], bu[a])}
  # The per-input scores (committed beside results.json): the page's intervals
  # and paired bootstrap (LCR vs MSP on the same inputs) read them. Written
  # together at the end, so an interrupted run leaves no mix of old and new.
  for op, lcr in lcr_out.items():
    np.savez(os.path.join(args.out, f"lcr_{op}.npz"), **lcr)
  np.savez(os.path.join(args.out, "baseline_scores.npz"),
           **{f"{b}_{k}": np.asarray(v[k]) for b, v in (("msp", msp), ("kde", kde), ("bu", bu))
              for k in names})
  results["wall_seconds_this_run"] = time.time() - t_start
  results["date"] = datetime.date.today().isoformat()
  results["command"] = "python " + " ".join(sys.argv)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  _log(f"wrote {args.out}/results.json ({time.time() - t_start:.0f}s)")


def _kde_scores(feats, x_train, y_train, sets, names, params):
  """``baseline/kde.py`` ``get_kde_score``: log density of the last hidden
  layer under the Gaussian KDE (bandwidth 1.2) of the training images of the
  class the model predicts."""
  from sklearn.neighbors import KernelDensity
  h_train = feats(x_train)
  kdes = {c: KernelDensity(kernel="gaussian", bandwidth=config.KDE_BANDWIDTH).fit(
      h_train[y_train == c]) for c in range(10)}
  out = {}
  for k in names:
    h = feats(sets[k][0])
    pred = predict(params, sets[k][0])
    out[k] = np.zeros(len(h))
    for c in np.unique(pred):
      out[k][pred == c] = kdes[int(c)].score_samples(h[pred == c])
  return out


def _lr_in_sample(kde_n, kde_a, bu_n, bu_a):
  """``baseline/kde.py`` ``logistic_regression``: features standardised over
  normal + adversarial, ``LogisticRegressionCV`` fitted and scored on the
  same inputs (in-sample, as theirs)."""
  from sklearn.linear_model import LogisticRegressionCV
  from sklearn.preprocessing import scale
  dens = scale(np.concatenate([kde_n, kde_a]))
  unc = scale(np.concatenate([bu_n, bu_a]))
  values = np.stack([dens, unc], 1)
  labels = np.r_[np.zeros(len(kde_n)), np.ones(len(kde_a))]
  lr = LogisticRegressionCV().fit(values, labels)
  return metrics.auroc(lr.predict_proba(values)[:, 1], labels)


if __name__ == "__main__":
  main()
