"""Engines that run pretrained models behind the Generator protocol."""
