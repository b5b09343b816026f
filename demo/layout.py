"""The page: components and their wiring. Building it loads no model and reads no media (a directory listing of
``examples/``, its ``examples.json`` and a check that the default checkpoint folder exists, at most)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from avllm.predict import DEFAULT_CHECKPOINT, ExampleIndex
from demo import handlers
from demo.handlers import EXAMPLES_DIR

TITLE = "avllm: where and when the model hears it"
DESCRIPTION = (
    "Upload a clip (or a still image and a sound), or pick an example, and press **Analyze**. The model answers "
    "where the sound comes from (boxes), when it sounds (time segments), a claim you type, a question you ask, "
    "and describes the clip; the tabs show the maps behind those answers. Solid boxes and coloured bars are the "
    "model's; dashed boxes and hatched bars are the ground truth of the synthetic examples."
)
MAPS_HELP = (
    "Heatmaps over the key frame (jet colour map: blue cold, red hot). **SSL map**: the target slot's "
    "localization, refined by the image query. **AVACE**: the LM-side cross-attention that is trained to stay "
    "inside the sounding box. **Sounding classes**: each class's map, weighted by how likely the head finds that "
    "a visible object of the class sounds (silent objects fade). **Slots**: each patch's share between the target "
    "(sounding) and off-target slot. "
    "**DenseAV**: per-head audio-visual similarity; a head is named sound or speech where the checkpoint's "
    "evaluation on spoken phrases measured its role, else shown by number."
)
CSS = """
#media-info table, #answers table { font-size: 0.9em; }
#checkpoint-status p { margin: 0; font-size: 0.9em; }
#answers td:first-child { white-space: nowrap; }
"""


def example_videos(examples_dir: str | Path = EXAMPLES_DIR) -> list[str]:
    """The ``*.mp4`` files in ``examples_dir``, sorted; empty when the folder is missing."""
    d = Path(examples_dir)
    return sorted(str(p) for p in d.glob("*.mp4")) if d.is_dir() else []


def example_rows(examples_dir: str | Path = EXAMPLES_DIR) -> list[list[str]]:
    """[video, claim, question] per example: from ``examples.json`` when present (its order and suggested texts),
    else every ``*.mp4`` of the folder with empty texts."""
    index = ExampleIndex(Path(examples_dir) / "examples.json")
    if index.entries:
        return [[str(Path(examples_dir) / e["file"]), e.get("claim", ""), e.get("question", "")]
                for e in index.entries if (Path(examples_dir) / e["file"]).is_file()]  # fmt: skip
    return [[v, "", ""] for v in example_videos(examples_dir)]


def checkpoint_choices(start: str) -> list[str]:
    """The dropdown's choices: the starting checkpoint and the shipped default (any other can be typed)."""
    return list(dict.fromkeys([start, DEFAULT_CHECKPOINT]))


def build_demo(examples_dir: str | Path = EXAMPLES_DIR, checkpoint: str | None = None) -> gr.Blocks:
    """Build the page (not launched, not queued). ``examples_dir``: where example clips are listed from;
    ``checkpoint``: the checkpoint the page starts with (default: $AVLLM_CHECKPOINT or assets/avllm-tiny)."""
    start = checkpoint or handlers.START_CHECKPOINT
    # no corner buttons on the plots: they would cover the legends (the CLI and the JSON give the data)
    image_out = {"show_label": False, "type": "numpy", "format": "png", "interactive": False, "buttons": []}
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}\n{DESCRIPTION}")
        session = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                with gr.Tab("Video"):
                    video = gr.Video(label="Video clip", sources=["upload"], elem_id="video-input")
                with gr.Tab("Image + audio"):
                    image = handlers.pass_unreadable_images(gr.Image(
                        label="Image", sources=["upload"], type="filepath", image_mode=None, elem_id="image-input"
                    ))
                    audio = gr.Audio(label="Audio", sources=["upload"], type="filepath", elem_id="audio-input")
                ckpt = gr.Dropdown(
                    choices=checkpoint_choices(start), value=start, allow_custom_value=True, label="Checkpoint",
                    info="a checkpoint directory, or a model hub id", elem_id="checkpoint",
                )
                status = gr.Markdown(handlers.checkpoint_status(start), label="Checkpoint status",
                                     elem_id="checkpoint-status")
                claim = gr.Textbox(label="Claim to fact-check", placeholder="e.g. The bell rings before the clock.",
                                   elem_id="claim")  # fmt: skip
                question = gr.Textbox(label="Question (AVQA)", placeholder="e.g. How many objects make a sound?",
                                      elem_id="question")  # fmt: skip
                analyze = gr.Button("Analyze", variant="primary", elem_id="analyze-button")
                rows = example_rows(examples_dir)
                if rows:
                    gr.Examples(examples=rows, inputs=[video, claim, question], label="Example clips",
                                elem_id="examples", cache_examples=False)  # fmt: skip
                info = gr.Markdown("*Media info appears here after Analyze.*", label="Media info",
                                   elem_id="media-info")
            with gr.Column(scale=2):
                boxes = gr.Image(label="Boxes", elem_id="boxes", **image_out)
                answers = gr.Markdown("*The model's answers appear here after Analyze.*", label="Answers",
                                      elem_id="answers")
                with gr.Tabs():
                    with gr.Tab("Sound", elem_id="tab-sound"):
                        wave = gr.Image(label="Waveform", elem_id="waveform", **image_out)
                        spec = gr.Image(label="Spectrogram", elem_id="spectrogram", **image_out)
                    with gr.Tab("Maps", elem_id="tab-maps"):
                        gr.Markdown(MAPS_HELP)
                        ssl = gr.Image(label="Localization maps", elem_id="ssl-maps", **image_out)
                        slots = gr.Image(label="Slot maps", elem_id="slot-maps", **image_out)
                        dense = gr.Image(label="DenseAV heads", elem_id="dense-maps", **image_out)
                    with gr.Tab("Over time", elem_id="tab-time"):
                        audio_slots = gr.Image(label="Audio slots over time", elem_id="audio-slots", **image_out)
                        dense_time = gr.Image(label="DenseAV heads over time", elem_id="dense-time", **image_out)
                    with gr.Tab("Overlay video", elem_id="tab-video"):
                        overlay = gr.Video(label="Overlay video: SSL map and boxes on every frame",
                                           interactive=False, elem_id="overlay-video")  # fmt: skip
                        slider = gr.Slider(0, 1, value=0, step=1, label="Sampled frame", interactive=False,
                                           elem_id="frame-slider")  # fmt: skip
                        frame = gr.Image(label="Frame", elem_id="frame-view", **image_out)
                    with gr.Tab("Chat", elem_id="tab-chat"):
                        chatbot = gr.Chatbot(label="Ask about the clip", elem_id="chat", height=360)
                        with gr.Row():
                            message = gr.Textbox(show_label=False, placeholder="Ask a question and press Enter",
                                                 scale=4, elem_id="chat-input")  # fmt: skip
                            send = gr.Button("Send", scale=1, elem_id="chat-send")
                    with gr.Tab("JSON", elem_id="tab-json"):
                        json_file = gr.File(label="prediction.json: the whole prediction", interactive=False,
                                            elem_id="json-file")  # fmt: skip

        ckpt.change(handlers.checkpoint_status, inputs=ckpt, outputs=status, api_name=False, queue=False)
        # in the order of handlers.AnalyzeResult
        outputs = [info, status, answers, boxes, ssl, slots, audio_slots, dense, dense_time, wave, spec, overlay,
                   slider, frame, json_file, session, chatbot]  # fmt: skip
        analyze.click(handlers.analyze, inputs=[video, image, audio, ckpt, claim, question], outputs=outputs,
                      api_name="analyze")  # fmt: skip
        slider.release(handlers.show_frame, inputs=[slider, session], outputs=frame, api_name=False)
        for trigger in (message.submit, send.click):
            trigger(handlers.chat, inputs=[message, chatbot, session], outputs=[chatbot, message], api_name=False)
    return demo
