"""Heads that read image patch tokens and audio frame tokens of shared width D: one module per method."""
