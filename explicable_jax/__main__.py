import sys

from explicable_jax.cli import main

sys.exit(main())
