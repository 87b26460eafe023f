"""Model families: each learns and samples a distribution over tensors, knowing nothing of pixels,
words or sound (that is the codecs' job)."""
