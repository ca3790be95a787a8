"""explicable_jax: classifiers whose mistakes humans can understand, whose
errors can be caught and whose hesitations can be explained, in JAX/Flax."""

__version__ = "0.1.0"
