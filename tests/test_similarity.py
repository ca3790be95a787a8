"""Class-similarity matrices (real nltk WordNet, real CIFAR-10H / CHL data) and
the weighted loss."""
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explicable_jax import losses
from explicable_jax import similarity as S


@pytest.fixture(scope="module")
def wn(wordnet_available):
  return wordnet_available


def test_wordnet_path_similarity_known_values(wn):
  w = S.wordnet_similarity(["dog.n.01", "cat.n.01", "n02084071"])
  # dog and cat meet at carnivore.n.01: path length 4, similarity 1/5.
  np.testing.assert_allclose(w[0, 1], 0.2)
  np.testing.assert_allclose(w[0, 2], 1.0)  # the wnid of dog.n.01
  np.testing.assert_allclose(np.diag(w), 1.0)


def test_offline_cifar10_matrix_equals_wordnet(wn):
  np.testing.assert_allclose(S.cifar10_wordnet_similarity(),
                             S.wordnet_similarity(S.CIFAR10_SYNSETS.values()),
                             rtol=1e-12)


def test_resolves_nouns_synsets_and_wnids_alike(wn):
  assert S.resolve_synset("dog", wn) == S.resolve_synset("dog.n.01", wn) == \
      S.resolve_synset("n02084071", wn)
  assert S.resolve_synset("lawn mower", wn).name() == "lawn_mower.n.01"


def test_unknown_class_names_are_named_with_suggestions(wn):
  with pytest.raises(ValueError, match="'aquarium_fish'.*Close WordNet nouns"):
    S.resolve_synset("aquarium_fish", wn)
  with pytest.raises(ValueError, match="dog.n.99"):
    S.resolve_synset("dog.n.99", wn)


@pytest.mark.parametrize("metric", S.METRICS)
def test_cifar10_ekl_is_symmetric_with_the_largest_entry_on_the_diagonal(wn, metric):
  w = S.wordnet_similarity(S.CIFAR10_SYNSETS.values(), metric=metric)
  np.testing.assert_allclose(w, w.T)
  assert np.all(np.argmax(w, axis=1) == np.arange(10))
  # Animals are closer to each other than to vehicles.
  cat, dog, truck = (S.CIFAR10_CLASSES.index(c) for c in ("cat", "dog", "truck"))
  assert w[cat, dog] > w[cat, truck]


def test_cifar100_synsets_resolve_to_pictured_things(wn):
  names = list(S.CIFAR100_SYNSETS)
  assert len(names) == 100 and names == sorted(names)
  allowed = {"noun.animal", "noun.plant", "noun.food", "noun.artifact", "noun.person",
             "noun.object", "noun.group"}
  for name, synset in S.CIFAR100_SYNSETS.items():
    assert wn.synset(synset).lexname() in allowed, (name, synset)
  w = S.wordnet_similarity(S.CIFAR100_SYNSETS.values())
  np.testing.assert_allclose(np.diag(w), 1.0)
  np.testing.assert_allclose(w, w.T)
  assert np.all((w > 0) & (w <= 1))


def test_cifar100_synsets_follow_the_label_order_of_the_real_data(shared_data):
  names = np.load(os.path.join(shared_data, "cifar100_labels_and_prefix.npz"),
                  allow_pickle=True)["fine_label_names"]
  assert list(names) == list(S.CIFAR100_SYNSETS)


def test_missing_wordnet_gets_a_clear_error(monkeypatch, tmp_path):
  from nltk.corpus import wordnet as wn_reader

  def not_there():
    raise LookupError("no wordnet")
  monkeypatch.setattr(wn_reader, "ensure_loaded", not_there)
  monkeypatch.delenv("EXPLICABLE_JAX_DATA", raising=False)
  with pytest.raises(S.WordNetNotFoundError, match="nltk.download"):
    S.wordnet(data_dir=str(tmp_path), download=False)


def test_ihl_is_the_per_class_mean_of_soft_labels():
  probs = np.array([[0.8, 0.2, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9], [0.3, 0.3, 0.4]])
  w = S.from_soft_labels(probs, np.array([0, 0, 2, 1]), 3)
  np.testing.assert_allclose(w, [[0.7, 0.3, 0.0], [0.3, 0.3, 0.4], [0.0, 0.1, 0.9]])


def test_ihl_and_chl_from_the_real_cifar10_data(shared_data):
  probs = np.load(os.path.join(shared_data, "cifar10h-probs.npy"))
  labels = np.load(os.path.join(shared_data, "cifar10_test.npz"))["y"]
  ihl = S.from_soft_labels(probs, labels, 10)
  np.testing.assert_allclose(ihl.sum(1), 1.0, rtol=1e-6)
  assert np.all(np.argmax(ihl, 1) == np.arange(10))
  cat, dog = S.CIFAR10_CLASSES.index("cat"), S.CIFAR10_CLASSES.index("dog")
  assert ihl[cat, dog] == np.sort(ihl[cat])[-2]  # humans confuse cats with dogs most.
  chl = S.from_ratings(np.load(os.path.join(shared_data, "cifar10_chl_ratings.npy")))
  np.testing.assert_allclose(np.diag(chl), 1.0)
  assert np.all((chl >= 0) & (chl <= 1))
  m = S.explicability_matrix(ihl, chl, S.wordnet_similarity(S.CIFAR10_SYNSETS.values())
                             if _has_wordnet() else chl)
  np.testing.assert_allclose(m.sum(1), 1.0)


def _has_wordnet():
  try:
    S.wordnet(download=False)
    return True
  except S.WordNetNotFoundError:
    return False


@pytest.mark.parametrize("call,match", [
    (lambda: S.row_normalize(np.ones((2, 3))), "square"),
    (lambda: S.check_weight_matrix("weights", np.eye(3), 4), "4x4"),
    (lambda: S.row_normalize(-np.eye(2)), "non-negative"),
    (lambda: S.row_normalize(np.array([[1.0, np.nan], [0, 1]])), "NaN"),
    (lambda: S.row_normalize(np.array([[1.0, 0], [0, 0]])), "all-zero rows \\[1\\]"),
    (lambda: S.from_soft_labels(np.array([[0.5, 0.4]]), np.array([0]), 2), "sum to 1"),
    (lambda: S.from_soft_labels(np.array([[0.5, 0.5]]), np.array([0, 1]), 2), "labels"),
    (lambda: S.from_ratings(np.eye(2) * 4, scale_max=2), "scale_max"),
    (lambda: S.wordnet_similarity(["dog"], metric="jcn"), "metric"),
    (lambda: losses.weighted_cross_entropy(jnp.zeros((1, 3)), jnp.array([0]), np.eye(2)),
     "weights"),
    (lambda: losses.weighted_cross_entropy(jnp.zeros((1, 2)), jnp.array([0]), np.eye(2),
                                           target="l2"), "target"),
])
def test_bad_similarity_inputs_are_named(call, match):
  with pytest.raises(ValueError, match=match):
    call()


# ------------------------------------------------------------ weighted loss


def test_identity_weights_give_optax_cross_entropy(key):
  logits = jax.random.normal(key, (6, 5))
  labels = jnp.array([0, 1, 2, 3, 4, 0])
  chex.assert_trees_all_close(
      losses.weighted_cross_entropy(logits, labels, np.eye(5)),
      optax.softmax_cross_entropy_with_integer_labels(logits, labels), atol=1e-6)


def test_softmax_targets_are_the_authors_near_uniform_ones(shared_data):
  probs = np.load(os.path.join(shared_data, "cifar10h-probs.npy"))
  labels = np.load(os.path.join(shared_data, "cifar10_test.npz"))["y"]
  targets = losses.weighted_targets(S.from_soft_labels(probs, labels, 10), target="softmax")
  diag = np.diag(np.asarray(targets))
  assert 0.2 < diag.mean() < 0.25  # the issue quotes about 0.22 for IHL


def test_make_weighted_loss_matches_the_per_example_function(key):
  w = np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.0]])
  logits = jax.random.normal(key, (4, 3))
  batch = {"y": jnp.array([0, 2, 1, 1])}
  for target in losses.WEIGHTED_TARGETS:
    kind = "ekl" if target == "authors" else None
    scale = 1.0 if target == "l1" else 2.0  # l1 reads no scale (and refuses one)
    chex.assert_trees_all_close(
        losses.make_weighted_loss(w, target=target, scale=scale, kind=kind)(logits, batch),
        losses.weighted_cross_entropy(logits, batch["y"], w, target=target, scale=scale,
                                      kind=kind))


probabilities = st.lists(st.floats(0.05, 1.0), min_size=4, max_size=4)


@settings(max_examples=50, deadline=None)
@given(probabilities, st.floats(0.0, 0.8))
def test_lemma_1_a_swap_toward_the_less_explicable_class_costs_more(p, gap):
  # True class 0; class 1 is more explicable than class 2 (W_01 > W_02). Moving
  # the larger of the two probabilities onto class 2 raises the loss by
  # (t_1 - t_2) (log a - log b) > 0.
  w = np.array([[1.0, 0.9, 0.9 - gap - 0.05, 0.1], [0.2, 1, 0.2, 0.2], [0.2, 0.2, 1, 0.2],
                [0.2, 0.2, 0.2, 1]])
  p = np.asarray(p) / np.sum(p)
  a, b = sorted(p[1:3])[::-1]
  if a - b < 1e-3:
    return
  before = np.array([p[0], a, b, p[3]])
  after = np.array([p[0], b, a, p[3]])
  loss = lambda q: float(losses.weighted_cross_entropy(jnp.log(jnp.asarray(q))[None],
                                                       jnp.array([0]), w)[0])
  assert loss(after) > loss(before)


@settings(max_examples=50, deadline=None)
@given(st.floats(0.05, 0.95), st.integers(1, 3), st.integers(1, 3))
def test_lemma_2_mistakes_onto_more_explicable_classes_cost_less(confidence, i, j):
  # Lemma 2 as we implement it: two predictions that give the true class the
  # same probability and put the rest on one wrong class each; the one whose
  # wrong class has the larger weight W_y. has the smaller loss.
  w = np.array([[1.0, 0.8, 0.4, 0.1], [0.8, 1, 0.3, 0.2], [0.4, 0.3, 1, 0.5],
                [0.1, 0.2, 0.5, 1]])
  if i == j:
    return
  def loss(wrong):
    q = np.full(4, 1e-3)
    q[0], q[wrong] = confidence, 1 - confidence - 2e-3
    return float(losses.weighted_cross_entropy(jnp.log(jnp.asarray(q))[None], jnp.array([0]),
                                               w)[0])
  if w[0, i] > w[0, j]:
    assert loss(i) < loss(j)
  else:
    assert loss(i) > loss(j)


def _softmax_rows(w):
  e = np.exp(w - w.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def test_authors_targets_softmax_the_matrices_as_the_authors_store_them():
  rng = np.random.default_rng(0)
  ratings = rng.uniform(0, 4, (4, 4))
  np.fill_diagonal(ratings, 4.0)
  wordnet_sim = rng.uniform(0.05, 0.5, (4, 4))
  np.fill_diagonal(wordnet_sim, 1.0)
  soft = rng.dirichlet(np.ones(4), 4)
  cases = {"chl": (ratings, ratings),                                    # raw 0-4
           "ekl": (wordnet_sim, wordnet_sim / wordnet_sim.sum(1, keepdims=True)),  # L1
           "ihl": (soft, soft)}                                          # as is
  for kind, (given_, stored) in cases.items():
    for scale in (1.0, 2.5):
      got = losses.weighted_targets(given_, target="authors", kind=kind, scale=scale)
      np.testing.assert_allclose(got, _softmax_rows(scale * stored), rtol=1e-5)
  # The training loss is optax's cross-entropy against those rows.
  logits = jax.random.normal(jax.random.key(0), (3, 4))
  y = jnp.array([0, 3, 1])
  loss = losses.make_weighted_loss(ratings, target="authors", kind="chl")
  np.testing.assert_allclose(loss(logits, {"y": y}), optax.softmax_cross_entropy(
      logits, jnp.asarray(_softmax_rows(ratings), jnp.float32)[y]), rtol=1e-5)


def test_authors_chl_targets_put_most_mass_on_the_true_class(shared_data):
  # Their raw CIFAR-10 ratings (diagonal 4): softmax keeps 0.716 on the true
  # class on average, the L1 form 0.426; a softmax of the ratings divided by
  # 4 (what we did before) is near uniform.
  from explicable_jax import data
  raw = data.load_human_labels("cifar10_chl", data_dir=shared_data)
  mass = lambda t: float(np.diag(t).mean())  # noqa: E731
  np.testing.assert_allclose(mass(losses.weighted_targets(raw, target="authors", kind="chl")),
                             np.diag(_softmax_rows(raw)).mean(), rtol=1e-5)
  assert 0.71 < mass(losses.weighted_targets(raw, target="authors", kind="chl")) < 0.72
  assert 0.42 < mass(losses.weighted_targets(raw, target="l1")) < 0.43
  assert mass(losses.weighted_targets(S.from_ratings(raw), target="softmax")) < 0.21


def test_explicability_losses_read_each_kind_from_the_matrix_name():
  from explicable_jax import metrics
  rng = np.random.default_rng(1)
  ratings = rng.uniform(0, 4, (3, 3))
  np.fill_diagonal(ratings, 4.0)
  logits = rng.normal(size=(5, 3))
  y = np.array([0, 1, 2, 1, 0])
  got = metrics.explicability_losses(logits, y, {"CHL": ratings}, target="authors")["CHL"]
  logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
  want = -np.mean(np.sum(_softmax_rows(ratings)[y] * logp, axis=1))
  np.testing.assert_allclose(got, want, rtol=1e-5)
