"""The avllm demo page. ``demo`` is built at import (cheap: no model, no media read); it launches under __main__.

    python app.py --host 127.0.0.1 --port 7860 [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no network calls home

import gradio as gr  # noqa: E402

from demo.layout import CSS, build_demo  # noqa: E402

MAX_UPLOAD = "200mb"  # uploads larger than this are refused by the server
demo = build_demo().queue(default_concurrency_limit=2, max_size=32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the avllm demo page.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--checkpoint", help="checkpoint the page starts with (default: $AVLLM_CHECKPOINT or "
                        "assets/avllm-tiny)")
    parser.add_argument("--share", action="store_true", help="also open a public share link (off by default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    page = demo
    if args.checkpoint:
        page = build_demo(checkpoint=args.checkpoint).queue(default_concurrency_limit=2, max_size=32)
    page.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=MAX_UPLOAD,
        show_error=True,
        footer_links=["gradio", "api"],
        theme=gr.themes.Soft(),
        css=CSS,
    )


if __name__ == "__main__":
    main()
