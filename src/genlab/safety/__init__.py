"""Responsible by construction: usage guardrails (and, in later issues, provenance, review, bias audits)."""
