"""Model families: each learns and samples a distribution over tensors, knowing nothing of pixels,
words or sound (that is the codecs' job).

Room ``families``: may import ``core`` only (and torch, numpy). The adapters that make a trained
network a ``Generator`` live in ``generators``."""
