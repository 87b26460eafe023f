"""Dataset builders: text corpora (Shakespeare, Python code, user files), digits, glyphs, spoken
digits and user folders of images or audio.

Room ``data``: may import ``core`` and ``codecs``."""
