"""Conductance at the ResNet-20's last block is a linear function of the
pooled features (issue 33), and the inner-layer script's shared pass is the
library's layer conductance.

After ``layer3.2`` the ResNet-20 only averages its 8 x 8 maps and applies the
last linear layer ``W``, so the gradient of the target logit with respect to
every position of channel ``c`` is ``W[t, c] / 64`` along the whole path, and
the conductance of channel ``c`` (spatial mean) telescopes to
``W[t, c] (pool_c(x) - pool_c(x')) / 64`` for any step rule and baseline.
"""
import os
import sys

import jax
import numpy as np
import pytest

from explicable_jax import attribution, models
from explicable_jax.attribution import batched

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def resnet20():
  module = models.create_model(jax.random.key(3), "resnet20", input_shape=(32, 32, 3),
                               num_classes=10)
  clf = models.as_classifier("model", module)
  x = np.asarray(jax.random.uniform(jax.random.key(4), (2, 32, 32, 3)))
  return clf, x


def _closed_form(clf, x, baseline):
  features_fn, _ = clf.split("layer3.2")
  a, a0 = np.asarray(features_fn(x)), np.asarray(features_fn(baseline[None]))
  pred = np.asarray(clf.logits(x)).argmax(-1)
  kernel = np.asarray(clf.params["fc"]["kernel"])  # (channels, classes)
  assert a.shape[1:3] == (8, 8)
  return kernel[:, pred].T * (a.mean((1, 2)) - a0.mean((1, 2))) / 64


@pytest.mark.parametrize("method", ["riemann_right", "riemann_left"])
def test_last_block_conductance_is_the_weighted_pooled_difference(resnet20, method):
  clf, x = resnet20
  baseline = np.zeros_like(x[0])  # the black image (a grey one: the next test)
  cond = attribution.per_feature_map(batched.layer_conductance(
      clf, x, layer="layer3.2", target="predicted", baselines=baseline, n_steps=10,
      method=method, shortcut_affine_head=False), reduce="mean")
  closed = _closed_form(clf, x, baseline)
  assert np.max(np.abs(closed)) > 1e-3  # a non-trivial check
  np.testing.assert_allclose(np.asarray(cond), closed, atol=2e-5 * np.max(np.abs(closed)))


def test_inner_layer_script_matches_layer_conductance_and_the_identity_is_last_block_only(
    resnet20):
  sys.path.insert(0, os.path.join(ROOT, "experiments", "error_detection_cifar10"))
  try:
    import inner_layers
  finally:
    sys.path.pop(0)
  clf, x = resnet20
  baseline = np.full_like(x[0], 0.4)
  _, shared = inner_layers.conductances(clf, baseline, x)
  for rule, layer in (("Wu", "layer3.1"), ("Captum", "layer2.2")):
    ref = np.asarray(attribution.per_feature_map(batched.layer_conductance(
        clf, x, layer=layer, target="predicted", baselines=baseline, n_steps=10,
        method=inner_layers.RULES[rule]), reduce="mean"))
    np.testing.assert_allclose(np.asarray(shared[rule][layer]), ref,
                               atol=1e-5 * np.max(np.abs(ref)))
  np.testing.assert_allclose(np.asarray(shared["Wu"]["layer3.2"]),
                             _closed_form(clf, x, baseline), atol=1e-7)
  # One block earlier the head is not affine: the two rules differ.
  gap = np.max(np.abs(np.asarray(shared["Wu"]["layer3.1"] - shared["Captum"]["layer3.1"])))
  assert gap > 1e-3 * np.max(np.abs(np.asarray(shared["Wu"]["layer3.1"])))
