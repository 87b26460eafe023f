"""Seed sentences, templates and documents of the guardrail's labelled set (written for genlab;
``scripts/build_guard_data.py`` expands them). Every seed is given in the eleven languages of
``LANGS``, in that order; the translations are written, not machine-made."""

LANGS = ("en", "es", "fr", "de", "pt", "it", "ru", "zh", "ja", "ar", "hi")
