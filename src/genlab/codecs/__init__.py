"""Codecs turn a modality into tensors and back: text (char, byte-level BPE), images, audio."""
