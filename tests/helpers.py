"""Helpers shared by several test modules (pytest puts tests/ on sys.path)."""
from explicable_jax import data, training


def small_setup(model="mlp", epochs=2, **kw):
  """A digits config, its training set, and the built state and train step."""
  cfg = training.TrainConfig(dataset="digits", model=model, epochs=epochs,
                             batch_size=64, learning_rate=0.05, **kw)
  train = data.load("digits", "train")
  state, step = training.build(cfg, train)
  return cfg, train, state, step
