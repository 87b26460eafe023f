"""The genlab command line: Typer commands, one module per command group.

Room ``cli``: a face; may import every room; ``server`` only in ``cli/serve.py``, which starts it.
No room imports it."""
