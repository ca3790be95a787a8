"""The ``explicable-jax`` command: ``demo``, ``quickstart``, ``train``, ``evaluate``,
``detect``, ``audit``, ``evaluate-attributions``.

Run ``explicable-jax COMMAND --help`` for every option.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from explicable_jax import training

__all__ = [
    "DESCRIPTION", "build_parser", "cmd_audit", "cmd_demo", "cmd_detect", "cmd_evaluate",
    "cmd_evaluate_attributions", "cmd_quickstart", "cmd_train", "main",
]

DESCRIPTION = """\
explicable_jax: classifiers whose mistakes humans can understand.

commands:
  demo        the audit below on an MLP trained on built-in data (one HTML report)
  quickstart  train a small model on the built-in 8x8 digits and print what it measured
  train       train a model of the zoo on a dataset of the registry (checkpoints, resume)
  evaluate    evaluate a trained model (a train workdir or an exported model folder)
  detect      error scores of a trained model (MSP, entropy, ..., Mahalanobis, LCR,
              conductance) on the test half: one table, ROC and risk-coverage plots
  audit       examine a trained model: explicable mistakes, error detection, reliance on
              annotated features, insecurities, robustness, faithful explanations; one
              HTML report and a JSON
  evaluate-attributions
              are a model's explanations right? every attribution method x every
              metric (sanity checks, deletion, infidelity, ...) with intervals over
              images, as JSON and Markdown
"""


class _Parser(argparse.ArgumentParser):
  """An argparse parser whose errors are one line on stderr (exit status 2)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")



class _OnOrOff(argparse.BooleanOptionalAction):
  """``--flag`` / ``--no-flag``, refusing both in one command (argparse's
  own action lets the last one win, so a contradiction would pass unseen)."""

  def __call__(self, parser, namespace, values, option_string=None):
    seen = getattr(namespace, "_given_" + self.dest, None)
    if seen is not None and seen != option_string:
      parser.error(f"{seen} and {option_string} contradict each other: give one.")
    setattr(namespace, "_given_" + self.dest, option_string)
    super().__call__(parser, namespace, values, option_string)

def _folder(text: str) -> str:
  """An argparse type: a folder to write into (``--out``, ``--workdir``), not an
  existing file (:func:`explicable_jax._paths.check_folder`)."""
  from explicable_jax import _paths
  try:
    _paths.check_folder("path", text)
  except NotADirectoryError as e:
    raise argparse.ArgumentTypeError(str(e).rstrip(".")) from None
  return text


def _seed(text: str) -> int:
  """An argparse type: a seed, an integer >= 0
  (:func:`explicable_jax._validation.check_seed`)."""
  from explicable_jax import _validation
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"seed must be a non-negative integer; got {text!r}") \
        from None
  try:
    _validation.check_seed("seed", value)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e).rstrip(".")) from None
  return value


def _json_dict(text: str) -> dict:
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise argparse.ArgumentTypeError(
        f"expected a JSON object such as '{{\"depth\": 29}}'; got {text!r} ({e.msg})")
  if not isinstance(value, dict):
    raise argparse.ArgumentTypeError(f"expected a JSON object; got {text!r}")
  return value


def _add_train_args(p: argparse.ArgumentParser) -> None:
  from explicable_jax import data, losses, models, training
  d = training.TrainConfig()
  p.add_argument("--dataset", default=d.dataset,
                 help=f"dataset name, one of: {', '.join(sorted(data.DATASETS))} "
                      f"(default: %(default)s)")
  p.add_argument("--model", default=d.model,
                 help=f"model name, one of: {', '.join(sorted(models.MODELS))} "
                      f"(default: %(default)s)")
  p.add_argument("--model-kwargs", type=_json_dict, default={},
                 help="JSON object of model constructor options, e.g. "
                      "'{\"hidden\": [50, 30]}' or '{\"depth\": 29}'")
  p.add_argument("--loss", default=d.loss,
                 help=f"training loss, one of: {', '.join(sorted(losses.LOSSES))} "
                      f"(default: %(default)s)")
  p.add_argument("--loss-kwargs", type=_json_dict, default={},
                 help="JSON object of loss options, e.g. '{\"alpha\": 0.1}'")
  p.add_argument("--epochs", type=int, default=d.epochs,
                 help="passes over the training set (default: %(default)s)")
  p.add_argument("--batch-size", type=int, default=d.batch_size,
                 help="global batch size, split over all devices (default: %(default)s)")
  p.add_argument("--optimizer", default=d.optimizer, choices=training.OPTIMIZERS,
                 help="optimiser (default: %(default)s; sgd uses Nesterov momentum)")
  p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float,
                 default=d.learning_rate,
                 help="peak learning rate (default: %(default)s)")
  p.add_argument("--schedule", default=d.schedule, choices=training.SCHEDULES,
                 help="learning-rate schedule: constant, cosine (warm-up then cosine "
                      "decay), one_cycle, or step (x0.1 at 50%% and 75%%) "
                      "(default: %(default)s)")
  p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                 help="linear warm-up length for the cosine schedule (default: %(default)s)")
  p.add_argument("--momentum", type=float, default=d.momentum,
                 help="SGD momentum (optimizer sgd only; default: %(default)s)")
  p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                 help="L2 weight decay (default: %(default)s)")
  p.add_argument("--augment", default=d.augment, choices=("auto", "none", "crop_flip"),
                 help="data augmentation; auto = random crop + flip for 32x32 colour "
                      "images (default: %(default)s)")
  p.add_argument("--validation", default=d.validation, choices=("test", "paper", "none"),
                 help="what to evaluate after each epoch: the test set, the paper "
                      "split's validation half (CIFAR-10 test = 5000 val + 5000 test), "
                      "or nothing (default: %(default)s)")
  p.add_argument("--seed", type=_seed, default=d.seed,
                 help="seed of the weights, the data order and augmentation (default: %(default)s)")
  p.add_argument("--data-dir", default=None,
                 help="local data folder used when tfds has no prepared copy "
                      "(default: $EXPLICABLE_JAX_DATA)")
  p.add_argument("--init-from", default=None,
                 help="fine-tune: start from the weights of a trained model (a train "
                      "--workdir or a save_model folder) with a fresh optimiser")
  p.add_argument("--compute-dtype", default=d.compute_dtype, choices=training.COMPUTE_DTYPES,
                 help="dtype of the forward and backward passes: bfloat16 is mixed "
                      "precision (float32 weights and optimiser) (default: %(default)s)")
  p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                 help="steps between checkpoints (default: %(default)s)")
  p.add_argument("--log-every", type=int, default=d.log_every,
                 help="steps between lines of metrics.jsonl (default: %(default)s)")


def _add_model_and_out(p: argparse.ArgumentParser, out_help: str) -> None:
  """``--model`` and ``--out`` (detect, audit); their other options come from
  their config's fields (:mod:`explicable_jax.app._options`)."""
  p.add_argument("--model", required=True,
                 help="a train --workdir, or a folder written by models.save")
  p.add_argument("--out", required=True, type=_folder, help=out_help)


def _config_from_args(args) -> training.TrainConfig:
  from explicable_jax import training
  fields = {f.name for f in dataclasses.fields(training.TrainConfig)}
  return training.TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def cmd_train(args) -> int:
  from explicable_jax import training
  config = _config_from_args(args)
  config.validate()
  if args.allow_changes and not args.resume:
    raise ValueError("--allow-changes continues a run with other settings, and --no-resume "
                     "refuses to continue any: give one of them.")
  resume = "allow_changes" if (args.resume and args.allow_changes) else args.resume
  try:
    result = training.train_and_evaluate(config, args.workdir, resume=resume,
                                         progress=not args.no_progress)
  except training.ResumeMismatchError as e:  # the CLI spells the option, not the keyword
    raise training.ResumeMismatchError(
        str(e).replace("pass resume='allow_changes'", "add --allow-changes")) from None
  print(json.dumps(result, indent=2))
  if args.workdir:
    print(f"model exported to {os.path.join(args.workdir, 'model')}")
  return 0


def cmd_evaluate(args) -> int:
  from explicable_jax import data, models, training
  path = args.model
  if os.path.exists(os.path.join(path, "model")):
    path = os.path.join(path, "model")
  if args.seed != 0 and not args.half:
    raise ValueError(f"--seed {args.seed} sets the paper split's halves, read only with --half: "
                     "add --half test (or validation), or drop --seed.")
  if args.half and args.split != "test":
    raise ValueError(f"--half {args.half} takes a half of the test set, so --split must be "
                     f"test; got --split {args.split}: drop --half to evaluate the "
                     f"{args.split} split, or --split to evaluate the {args.half} half.")
  clf, meta = models.load(path), models.read_meta(path)
  dataset = args.dataset or meta.get("dataset")
  if dataset is None:
    raise ValueError(f"the model folder {path!r} does not record its dataset (it was saved "
                     "by models.save, not by explicable-jax train): pass --dataset NAME.")
  ds = data.load(dataset, args.split, data_dir=args.data_dir)
  if args.half:
    halves = data.paper_split(ds.name, data_dir=args.data_dir, seed=args.seed)
    ds = halves["validation" if args.half == "validation" else "test"]
  result = training.evaluate(clf, ds)
  result.update(dataset=ds.name, split=args.split, half=args.half, note=ds.note)
  print(json.dumps(result, indent=2))
  return 0


def cmd_detect(args) -> int:
  from explicable_jax.app import _options, detect
  config = _options.from_args(detect.DetectConfig, args)
  detect.run_detect(args.model, args.out, config, progress=not args.no_progress)
  print(f"scores, table.md, results.json, roc.png and risk_coverage.png written to {args.out}")
  return 0


def cmd_audit(args) -> int:
  import shlex
  from explicable_jax.app import _options, audit
  argv = sys.argv[1:] if args.argv is None else args.argv
  config = _options.from_args(audit.AuditConfig, args)
  res = audit.audit(args.model, args.out, config, progress=not args.no_progress,
                    command=shlex.join(["explicable-jax", *argv]))
  for q, a in res.summary.items():
    print(f"{q} {a}")
  print(f"report written to {res.report} ({res.wall_seconds:.0f} s); numbers in {res.results}")
  return 0


def cmd_evaluate_attributions(args) -> int:
  import shlex
  from explicable_jax.app import _options, attributions
  argv = sys.argv[1:] if args.argv is None else args.argv
  config = _options.from_args(attributions.AttributionEvaluationConfig, args)
  res = attributions.evaluate_attributions(args.model, args.out, config,
                                           progress=not args.no_progress,
                                           command=shlex.join(["explicable-jax", *argv]))
  print(attributions.markdown_table(res), end="")
  print(f"results.json and table.md written to {args.out} ({res['wall_seconds']:.0f} s)")
  return 0


def cmd_quickstart(args) -> int:
  from explicable_jax import training
  t0 = time.time()
  print("explicable_jax quickstart: a small CNN on scikit-learn's built-in 8x8 digits")
  config = training.TrainConfig(dataset="digits", model="cnn",
                                model_kwargs={"widths": [16, 32], "dense": 64},
                                epochs=args.epochs, batch_size=64,
                                optimizer="adam", learning_rate=3e-3,
                                schedule="cosine", weight_decay=0.0, seed=args.seed)
  result = training.train_and_evaluate(config, args.workdir, resume=False,
                                       progress=not args.no_progress)
  print(f"train accuracy {result['train']['accuracy']:.4f}, "
        f"test accuracy {result['test']['accuracy']:.4f} on "
        f"{result['test']['count']} held-out digits "
        f"({result['num_params']} parameters, {time.time() - t0:.1f}s)")
  return 0


def cmd_demo(args) -> int:
  from explicable_jax.app import demo
  print("explicable_jax demo: an MLP trained on built-in Decoy digits, then "
        "`explicable-jax audit` of it (mistakes, error detection, reliance, hesitation, "
        "robustness, faithfulness of its explanations)")
  path = demo.run_demo(args.out, quick=args.quick, seed=args.seed,
                       progress=not args.no_progress)
  print(f"report written to {path}")
  print(f"open it with: python -m webbrowser file://{path}")
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(
      prog="explicable-jax", description=DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

  dm = sub.add_parser("demo", help="the audit of an MLP trained on built-in data")
  dm.add_argument("--out", default="explicable_jax_demo", type=_folder,
                  help="folder for report.html (default: %(default)s)")
  dm.add_argument("--quick", action="store_true",
                  help="a few epochs only: checks the pipeline, numbers are not meaningful")
  dm.add_argument("--seed", type=_seed, default=0, help="seed (default: %(default)s)")
  dm.add_argument("--no-progress", action="store_true", help="hide progress bars")
  dm.set_defaults(func=cmd_demo)

  q = sub.add_parser("quickstart", help="train on built-in digits and print results")
  q.add_argument("--epochs", type=int, default=15, help="epochs (default: %(default)s)")
  q.add_argument("--seed", type=_seed, default=0, help="seed (default: %(default)s)")
  q.add_argument("--workdir", default=None, type=_folder,
                 help="folder for checkpoints, metrics.jsonl and the exported model")
  q.add_argument("--no-progress", action="store_true", help="hide progress bars")
  q.set_defaults(func=cmd_quickstart)

  t = sub.add_parser("train", help="train a model",
                     description="Train a model of the zoo. Checkpoints and "
                     "metrics.jsonl go to --workdir; rerunning the same command "
                     "resumes from the newest checkpoint.")
  _add_train_args(t)
  t.add_argument("--workdir", required=True, type=_folder,
                 help="folder for checkpoints, metrics.jsonl, config.json, "
                      "result.json and the exported model")
  t.add_argument("--resume", action=_OnOrOff, default=True,
                 help="continue from the newest checkpoint in --workdir, if it holds the "
                      "same run (its run.json); --no-resume refuses a workdir that holds "
                      "checkpoints (default: on)")
  t.add_argument("--allow-changes", action="store_true",
                 help="resume the run in --workdir even where its settings differ from "
                      "this command's (they are listed as a warning)")
  t.add_argument("--no-progress", action="store_true",
                 help="hide the progress bar (epoch lines are still printed)")
  t.set_defaults(func=cmd_train)

  e = sub.add_parser("evaluate", help="evaluate a trained model")
  e.add_argument("model", help="a train --workdir, or a folder written by save_model")
  e.add_argument("--dataset", default=None,
                 help="dataset name (default: the one the model was trained on)")
  e.add_argument("--split", default="test", choices=("train", "test"),
                 help="split (default: %(default)s)")
  e.add_argument("--half", default=None, choices=("validation", "test"),
                 help="for the paper split: evaluate on the validation or test half "
                      "of the test set (with --split test only)")
  e.add_argument("--seed", type=_seed, default=0, help="seed of the paper split")
  e.add_argument("--data-dir", default=None, help="local data folder")
  e.set_defaults(func=cmd_evaluate)

  from explicable_jax.app import _options, audit, detect
  d = sub.add_parser("detect", help="error-detection scores and table of a trained model",
                     description=detect.__doc__.split("\n\n")[0] + " Thresholds are "
                     "chosen on the validation half, the table is on the test half; a "
                     "rerun of the same command resumes from the caches in --out.")
  _add_model_and_out(d, "folder for the outputs and caches")
  _options.add_arguments(d, detect.DetectConfig)
  d.add_argument("--no-progress", action="store_true", help="print nothing but the result")
  d.set_defaults(func=cmd_detect)

  a = sub.add_parser("audit", help="examine a trained model; one HTML report",
                     description=audit.__doc__.split("\n\n")[0] + " Sections: "
                     + ", ".join(audit.section_names()) + ". A rerun of the same command "
                     "resumes from the caches in --out.")
  _add_model_and_out(a, "folder for the report, results and caches")
  _options.add_arguments(a, audit.AuditConfig)
  a.add_argument("--no-progress", action="store_true", help="hide progress bars")
  a.set_defaults(func=cmd_audit, argv=None)

  from explicable_jax.app import attributions
  ea = sub.add_parser("evaluate-attributions",
                      help="score a model's attribution methods (sanity, faithfulness)",
                      description=attributions.__doc__.split("\n\n")[0] + " A rerun of "
                      "the same command resumes from the per-method caches in --out.")
  _add_model_and_out(ea, "folder for results.json, table.md and the caches")
  _options.add_arguments(ea, attributions.AttributionEvaluationConfig)
  ea.add_argument("--no-progress", action="store_true", help="print nothing but the table")
  ea.set_defaults(func=cmd_evaluate_attributions, argv=None)
  return parser


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  if argv is not None and getattr(args, "command", None) in ("audit",
                                                             "evaluate-attributions"):
    args.argv = list(argv)
  if not getattr(args, "func", None):
    parser.print_help()
    return 2
  from explicable_jax.similarity import WordNetNotFoundError
  from explicable_jax.training import NonFiniteLossError, TrainingInterrupted
  try:
    return args.func(args)
  except TrainingInterrupted as e:
    print(f"explicable-jax {args.command}: {e}", file=sys.stderr)
    return 130
  except KeyboardInterrupt:
    print(f"explicable-jax {args.command}: interrupted; rerun the same command to resume "
          "from its caches", file=sys.stderr)
    return 130
  except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, NonFiniteLossError,
          WordNetNotFoundError) as e:
    # Expected errors: one line, exit status 2. EXPLICABLE_JAX_DEBUG=1 shows the traceback.
    if os.environ.get("EXPLICABLE_JAX_DEBUG"):
      raise
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"explicable-jax {args.command}: error: {first}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
