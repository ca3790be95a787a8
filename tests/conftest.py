"""Shared fixtures. Real-data tests use ``$EXPLICABLE_JAX_DATA`` (``.ci/run``
points it at ``../shared/data``) and are skipped where it is unset."""
import os
import pathlib
import shutil
import tempfile

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"

# The suite fixes the convolution kernel-gradient form (XLA's rule) instead of
# the library's default "auto", which would time each large convolution shape
# on first use: on a fresh machine (CI) that is tens of seconds spread over the
# tests, and choices made under a loaded machine differ between runs. Both
# forms and "auto" itself are tested in tests/test_conv.py. Set before
# explicable_jax is imported; subprocesses inherit it.
os.environ.setdefault("EXPLICABLE_JAX_CONV_KERNEL_GRAD", "xla")


def pytest_configure(config):
  """One XLA compilation cache for the whole run: many tests build the same
  small programs (in several pytest-xdist workers and in subprocesses, which
  inherit the environment), and compiling dominates their time on CPU. A
  cached executable is the one XLA would build, so results do not change.
  Set $JAX_COMPILATION_CACHE_DIR yourself to keep the cache between runs."""
  if _CACHE_ENV not in os.environ:
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="explicable_jax_test_xla_cache_")
    config._explicable_jax_cache = os.environ[_CACHE_ENV]
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  os.environ.setdefault(_PROMOTION_ENV, "strict")
  jax.config.update("jax_numpy_dtype_promotion", os.environ[_PROMOTION_ENV])
  jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                    int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))


def pytest_unconfigure(config):
  folder = getattr(config, "_explicable_jax_cache", None)
  if folder:
    shutil.rmtree(folder, ignore_errors=True)


# Strict dtype promotion for the whole suite (equinox's habit): no silent
# int/bool -> float or float32 -> float64 promotion, in the library or in the
# tests. Set in pytest_configure for this process and through
# $JAX_NUMPY_DTYPE_PROMOTION for the subprocesses the tests start (the CLI,
# the notebook, the multi-process workers). Third-party code that is not
# strict-clean (optax's updates mix Python floats with the int32 step count)
# runs under standard promotion inside the library, where it is called.
_PROMOTION_ENV = "JAX_NUMPY_DTYPE_PROMOTION"


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
