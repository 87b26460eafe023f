"""Responsible by construction: guardrail scanners and policies, provenance and the watermark, the
human review queue and its audit log.

Room ``safety``: may import ``core``, ``codecs`` and ``storage``."""
