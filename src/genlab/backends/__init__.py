"""Engines that run pretrained models behind the Generator protocol: llama.cpp, remote servers.

Room ``backends``: may import ``core`` and ``codecs``."""
