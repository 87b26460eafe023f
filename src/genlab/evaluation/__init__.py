"""Evaluation of image generators: a shipped classifier per dataset and the metrics of the field."""
