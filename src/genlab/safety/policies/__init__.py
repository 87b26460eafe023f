"""Guardrail policies shipped with genlab (YAML)."""
