"""Shared fixtures. Real-data tests use ``$EXPLICABLE_JAX_DATA`` (``.ci/run``
points it at ``../shared/data``) and are skipped where it is unset."""
import os
import pathlib

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def key():
  return jax.random.key(0)


@pytest.fixture(scope="session")
def shared_data():
  folder = os.environ.get("EXPLICABLE_JAX_DATA")
  if not folder or not os.path.isdir(folder):
    pytest.skip("EXPLICABLE_JAX_DATA does not point at a data folder")
  return folder


@pytest.fixture(scope="session")
def wordnet_available():
  """nltk's WordNet reader, or a skip where no corpus is installed."""
  from explicable_jax import similarity
  try:
    return similarity.wordnet(download=False)
  except similarity.WordNetNotFoundError:
    pytest.skip("WordNet corpus not installed (.ci/run provides it from ../shared/data)")
