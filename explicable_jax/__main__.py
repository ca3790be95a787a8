import sys

from explicable_jax.app.cli import main

sys.exit(main())
