import json
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from explicable_jax import data, losses, models, training
from helpers import small_setup as _small_setup

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_train_step_lowers_the_loss_and_matches_optax_cross_entropy(key):
  _, train, state, step = _small_setup()
  batch = next(data.batches(train, 64))
  logits, _ = state.apply(jnp.asarray(batch["x"]))
  expected = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
  jstep = jax.jit(step)
  state1, m = jstep(state, batch)
  np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)
  for _ in range(30):
    state1, m2 = jstep(state1, batch)
  assert float(m2["loss"]) < 0.5 * float(m["loss"])
  assert int(state1.step) == 31


def test_padding_rows_do_not_change_the_update():
  _, train, state, step = _small_setup()
  full = next(data.batches(train.take(slice(0, 40)), 40))
  padded = next(data.batches(train.take(slice(0, 40)), 64))
  assert padded["mask"].sum() == 40
  # Without batch norm or dropout, padding must be invisible to the update.
  a, ma = jax.jit(step)(state, full)
  b, mb = jax.jit(step)(state, padded)
  np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-6)
  chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-7)


def test_loss_with_model_fn_receives_the_network():
  """A loss that declares model_fn gets f(x) -> logits, for input gradients."""

  def penalty(model_fn, x):
    grads = jax.vmap(jax.grad(lambda xi: jax.nn.logsumexp(model_fn(xi[None])[0])))(x)
    return jnp.sum(grads ** 2, axis=(1, 2, 3))

  def penalised(logits, batch, params, model_fn):
    return losses.cross_entropy(logits, batch["y"]) + penalty(model_fn, batch["x"])

  _, train, state, _ = _small_setup()
  opt = optax.sgd(0.01)
  state = training.create_train_state(jax.random.key(0), state.model(), opt)
  step = training.make_train_step(penalised, opt)
  batch = next(data.batches(train, 16))
  _, m = jax.jit(step)(state, batch)
  x = jnp.asarray(batch["x"])
  model_fn = lambda xx: state.apply(xx)[0]
  pen = jax.jit(lambda xx: penalty(model_fn, xx))(x)
  expected = losses.cross_entropy(model_fn(x), batch["y"]) + pen
  np.testing.assert_allclose(m["loss"], expected.mean(), rtol=1e-5)
  assert float(pen.mean()) > 0


def test_evaluate_counts_every_example_once():
  _, train, state, _ = _small_setup()
  test = data.load("digits", "test")
  res = training.evaluate(state, test, batch_size=100)
  assert res["count"] == len(test)
  logits = training.predict(state, test.x, batch_size=100)
  acc = float(np.mean(np.argmax(logits, -1) == test.y))
  assert abs(res["accuracy"] - acc) < 1e-9


def test_schedules_have_their_shapes():
  one = training.make_schedule("one_cycle", 0.2, 1000)
  assert float(one(300)) == pytest.approx(0.2, rel=1e-3)
  assert float(one(0)) < 0.02 and float(one(1000)) < 1e-4
  cos = training.make_schedule("cosine", 0.1, 100, warmup_steps=10)
  assert float(cos(0)) == 0.0 and float(cos(10)) == pytest.approx(0.1)
  step = training.make_schedule("step", 0.1, 100)
  assert [round(float(step(t)), 6) for t in (10, 60, 90)] == [0.1, 0.01, 0.001]


def test_sgd_weight_decay_matches_torch_convention():
  # torch.optim.SGD(weight_decay=wd, momentum=0): w <- w - lr * (g + wd * w).
  opt = training.make_optimizer("sgd", optax.constant_schedule(0.1), momentum=0.0,
                                weight_decay=0.5)
  w = {"w": jnp.array([2.0])}
  upd, _ = opt.update({"w": jnp.array([1.0])}, opt.init(w), w)
  np.testing.assert_allclose(optax.apply_updates(w, upd)["w"], [2.0 - 0.1 * (1.0 + 1.0)])


@pytest.mark.parametrize("field,value,match", [
    ("learning_rate", 0.0, "learning_rate must be a positive number"),
    ("learning_rate", -1e-3, "learning_rate must be a positive number"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("epochs", 0, "epochs must be a positive integer"),
    ("dataset", "imagenet", "valid datasets are"),
    ("model", "resnet21", "valid models are"),
    ("loss", "hinge", "valid losses are"),
    ("schedule", "linear", "schedule must be one of"),
])
def test_bad_config_values_get_one_sentence_errors(field, value, match):
  with pytest.raises(ValueError, match=match):  # when built, not at first use
    training.TrainConfig(**{field: value})
  cfg = training.TrainConfig()
  setattr(cfg, field, value)  # a field changed after building is checked by validate()
  with pytest.raises(ValueError, match=match):
    cfg.validate()


def test_labels_out_of_range_and_shape_mismatch_are_caught_before_training():
  _, train, state, step = _small_setup()
  bad = train.take(slice(0, 64))
  with pytest.raises(ValueError, match=r"y must lie in \[0, 10\)"):
    type(bad)(**{**bad.__dict__, "y": np.full(64, 10, np.int32)})
  # Labels valid for an 11-class dataset, out of range for the 10-class model.
  bad = type(bad)(**{**bad.__dict__, "y": np.full(64, 10, np.int32), "num_classes": 11,
                     "class_names": tuple(map(str, range(11)))})
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
    training.fit(state, bad, train_step=step, epochs=1, batch_size=32, progress=False)
  with pytest.raises(ValueError, match="batch_size must be at most"):
    training.fit(state, train, train_step=step, epochs=1, batch_size=10_000, progress=False)
  cifar_model = models.create_model(jax.random.key(0), "resnet20", input_shape=(32, 32, 3),
                                    num_classes=10)
  with pytest.raises(ValueError, match=r"examples of shape \(8, 8, 1\) do not fit"):
    training.check_model_input(cifar_model, train)


def test_save_and_load_model_round_trip(tmp_path):
  cfg, train, state, _ = _small_setup(model="cnn", model_kwargs={"widths": [4], "dense": 8})
  training.save_model(str(tmp_path / "m"), state, cfg, train)
  model, meta = training.load_model(str(tmp_path / "m"))
  assert meta["model"] == "cnn" and meta["num_classes"] == 10
  g, p, s = models.split_model(model)
  x = jnp.asarray(train.x[:5])
  np.testing.assert_allclose(models.apply_model(g, p, s, x)[0], state.apply(x)[0], rtol=1e-6)
  with pytest.raises(FileNotFoundError, match="no model.json"):
    training.load_model(str(tmp_path))


def test_states_and_models_never_share_donated_buffers():
  cfg, train, state, step = _small_setup(model="mlp", epochs=1)
  model = state.model()
  second = training.create_train_state(jax.random.key(0), model, optax.sgd(0.1))
  before = np.asarray(jax.tree.leaves(state.params)[0]).copy()
  training.fit(second, train, train_step=training.make_train_step(
      losses.cross_entropy_loss, optax.sgd(0.1)), epochs=1, batch_size=64, progress=False)
  # fit donated `second`'s buffers; the first state and the model still work.
  np.testing.assert_array_equal(jax.tree.leaves(state.params)[0], before)
  x = jnp.asarray(train.x[:4])
  np.testing.assert_allclose(model(x), state.apply(x)[0], rtol=1e-6)


def test_init_from_starts_fine_tuning_at_the_saved_weights(tmp_path):
  kw = {"widths": [4], "dense": 8}
  cfg, train, state, step = _small_setup(model="cnn", model_kwargs=kw)
  step = jax.jit(step)
  for _ in range(3):
    state, _ = step(state, {"x": jnp.asarray(train.x[:64]), "y": jnp.asarray(train.y[:64])})
  training.save_model(str(tmp_path / "model"), state, cfg, train)
  # A workdir (holding model/) works as well as the model folder itself.
  _, _, tuned, _ = _small_setup(model="cnn", model_kwargs=kw, init_from=str(tmp_path),
                                seed=5, loss="label_smoothing")
  chex.assert_trees_all_equal(tuned.params, state.params)
  chex.assert_trees_all_equal(tuned.model_state, state.model_state)
  assert int(tuned.step) == 0  # a fresh optimiser
  _, _, fresh, _ = _small_setup(model="cnn", model_kwargs=kw, seed=5)
  assert not np.allclose(jax.tree.leaves(fresh.params)[0], jax.tree.leaves(state.params)[0])
  with pytest.raises(ValueError, match=r"init_from must hold the model being trained"):
    _small_setup(model="cnn", model_kwargs={"widths": [8], "dense": 8},
                 init_from=str(tmp_path / "model"))


def _run_python(code, env_extra=None, **kw):
  env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
  return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                        capture_output=True, text=True, **kw)


def test_data_parallel_step_on_8_devices_equals_1_device():
  code = """
  import jax, numpy as np, chex
  from explicable_jax import data, losses, training
  assert jax.device_count() == 8, jax.devices()
  # A CNN with batch norm: batch statistics must be those of the global batch.
  from explicable_jax import models
  train = data.load("digits", "train")
  import optax
  model = models.create_model(jax.random.key(0), "resnet", input_shape=(8, 8, 1), num_classes=10,
                              depth=8)
  opt = optax.sgd(0.1, momentum=0.9)
  step = training.make_train_step(losses.cross_entropy_loss, opt)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = training.data_mesh(devices)
    state = training.replicate(training.create_train_state(jax.random.key(1), model, opt), mesh)
    fn = training.data_parallel(step, mesh, donate=False)
    losses = []
    for batch in data.batches(train, 64, shuffle=True, drop_remainder=True):
      state, m = fn(state, training.shard_batch(batch, mesh))
      losses.append(float(m["loss"]))
      if len(losses) == 5: break
    results.append((np.array(losses), jax.device_get(state.params), jax.device_get(state.model_state),
                    len(state.params["fc"]["kernel"].value.sharding.device_set)))
  (l1, p1, s1, n1), (l8, p8, s8, n8) = results
  assert (n1, n8) == (1, 8), (n1, n8)
  np.testing.assert_allclose(l1, l8, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(p1, p8, rtol=1e-4, atol=1e-5)
  chex.assert_trees_all_close(s1, s8, rtol=1e-4, atol=1e-5)
  print("OK", l1)
  """
  out = _run_python(code, {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
                    timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "OK" in out.stdout


def _tiny_fit(tmp_path=None, **kw):
  ds = data.load("digits", "train")
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=ds.input_shape,
                          num_classes=10, hidden=(16,))
  opt = optax.adam(1e-2)
  state = training.create_train_state(jax.random.key(1), clf, opt)
  return training.fit(state, ds, train_step=training.make_train_step(
      losses.cross_entropy_loss, opt), epochs=2, batch_size=64, progress=False,
      log_every=5, eval_ds=ds, workdir=None if tmp_path is None else str(tmp_path), **kw)


def test_fit_returns_its_history_and_calls_each_callback(tmp_path):
  class Recorder(training.Callback):
    def __init__(self):
      self.calls = []

    def on_train_begin(self, step):
      self.calls.append(("begin", step))

    def on_log(self, record):
      self.calls.append(("log", record["step"]))

    def on_eval(self, record):
      self.calls.append(("eval", record["epoch"]))

    def on_train_end(self, step):
      self.calls.append(("end", step))
  rec = Recorder()
  state, history = _tiny_fit(tmp_path, callbacks=[rec])
  steps = 2 * (len(data.load("digits", "train")) // 64)
  assert rec.calls[0] == ("begin", 0) and rec.calls[-1] == ("end", steps)
  assert [c for c in rec.calls if c[0] == "eval"] == [("eval", 1), ("eval", 2)]
  assert [r["step"] for r in history.logs] == [c[1] for c in rec.calls if c[0] == "log"]
  assert [r["step"] for r in history.logs][:2] == [5, 10]
  s, loss = history.series("loss")
  assert len(s) == len(loss) == len(history.logs) and np.all(np.isfinite(loss))
  assert len(history.series("eval_accuracy", evals=True)[1]) == 2
  # metrics.jsonl is written by the same records (one writer among the callbacks).
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [l for l in lines if "loss" in l] == history.logs
  assert [l for l in lines if "eval_accuracy" in l] == history.evals
  assert int(state.step) == steps
  out = _tiny_fit()  # always (state, history)
  assert isinstance(out, tuple) and isinstance(out[0], training.TrainState)
  with pytest.raises(TypeError, match="always returns"):
    _tiny_fit(return_history=True)


def _read_events(folder):
  """Scalars of a TensorBoard event file: the TFRecord framing (length,
  CRC, payload, CRC) around ``Event`` protos."""
  import struct
  from tensorboardX.proto import event_pb2
  out = {}
  for name in os.listdir(folder):
    buf = open(os.path.join(folder, name), "rb").read()
    i = 0
    while i < len(buf):
      (n,) = struct.unpack("<Q", buf[i:i + 8])
      ev = event_pb2.Event.FromString(buf[i + 12:i + 12 + n])
      i += 12 + n + 4
      for v in ev.summary.value:
        out.setdefault(v.tag, []).append((ev.step, v.simple_value))
  return out


def test_tensorboard_writer_records_every_numeric_entry(tmp_path):
  pytest.importorskip("tensorboardX")
  _, history = _tiny_fit(callbacks=[training.TensorBoardWriter(str(tmp_path / "tb"))])
  events = _read_events(tmp_path / "tb")
  assert [s for s, _ in events["loss"]] == [r["step"] for r in history.logs]
  np.testing.assert_allclose([v for _, v in events["loss"]],
                             [r["loss"] for r in history.logs], rtol=1e-6)
  assert [s for s, _ in events["eval_accuracy"]] == [r["step"] for r in history.evals]
  assert "epoch" not in events and "step" not in events


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
  """``gs://`` served from ``tmp_path/gcs`` by an fsspec file system, the way
  epath reaches Cloud Storage when gcsfs is installed (no network here)."""
  fsspec = pytest.importorskip("fsspec")
  from fsspec.implementations.local import LocalFileSystem
  root = tmp_path / "gcs"
  root.mkdir()

  class FakeGCS(LocalFileSystem):
    protocol = ("gs", "gcs")

    @classmethod
    def _strip_protocol(cls, path):
      path = os.fspath(path)
      if path.startswith("gs://"):
        return str(root / path[len("gs://"):]).rstrip("/")
      return super()._strip_protocol(path)

  monkeypatch.setenv("EPATH_USE_TF", "false")
  for name in ("gs", "gcs"):
    fsspec.register_implementation(name, FakeGCS, clobber=True)
  from etils.epath import backend
  backend.fsspec_backend._get_filesystem.cache_clear()
  yield root
  backend.fsspec_backend._get_filesystem.cache_clear()


def test_a_gs_workdir_keeps_its_uri_and_every_file_goes_through_it(fake_gcs, monkeypatch):
  """fit with ``workdir="gs://bucket/run"``: metrics.jsonl is written (and
  truncated on resume) through epath, the checkpointer is handed
  ``gs://bucket/run/checkpoints`` unmangled (``os.path.abspath`` made it
  ``/cwd/gs:/bucket/...`` before), and the run resumes from it. Orbax's own
  Cloud Storage writes (tensorstore) cannot run offline, so the checkpointer
  here stores under the fake bucket's local folder."""
  from explicable_jax import _paths
  from explicable_jax.training import loop
  assert str(_paths.resolve("gs://bucket/run") / "x") == "gs://bucket/run/x"
  handed = []
  real = loop.Checkpointer

  class LocalBackedCheckpointer(real):
    def __init__(self, directory, **kw):
      handed.append(os.fspath(directory))
      assert os.fspath(directory).startswith("gs://")
      super().__init__(fake_gcs / os.fspath(directory)[len("gs://"):], **kw)

  monkeypatch.setattr(loop, "Checkpointer", LocalBackedCheckpointer)
  _, train, state, step = _small_setup(model="mlp")
  kw = dict(train_step=step, batch_size=64, workdir="gs://bucket/run", checkpoint_every=5,
            log_every=1, progress=False)
  training.fit(state, train, epochs=1, **kw)
  training.fit(state, train, epochs=2, **kw)
  assert handed == ["gs://bucket/run/checkpoints"] * 2
  run = fake_gcs / "bucket" / "run"
  events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
  per_epoch = len(train.y) // 64
  assert [e["step"] for e in events if "loss" in e] == list(range(1, 2 * per_epoch + 1))
  assert any(e.get("event") == "resumed" and e["step"] == per_epoch for e in events)
  assert not (pathlib.Path.cwd() / "gs:").exists()


def test_model_folders_and_json_files_accept_gs_uris(fake_gcs):
  from explicable_jax import _paths
  _paths.write_text("gs://bucket/m/model/model.json", json.dumps({"model": "mlp"}))
  assert (fake_gcs / "bucket/m/model/model.json").exists()
  assert not (fake_gcs / "bucket/m/model/model.json.tmp").exists()
  assert models.model_folder("gs://bucket/m") == "gs://bucket/m/model"
  assert models.read_meta("gs://bucket/m/model") == {"model": "mlp"}
  _paths.append_line("gs://bucket/m/log.jsonl", "a\n")
  _paths.append_line("gs://bucket/m/log.jsonl", "b\n")
  assert (fake_gcs / "bucket/m/log.jsonl").read_text() == "a\nb\n"
  with pytest.raises(FileNotFoundError, match="gs://bucket/none"):
    models.model_folder("gs://bucket/none")


@pytest.mark.parametrize("reduce,match", [
    (lambda l: l.mean(), r"shape \(64,\) for this batch of 64; it returned shape \(\) \(a mean"),
    (lambda l: l[:, None], r"returned shape \(64, 1\) \(drop the trailing axis"),
    (lambda l: jnp.stack([l, l], 1), r"returned shape \(64, 2\) \(sum the class axis")])
def test_a_loss_that_is_not_per_example_is_refused_where_training_calls_it(reduce, match):
  _, train, state, _ = _small_setup()
  opt = optax.sgd(0.1)
  state = training.create_train_state(jax.random.key(0), state.classifier, opt)
  loss = lambda logits, batch, params=None: reduce(losses.cross_entropy(logits, batch["y"]))
  step = training.make_train_step(loss, opt)
  with pytest.raises(ValueError, match=r"^loss_fn must return one loss per example, .*" + match):
    jax.jit(step)(state, next(data.batches(train, 64)))
  with pytest.raises(ValueError, match=match):
    training.fit(state, train, train_step=step, epochs=1, batch_size=64, progress=False)
  with pytest.raises(ValueError, match=r"loss_fn must return one loss per example"):
    training.evaluate(state, train.take(np.arange(64)), batch_size=64, loss_fn=loss)


def test_a_train_step_for_another_optimiser_is_refused_naming_both():
  _, train, state, _ = _small_setup()
  clf = state.classifier
  adam_state = training.create_train_state(jax.random.key(0), clf, optax.adam(1e-3))
  sgd_step = training.make_train_step(losses.cross_entropy_loss, optax.sgd(0.1, momentum=0.9))
  match = r"another optimiser than the state's: .*ScaleByAdamState.*TraceState"
  with pytest.raises(ValueError, match=match):
    training.fit(adam_state, train, train_step=sgd_step, epochs=1, batch_size=64,
                 progress=False)
  with pytest.raises(ValueError, match=match):
    jax.jit(sgd_step)(adam_state, next(data.batches(train, 64)))
  # The same optimiser family with other hyperparameters has the same state: it trains.
  other = training.make_train_step(losses.cross_entropy_loss, optax.adam(1e-2))
  new, _ = jax.jit(other)(adam_state, next(data.batches(train, 64)))
  assert int(new.step) == 1


def test_integer_pixel_datasets_train_alike_whatever_the_dtype():
  ds = data.load("digits", "train").take(np.arange(64))
  u8 = np.round(ds.x * 255).astype(np.uint8)
  clf = models.classifier(jax.random.key(0), "mlp", input_shape=ds.input_shape,
                          num_classes=10, hidden=(8,))
  opt = optax.sgd(0.1)
  step = training.make_train_step(losses.cross_entropy_loss, opt)
  out = []
  for x in (u8, u8.astype(np.int32), u8.astype(np.float32) / 255):
    state = training.create_train_state(jax.random.key(1), clf, opt)
    state, _ = training.fit(state, data.Dataset(x, ds.y, 10, ds.class_names), train_step=step,
                            epochs=1, batch_size=32, progress=False, shuffle=False)
    out.append(state.params)
  chex.assert_trees_all_close(out[0], out[1], rtol=1e-6)
  chex.assert_trees_all_close(out[0], out[2], rtol=1e-5, atol=1e-6)
