"""A run folder is resumed only by the run that wrote it, and model state of
any pytree type (dropout's typed PRNG keys included) checkpoints, restores,
saves and loads (issue 32, items 3 and 4)."""
from __future__ import annotations

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from explicable_jax import data, losses, models, training


@pytest.fixture(scope="module")
def digits():
  return data.load("digits", "train").take(np.arange(512))


class DropoutNet(nnx.Module):
  def __init__(self, rngs):
    self.hidden = nnx.Linear(64, 16, rngs=rngs)
    self.drop = nnx.Dropout(0.5, rngs=rngs)  # holds its own RNG stream (typed keys)
    self.out = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(self.drop(jax.nn.relu(self.hidden(x.reshape(x.shape[0], -1)))))


class LinenDropoutNet(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    x = nn.Dropout(0.5, deterministic=not train)(x)
    return nn.Dense(10)(x)


def _nnx(ds):
  return models.from_nnx(DropoutNet(nnx.Rngs(0)), input_shape=ds.input_shape, num_classes=10)


def _linen(ds):
  module = LinenDropoutNet()
  variables = module.init(jax.random.key(0), jnp.zeros((1, *ds.input_shape)))
  return models.from_linen(module, variables, input_shape=ds.input_shape, num_classes=10)


def _fit(clf, ds, workdir, *, epochs, batch_size=128, opt=None, **kw):
  opt = opt or optax.adam(1e-2)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  step = training.make_train_step(losses.cross_entropy_loss, opt)
  return training.fit(state, ds, train_step=step, epochs=epochs, batch_size=batch_size,
                      progress=False, workdir=str(workdir), **kw)


@pytest.mark.parametrize("make", [_nnx, _linen], ids=["nnx", "linen"])
def test_dropout_models_resume_and_round_trip(make, digits, tmp_path):
  """Two epochs in two calls end where two epochs in one call end (dropout
  masks included: they are drawn from fold_in(key, step)), and the model
  saves and loads."""
  resumed, _ = _fit(make(digits), digits, tmp_path / "a", epochs=1)
  resumed, _ = _fit(make(digits), digits, tmp_path / "a", epochs=2)
  straight, _ = _fit(make(digits), digits, tmp_path / "b", epochs=2)
  assert int(resumed.step) == int(straight.step) == 2 * (512 // 128)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               resumed.params, straight.params)
  assert json.loads((tmp_path / "a" / "run.json").read_text())["batch_size"] == 128
  models.save(tmp_path / "m", resumed.classifier)
  back = models.load(tmp_path / "m", like=make(digits))
  x = digits.x[:8]
  np.testing.assert_allclose(back.logits(x), resumed.classifier.logits(x), rtol=1e-6)


def test_a_resume_that_differs_is_refused_naming_each_difference(digits, tmp_path):
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=digits.input_shape,
                          num_classes=10, hidden=(8,))
  _fit(clf, digits, tmp_path, epochs=1)
  with pytest.raises(training.ResumeMismatchError, match=r"batch_size: 128 .* 64 now"):
    _fit(clf, digits, tmp_path, epochs=2, batch_size=64)
  with pytest.raises(training.ResumeMismatchError, match=r"data.examples: 512 .* 256 now"):
    _fit(clf, digits.take(np.arange(256)), tmp_path, epochs=2)
  other = models.classifier(jax.random.key(0), "mlp", input_shape=digits.input_shape,
                            num_classes=10, hidden=(5,))
  with pytest.raises(training.ResumeMismatchError, match=r"model\.params"):
    _fit(other, digits, tmp_path, epochs=2)
  with pytest.raises(training.ResumeMismatchError, match=r"optimizer_state"):
    _fit(clf, digits, tmp_path, epochs=2, opt=optax.sgd(0.1))
  with pytest.raises(training.ResumeMismatchError, match=r"run_info.learning_rate"):
    _fit(clf, digits, tmp_path, epochs=2, run_info={"learning_rate": 0.1})
  # Nothing was trained by the refused calls; the right one resumes.
  state, _ = _fit(clf, digits, tmp_path, epochs=2)
  assert int(state.step) == 8
  # Explicitly allowed: continues, with a warning listing the change.
  with pytest.warns(UserWarning, match="batch_size"):
    state, _ = _fit(clf, digits, tmp_path, epochs=3, batch_size=64, resume="allow_changes")
  # A fresh run into a folder that holds one is refused too.
  with pytest.raises(ValueError, match="already holds checkpoints"):
    _fit(clf, digits, tmp_path, epochs=1, resume=False)


def test_a_folder_without_a_run_record_is_checked_against_its_checkpoint(digits, tmp_path):
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=digits.input_shape,
                          num_classes=10, hidden=(8,))
  _fit(clf, digits, tmp_path, epochs=1)
  os.remove(tmp_path / "run.json")  # a folder written before run records
  other = models.classifier(jax.random.key(0), "mlp", input_shape=digits.input_shape,
                            num_classes=10, hidden=(5,))
  with pytest.raises(ValueError, match=r"holds another model.*\(64, 8\).*\(64, 5\)"):
    _fit(other, digits, tmp_path, epochs=2)
  state, _ = _fit(clf, digits, tmp_path, epochs=2)  # the same model resumes
  assert int(state.step) == 8 and (tmp_path / "run.json").exists()


def test_fit_settings_are_checked_once_in_fit_config(digits):
  for bad, match in [({"checkpoint_every": -1}, "checkpoint_every"),
                     ({"epochs": 0}, "epochs"), ({"resume": "yes"}, "resume"),
                     ({"log_every": 2.5}, "log_every")]:
    with pytest.raises(ValueError, match=match):
      training.FitConfig(**{"epochs": 1, "batch_size": 8, **bad})
  with pytest.raises(TypeError, match="unknown setting.*epoch_count"):
    training.fit(None, digits, train_step=None, epochs=1, batch_size=8, epoch_count=3)
  with pytest.raises(TypeError, match=r"\(x, y\) tuple"):
    training.fit(training.create_train_state(
        jax.random.key(0), models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1),
                                             num_classes=10), optax.sgd(0.1)),
        (digits.x, digits.y), train_step=lambda s, b: (s, {}), epochs=1, batch_size=8)
  with pytest.raises(ValueError, match="warmup_epochs must be less than epochs"):
    training.TrainConfig(epochs=1, warmup_epochs=5).validate()


def test_a_truncated_weights_file_is_reported_as_damaged_not_as_another_model(tmp_path):
  import glob
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1), num_classes=10,
                          hidden=(8,))
  models.save(tmp_path / "m", clf)
  other = models.classifier(jax.random.key(0), "mlp", input_shape=(8, 8, 1), num_classes=10,
                            hidden=(5,))
  with pytest.raises(ValueError, match=r"do not fit.*\(64, 8\).*\(64, 5\)"):
    models.load(tmp_path / "m", like=other)
  big = [f for f in glob.glob(str(tmp_path / "m" / "weights" / "**"), recursive=True)
         if os.path.isfile(f) and os.path.getsize(f) > 2000]
  assert big
  for f in big:
    content = open(f, "rb").read()
    open(f, "wb").write(content[:len(content) // 2])
  with pytest.raises(ValueError, match="damaged or truncated"):
    models.load(tmp_path / "m")


def test_the_train_command_refuses_a_resume_that_differs(tmp_path, capsys):
  from explicable_jax.app import cli
  args = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
          "--workdir", str(tmp_path), "--no-progress"]
  assert cli.main(args + ["--batch-size", "128"]) == 0
  capsys.readouterr()
  assert cli.main(args + ["--batch-size", "64", "--epochs", "2"]) == 2
  err = capsys.readouterr().err
  assert "batch_size: 128 in the workdir's run, 64 now" in err and "Traceback" not in err
  assert cli.main(args + ["--lr", "0.05", "--batch-size", "128", "--epochs", "2"]) == 2
  assert "run_info.learning_rate" in capsys.readouterr().err
  with pytest.warns(UserWarning, match="learning_rate"):
    assert cli.main(args + ["--lr", "0.05", "--batch-size", "128", "--epochs", "2",
                            "--allow-changes"]) == 0
  assert cli.main(["train", "--epochs", "1", "--warmup-epochs", "5",
                   "--workdir", str(tmp_path / "w")]) == 2
  assert "warmup_epochs must be less than epochs" in capsys.readouterr().err


def test_a_resume_with_another_learning_rate_or_schedule_is_refused(digits, tmp_path):
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=digits.input_shape,
                          num_classes=10, hidden=(8,))
  _fit(clf, digits, tmp_path, epochs=1, opt=optax.adam(1e-2))
  record = json.loads((tmp_path / "run.json").read_text())
  assert record["optimizer"]["1/scale.step_size"] == -1e-2
  assert record["optimizer"]["0/scale_by_adam.b1"] == 0.9
  # Same optimiser state layout, another learning rate: only the fingerprint tells.
  with pytest.raises(training.ResumeMismatchError,
                     match=r"optimizer\.1/scale\.step_size: -0\.01 in the workdir's run, "
                           r"-0\.001 now"):
    _fit(clf, digits, tmp_path, epochs=2, opt=optax.adam(1e-3))
  with pytest.raises(training.ResumeMismatchError, match=r"optimizer\.0/scale_by_adam\.b1"):
    _fit(clf, digits, tmp_path, epochs=2, opt=optax.adam(1e-2, b1=0.5))
  with pytest.warns(UserWarning, match=r"step_size"):
    state, _ = _fit(clf, digits, tmp_path, epochs=2, opt=optax.adam(1e-3),
                    resume="allow_changes")
  assert int(state.step) == 8
  # Schedules are compared by their values at a few steps.
  sched = lambda peak: optax.sgd(optax.cosine_decay_schedule(peak, 100), momentum=0.9)
  _fit(clf, digits, tmp_path / "s", epochs=1, opt=sched(0.1))
  with pytest.raises(training.ResumeMismatchError, match=r"step_size_fn@steps"):
    _fit(clf, digits, tmp_path / "s", epochs=2, opt=sched(0.2))
  assert int(_fit(clf, digits, tmp_path / "s", epochs=2, opt=sched(0.1))[0].step) == 8


def test_a_run_recorded_before_the_optimiser_fingerprint_still_resumes(digits, tmp_path):
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=digits.input_shape,
                          num_classes=10, hidden=(8,))
  _fit(clf, digits, tmp_path, epochs=1)
  record = json.loads((tmp_path / "run.json").read_text())
  del record["optimizer"]  # as an earlier version wrote it
  (tmp_path / "run.json").write_text(json.dumps(record))
  state, _ = _fit(clf, digits, tmp_path, epochs=2)
  assert int(state.step) == 8


def test_the_fingerprint_tells_optimisers_apart_and_matches_equal_ones():
  fp = training.resume.optimizer_fingerprint
  assert fp(optax.adam(1e-3)) == fp(optax.adam(1e-3))
  assert fp(optax.adam(1e-3)) != fp(optax.adam(2e-3))
  assert fp(optax.sgd(0.1, momentum=0.9)) != fp(optax.sgd(0.1, momentum=0.8))
  injected = fp(optax.inject_hyperparams(optax.adam)(learning_rate=1e-3))
  assert injected["inject_hyperparams.numeric_hps.learning_rate"] == 1e-3
  assert fp("not an optimiser") is None
  json.dumps(fp(optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 50))))


def test_a_resume_from_other_initial_weights_or_another_key_is_refused(digits, tmp_path):
  """The run starts from given weights and a training key: resuming its folder
  with another initialisation (a pretrained start, another seed) or another
  key would silently continue the old run, so it is refused naming each; the
  same start resumes, a state past step 0 (the run's own returned state)
  continues, and 'allow_changes' accepts the change with a warning."""
  def clf(seed):
    return models.classifier(jax.random.key(seed), "mlp", input_shape=digits.input_shape,
                             num_classes=10, hidden=(8,))
  opt = optax.sgd(0.1)
  step = training.make_train_step(losses.cross_entropy_loss, opt)

  def run(seed, key, epochs, **kw):
    state = training.create_train_state(jax.random.key(key), clf(seed), opt)
    return training.fit(state, digits, train_step=step, epochs=epochs, batch_size=128,
                        progress=False, workdir=str(tmp_path), **kw)[0]
  first = run(0, 1, 1)
  assert int(first.step) == 4
  with pytest.raises(training.ResumeMismatchError, match=r"initial weights \(initial_state.params"):
    run(9, 1, 2)
  with pytest.raises(training.ResumeMismatchError, match=r"training key \(initial_state.key"):
    run(0, 5, 2)
  assert int(run(0, 1, 2).step) == 8  # the same start resumes
  continued = training.fit(first, digits, train_step=step, epochs=3, batch_size=128,
                           progress=False, workdir=str(tmp_path))[0]
  assert int(continued.step) == 12
  with pytest.warns(UserWarning, match=r"initial weights"):
    assert int(run(9, 1, 4, resume="allow_changes").step) == 16
