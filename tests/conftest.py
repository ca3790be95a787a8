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
