"""The genlab command line: Typer commands, one module per command group."""
