"""Adapters (pipelines, in diffusers' sense) that turn a trained network into a ``Generator``: a
family + a codec + weights + a card. They receive their network and sampler and run them; families
never import them.

Room ``generators``: may import ``core``, ``codecs``, ``families`` and ``safety`` (the watermark).
"""
