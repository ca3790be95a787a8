import dataclasses
import os

import jax
import numpy as np
import pytest

from explicable_jax import data


def test_digits_split_is_deterministic_disjoint_and_complete():
  train, test = data.load("digits", "train"), data.load("digits", "test")
  everything = data.load("digits", "all")
  assert len(train) + len(test) == len(everything) == 1797
  assert train.x.shape[1:] == (8, 8, 1) and train.x.dtype == np.float32
  assert 0.0 <= train.x.min() and train.x.max() <= 1.0
  again = data.load("digits", "train")
  np.testing.assert_array_equal(train.x, again.x)
  other = data.load("digits", "train", seed=1)
  assert not np.array_equal(train.y, other.y)
  rows = {r.tobytes() + bytes([y]) for r, y in zip(everything.x, everything.y)}
  split_rows = {r.tobytes() + bytes([y]) for r, y in zip(
      np.concatenate([train.x, test.x]), np.concatenate([train.y, test.y]))}
  assert rows == split_rows


def test_split_dataset_counts_and_fractions():
  ds = data.load("digits", "all")
  a, b, c = data.split_dataset(ds, (100, 200, 50), seed=3)
  assert (len(a), len(b), len(c)) == (100, 200, 50)
  a2, b2 = data.split_dataset(ds, (0.5, 0.5), seed=3)
  assert len(a2) + len(b2) == len(ds)
  with pytest.raises(ValueError, match="sizes must be non-negative counts"):
    data.split_dataset(ds, (2000,), seed=0)
  with pytest.raises(ValueError, match="must sum to 1"):
    data.split_dataset(ds, (0.5, 0.6), seed=0)


def test_batches_pad_the_last_batch_and_mask_it():
  ds = data.load("digits", "test")  # 449 examples
  out = list(data.batches(ds, 100))
  assert len(out) == 5
  assert all(b["x"].shape == (100, 8, 8, 1) for b in out)
  assert out[-1]["mask"].sum() == 49 and out[0]["mask"].all()
  assert sum(b["mask"].sum() for b in out) == len(ds)
  dropped = list(data.batches(ds, 100, drop_remainder=True))
  assert len(dropped) == 4
  resumed = list(data.batches(ds, 100, shuffle=True, seed=1, epoch=2, start=2))
  full = list(data.batches(ds, 100, shuffle=True, seed=1, epoch=2))
  np.testing.assert_array_equal(resumed[0]["y"], full[2]["y"])
  with pytest.raises(ValueError, match="batch_size must be a positive integer"):
    next(data.batches(ds, 0))


def test_batches_of_a_process_share_gather_only_its_rows(tmp_path):
  """rows=slice: each batch is the global batch's rows (padding and mask
  included), and only those examples are read: x memory-mapped from disk is
  indexed with this share's indices alone."""
  ds = data.load("digits", "test")  # 449 examples: the last batch of 100 is padded
  np.save(tmp_path / "x.npy", ds.x)
  reads = []

  class Recording(np.ndarray):
    def __getitem__(self, idx):
      reads.append(np.asarray(idx).copy())
      return np.asarray(self)[idx]

  mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
  local = dataclasses.replace(ds, x=mapped.view(Recording))
  full = list(data.batches(ds, 100, shuffle=True, seed=3, epoch=1))
  for rows in (slice(0, 50), slice(50, 100)):
    reads.clear()
    part = list(data.batches(local, 100, shuffle=True, seed=3, epoch=1, rows=rows))
    assert len(part) == len(full)
    for a, b, idx in zip(part, full, reads):
      for k in b:
        np.testing.assert_array_equal(np.asarray(a[k]), b[k][rows])
      assert len(idx) == 50
  assert sum(b["mask"].sum() for r in (slice(0, 50), slice(50, 100))
             for b in data.batches(ds, 100, rows=r)) == len(ds)
  for bad in (slice(0, 100, 2), slice(100, 120), [0, 1]):
    with pytest.raises(ValueError, match="rows must be a non-empty contiguous slice"):
      next(data.batches(ds, 100, rows=bad))


def test_epoch_permutations_differ_between_epochs_and_repeat_with_the_seed():
  a = data.epoch_permutation(100, seed=0, epoch=0)
  assert sorted(a) == list(range(100))
  np.testing.assert_array_equal(a, data.epoch_permutation(100, seed=0, epoch=0))
  assert not np.array_equal(a, data.epoch_permutation(100, seed=0, epoch=1))


def test_random_crop_flip_is_a_shifted_window_of_the_padded_image():
  img = np.arange(6 * 6 * 2, dtype=np.float32).reshape(6, 6, 2) / 72  # [0, 1] images
  padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
  windows = [padded[i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
  candidates = windows + [w[:, ::-1] for w in windows]
  for seed in range(20):
    out = np.asarray(data.random_crop_flip(jax.random.key(seed), img, padding=2))
    assert any(np.array_equal(out, c) for c in candidates)
  identity = data.augment_cifar(jax.random.key(0), img[None], padding=0, flip=False)
  np.testing.assert_array_equal(identity[0], img)
  batch = data.augment_cifar(jax.random.key(0), np.stack([img] * 64))
  assert len({np.asarray(b).tobytes() for b in batch}) > 10  # One key per image.


def test_unknown_dataset_lists_the_valid_names():
  with pytest.raises(ValueError, match="valid datasets are: .*cifar10.*digits"):
    data.load("cifar11")
  with pytest.raises(ValueError, match="split must be one of"):
    data.load("digits", "validation")


def _write_local_mnist(folder):
  rng = np.random.default_rng(0)
  np.savez(os.path.join(folder, "mnist.npz"),
           x_train=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
           y_train=rng.integers(0, 10, 20, dtype=np.uint8),
           x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
           y_test=rng.integers(0, 10, 10, dtype=np.uint8))


def test_local_folder_in_the_shared_layout(tmp_path):
  _write_local_mnist(tmp_path)
  ds = data.load("mnist", "test", data_dir=str(tmp_path), source="local")
  assert ds.x.shape == (10, 28, 28, 1) and ds.x.dtype == np.uint8
  assert ds.y.dtype == np.int32 and ds.num_classes == 10


def test_local_folder_from_the_environment(tmp_path, monkeypatch):
  _write_local_mnist(tmp_path)
  monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
  assert len(data.load("mnist", "train", source="local")) == 20


def test_missing_local_files_list_what_to_put_where(tmp_path):
  with pytest.raises(data.DataNotFoundError) as info:
    data.load("cifar10", "train", data_dir=str(tmp_path), source="local")
  msg = str(info.value)
  assert "cifar10_train_batch1.npz" in msg and "cifar10_test.npz" in msg
  assert str(tmp_path) in msg


def test_tfds_path_with_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    ds = data.load("mnist", "train", source="tfds")
  assert ds.x.shape == (12, 28, 28, 1) and ds.x.dtype == np.uint8
  assert ds.y.shape == (12,) and ds.num_classes == 10
  assert ds.y.min() >= 0 and ds.y.max() < 10


def test_real_cifar10_copy_and_paper_split(shared_data):
  splits = data.paper_split("cifar10", data_dir=shared_data, source="local")
  assert {k: len(v) for k, v in splits.items()} == {
      "train": 50000, "validation": 5000, "test": 5000}
  assert splits["train"].x.shape[1:] == (32, 32, 3)
  assert "JPEG" in splits["train"].note
  # The halves partition the test set.
  test = data.load("cifar10", "test", data_dir=shared_data, source="local")
  assert np.array_equal(np.bincount(np.concatenate(
      [splits["validation"].y, splits["test"].y]), minlength=10),
      np.bincount(test.y, minlength=10))


def test_offline_machine_fails_fast_with_the_files_to_provide(monkeypatch, tmp_path):
  monkeypatch.delenv(data.DATA_ENV, raising=False)
  monkeypatch.setattr(data, "network_reachable", lambda *a, **k: False)
  import time
  t = time.time()
  with pytest.raises(data.DataNotFoundError, match="no network.*cifar10_test.npz"):
    data.load("cifar10", "test", source="auto")
  assert time.time() - t < 60


def test_network_probe_says_no_for_a_host_that_cannot_exist():
  import time
  t = time.time()
  assert not data.network_reachable("no-such-host.invalid", 443, timeout=0.5)  # RFC 6761
  assert time.time() - t < 10
