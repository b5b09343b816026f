"""avllm: an audio-visual LLM that grounds what it hears in space and time.

Nothing is loaded at import: no weights, no laion_clap, no device. Build a model with
``avllm.model.build_model(avllm.config.get_preset("tiny"))`` or load one with ``avllm.checkpoint.load``.
"""

__version__ = "0.1.0"
