"""The application layer: the ``explicable-jax`` command, the demo, the HTML
report and the results writers. Built on the library; nothing in the library
imports it."""

__all__: list[str] = []
