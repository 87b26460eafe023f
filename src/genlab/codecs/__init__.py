"""Codecs turn a modality into tensors and back: text (char, byte-level BPE), images, audio.

Room ``codecs``: may import ``core`` only (and numpy, torch, tokenizers)."""
