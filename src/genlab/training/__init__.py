"""The one training loop every family uses, with checkpoints, resume, progress and DDP."""
