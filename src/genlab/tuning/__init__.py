"""Review that teaches: reviewers' decisions -> SFT/DPO/KTO data -> LoRA adapters (GGUF) on their base.

``data`` turns the review queue's decided items (``ReviewQueue.export`` rows) into TRL-named JSONL
datasets; ``lora`` fine-tunes a GGUF base (read into float weights by transformers' GGUF loader)
with ``peft`` LoRA on CPU and writes the adapter as a llama.cpp GGUF LoRA, registered as
``BASE+ADAPTER`` and served on the quantised base.

Room ``tuning``: may import ``core``, ``codecs``, ``families``, ``generators``, ``data``,
``registry``, ``training`` and ``storage``.
"""

from __future__ import annotations
