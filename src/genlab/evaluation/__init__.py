"""Measuring models: shipped classifiers and the metrics of each field, model evaluation, bias
audits and the compare report (data, not HTML).

Room ``evaluation``: may import ``core``, ``codecs``, ``families``, ``generators``, ``data``,
``registry``, ``training`` (compare trains at equal budgets), ``safety`` (the toxicity scanner
bias audits share with the guardrails) and ``storage`` (audits are recorded)."""
