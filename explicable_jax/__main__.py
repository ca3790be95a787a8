"""``python -m explicable_jax``: the ``explicable-jax`` command
(:func:`explicable_jax.app.cli.main`)."""
import sys

from explicable_jax.app.cli import main

__all__: list[str] = []

sys.exit(main())
