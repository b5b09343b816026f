"""The page: components and their wiring. Building it loads no model and reads no media (a directory listing of
``examples/`` at most)."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from demo import handlers

TITLE = "avllm: audio-visual grounding"
DESCRIPTION = (
    "Upload a clip (or a still image and a sound) to see its frames, waveform and spectrogram: "
    "the views on which the model's boxes, maps and time segments are drawn."
)
# Example clips are listed from here; AVLLM_EXAMPLES_DIR points elsewhere (tests, deployments).
EXAMPLES_DIR = Path(os.environ.get("AVLLM_EXAMPLES_DIR") or Path(__file__).resolve().parent.parent / "examples")
CSS = """
#media-info table { font-size: 0.9em; }
"""


def example_videos(examples_dir: str | Path = EXAMPLES_DIR) -> list[str]:
    """The ``*.mp4`` files in ``examples_dir``, sorted; empty when the folder is missing."""
    d = Path(examples_dir)
    return sorted(str(p) for p in d.glob("*.mp4")) if d.is_dir() else []


def build_demo(examples_dir: str | Path = EXAMPLES_DIR) -> gr.Blocks:
    """Build the page (not launched, not queued). ``examples_dir``: where example ``*.mp4`` clips are listed from."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}")
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                with gr.Tab("Video"):
                    video = gr.Video(label="Video clip", sources=["upload"], elem_id="video-input")
                with gr.Tab("Image + audio"):
                    image = gr.Image(
                        label="Image", sources=["upload"], type="filepath", image_mode=None, elem_id="image-input"
                    )
                    audio = gr.Audio(label="Audio", sources=["upload"], type="filepath", elem_id="audio-input")
                analyze = gr.Button("Analyze", variant="primary", elem_id="analyze-button")
                info = gr.Markdown("*Media info appears here after Analyze.*", elem_id="media-info")
                videos = example_videos(examples_dir)
                if videos:
                    gr.Examples(
                        examples=[[v] for v in videos], inputs=[video], label="Example clips", elem_id="examples"
                    )
            with gr.Column(scale=2):
                # the plots carry their own titles; Gradio's label badge would cover them
                outputs = dict(show_label=False, type="numpy", interactive=False)
                strip = gr.Image(label="Frames", elem_id="frame-strip", **outputs)
                wave = gr.Image(label="Waveform", elem_id="waveform", **outputs)
                spec = gr.Image(label="Spectrogram", elem_id="spectrogram", **outputs)
        analyze.click(
            handlers.analyze, inputs=[video, image, audio], outputs=[strip, wave, spec, info], api_name="analyze"
        )
    return demo
