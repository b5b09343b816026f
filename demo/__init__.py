"""The Gradio demo: ``layout`` builds the page, ``handlers`` turn its values into calls of ``avllm`` and back."""
