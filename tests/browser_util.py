"""Helpers for browser tests: run ``app.py`` in a subprocess on a free local port, and drive headless Chromium.

    with AppServer(env={"AVLLM_EXAMPLES_DIR": str(tmp)}) as server:
        with chromium() as browser:
            page = browser.new_page()
            page.goto(server.url)

Never installs browsers: the system Chromium at /usr/bin/chromium is used, or the tests skip.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install it with apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """The HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (urllib.error.URLError, OSError):
        return None


class AppServer:
    """``python app.py --host 127.0.0.1 --port N`` in a subprocess; stopped (its process group) on exit.

    env: extra environment variables. The server's output goes to ``self.log_path``; ``self.log()`` reads it.
    """

    def __init__(self, env: dict[str, str] | None = None, start_timeout: float = 90.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.start_timeout = start_timeout
        self.env = {
            **os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
            "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **(env or {}),
        }
        self._logdir = tempfile.mkdtemp(prefix="avllm_app_")
        self.log_path = Path(self._logdir) / "server.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> AppServer:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log()
                self.__exit__(None, None, None)
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{text}")
            if http_status(self.url, timeout=2.0) == 200:
                return self
            time.sleep(0.5)
        text = self.log()
        self.__exit__(None, None, None)
        raise TimeoutError(f"app.py did not answer on {self.url} within {self.start_timeout:.0f} s:\n{text}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and http_status(self.url) == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this server was started in, nothing else
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None and not self._log.closed:
            self._log.close()
        shutil.rmtree(self._logdir, ignore_errors=True)


@contextlib.contextmanager
def chromium():
    """A headless system Chromium driven by Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def element_pixels(locator) -> np.ndarray:
    """A screenshot of one element as (H, W, 3) uint8 RGB."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))
