"""The one training loop every family uses, with checkpoints, resume, progress and DDP, and GGUF export.

Room ``training``: may import ``core``, ``codecs``, ``families``, ``generators``, ``data`` and
``registry``; never ``evaluation`` (a GAN's sample score is passed in)."""
