"""Drive one input through each entry point of avllm and say what a person would get back: a result, a readable
message, or something worse. Shared by tests/test_resilience.py and benchmarks/bench_resilience.py.

    outcome = predictor_entry(predictor, inputs, "case")            # load_clip_from_config + run_prediction
    outcome = cli_entry(inputs, out_dir, "case")                    # python -m avllm.predict, one process per file
    outcomes = cli_batch([("case", inputs), ...], out_root)         # predict.main per file, all in one process
    app = AppDriver(server.url); outcome = app.analyze(inputs, "case"); ok, why = app.health(good_clip)

Outcome kinds (``Outcome.kind``):
    result      the entry point answered (and the answer is well formed: finite maps, a prediction.json)
    message     a readable error: non-empty, one message, no traceback, names no internal exception
    generic     the demo's "Something went wrong" (an unexpected exception inside the handler)
    unclear     an error whose text is empty, a traceback, or several lines of noise
    crash       an exception escaped, the program died, or the server stopped answering
    hang        no answer within the time limit
    bad_result  an answer with NaN / infinite maps or a missing prediction.json
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from bad_corpus import Inputs

REPO = Path(__file__).resolve().parent.parent
CHECKPOINT = "assets/avllm-tiny"
CLAIM = "You can hear a drum."
QUESTION = "How many objects make a sound?"
GOOD_KINDS = ("result", "message")
# A message that only a program would write: a traceback, a raw exception, an FFmpeg error number.
_NOISE = ("Traceback", 'File "', "Errno", "Exception:", "Error(", "<class ")


@dataclass
class Outcome:
    """What one entry point gave for one case."""

    case: str
    entry: str  # "predictor", "cli", "app"
    kind: str  # see the module docstring
    text: str  # a result's summary or the message as the person sees it
    seconds: float
    healthy: bool | None = None  # app: a good clip right after this case was answered correctly
    health_note: str = ""

    def short(self, n: int = 70) -> str:
        t = " ".join(self.text.split())
        return t if len(t) <= n else t[: n - 1] + "…"


def message_problem(text: str | None, one_line: bool = True) -> str | None:
    """Why an error text is not a clear message for a person, or None when it is."""
    if text is None or not text.strip():
        return "empty message"
    for noise in _NOISE:
        if noise in text:
            return f"looks like program output ({noise!r})"
    if one_line and len(text.strip().splitlines()) > 1:
        return "several lines"
    if len(text) > 600:
        return "too long"
    return None


def _classify_error(case: str, entry: str, text: str, seconds: float) -> Outcome:
    problem = message_problem(text)
    kind = "message" if problem is None else "unclear"
    return Outcome(case, entry, kind, text if problem is None else f"{problem}: {text}", seconds)


def _maps_problem(doc: dict) -> str | None:
    """None when the prediction's maps and curves are finite and in [0, 1], else what is wrong."""
    import numpy as np

    for group in ("maps", "curves"):
        for name, values in doc.get(group, {}).items():
            a = np.asarray(values, dtype=np.float64)
            if a.size == 0 or not np.all(np.isfinite(a)):
                return f"{group}.{name} is empty or not finite"
    return None


def _summary(frames: int, duration: float, notes: list[str]) -> str:
    """e.g. "8 frames, 1.00 s; no audio stream: the audio is silence" (the media notes, as the page lists them)."""
    return "; ".join([f"{frames} frames, {duration:.2f} s", *notes])


# ----------------------------------------------------------------------------------------------------------------
# 1. The Python predictor, through the load path of the CLI and the demo


def predictor_entry(predictor, inputs: Inputs, case: str = "") -> Outcome:
    """``load_clip_from_config`` with the model's media settings, then ``run_prediction`` (every task and the
    per-frame maps): what ``python -m avllm.predict`` and the demo do before drawing."""
    from avllm.media import MediaError, load_clip_from_config
    from avllm.predict import _media_config, run_prediction

    t0 = time.perf_counter()
    try:
        clip = load_clip_from_config(_media_config(predictor), inputs.video, image=inputs.image, audio=inputs.audio)
        analysis = run_prediction(predictor, clip, CLAIM, QUESTION)
    except MediaError as err:
        return _classify_error(case, "predictor", str(err), time.perf_counter() - t0)
    except Exception as err:  # noqa: BLE001 — anything else reaching the caller is what this check looks for
        return Outcome(case, "predictor", "crash", f"{type(err).__name__}: {err}", time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    import numpy as np

    doc = analysis.prediction.to_dict()
    json.dumps(doc)  # JSON-serialisable, as the CLI and the demo write it
    problem = _maps_problem(doc)
    if problem is None and not np.all(np.isfinite(analysis.frame_maps)):
        problem = "per-frame maps are not finite"
    text = _summary(clip.num_frames, clip.duration, clip.flags.notes)
    return Outcome(case, "predictor", "bad_result" if problem else "result", problem or text, seconds)


# ----------------------------------------------------------------------------------------------------------------
# 2. The command line


def _cli_outcome(case: str, code: int | None, out: str, err: str, out_dir: Path, seconds: float) -> Outcome:
    if code == 0:
        path = out_dir / "prediction.json"
        if not path.is_file():
            return Outcome(case, "cli", "bad_result", "exit 0 but no prediction.json", seconds)
        doc = json.loads(path.read_text())
        problem = _maps_problem(doc.get("prediction", {}))
        if problem:
            return Outcome(case, "cli", "bad_result", problem, seconds)
        m = doc.get("media", {})
        text = _summary(m.get("frames", -1), m.get("duration_s", -1.0), m.get("notes", []))
        return Outcome(case, "cli", "result", text, seconds)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    if code == 2 and lines and lines[-1].startswith("error: ") and "Traceback" not in err:
        message = lines[-1][len("error: "):]
        return _classify_error(case, "cli", message, seconds)
    tail = " | ".join(lines[-3:]) if lines else "(nothing on stderr)"
    return Outcome(case, "cli", "crash", f"exit {code}: {tail}", seconds)


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg"}  # fmt: skip


def cli_entry(inputs: Inputs, out_dir: Path, case: str = "", checkpoint: str = CHECKPOINT,
              timeout: float = 300.0) -> Outcome:
    """``python -m avllm.predict <inputs> --out out_dir`` in a process of its own."""
    cmd = [sys.executable, "-m", "avllm.predict", *inputs.cli_args(), "--checkpoint", checkpoint,
           "--claim", CLAIM, "--question", QUESTION, "--out", str(out_dir)]  # fmt: skip
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=_cli_env(), capture_output=True, text=True, timeout=timeout,
                              check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Outcome(case, "cli", "hang", f"no exit within {timeout:.0f} s", time.perf_counter() - t0)
    return _cli_outcome(case, proc.returncode, proc.stdout, proc.stderr, out_dir, time.perf_counter() - t0)


def cli_batch(items: list[tuple[str, Inputs]], out_root: Path, checkpoint: str = CHECKPOINT,
              timeout: float = 900.0) -> list[Outcome]:
    """``avllm.predict.main(argv)`` for every item, one after the other in ONE new process (this file run as a
    program), each with its own captured stdout / stderr: the CLI's code path without paying the interpreter and
    torch start-up once per file. A case that kills the process is a crash; those after it are not run."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    spec = [{"case": name, "argv": [*inp.cli_args(), "--checkpoint", checkpoint, "--claim", CLAIM,
                                    "--question", QUESTION, "--out", str(out_root / name)]}
            for name, inp in items]  # fmt: skip
    spec_path, results_path = out_root / "batch.json", out_root / "batch_results.jsonl"
    spec_path.write_text(json.dumps(spec))
    results_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--cli-batch", str(spec_path),
                               str(results_path)], cwd=REPO, env=_cli_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
        died = f"the batch process exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        died = f"the batch process did not finish within {timeout:.0f} s"
    done = {}
    if results_path.is_file():
        for line in results_path.read_text().splitlines():
            r = json.loads(line)
            done[r["case"]] = _cli_outcome(r["case"], r["code"], r["out"], r["err"], out_root / r["case"],
                                           r["seconds"])  # fmt: skip
    total = time.perf_counter() - t0
    return [done.get(name) or Outcome(name, "cli", "crash", died, total) for name, _ in items]


def _run_cli_batch(spec_path: str, results_path: str) -> None:
    """The batch process: predict.main per spec entry, stdout / stderr captured, one JSON line per entry."""
    from avllm import predict

    for item in json.loads(Path(spec_path).read_text()):
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = predict.main(item["argv"])
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 — report the traceback as the program would have printed it
                traceback.print_exc()
                code = 1
        row = {"case": item["case"], "code": code, "out": out.getvalue(), "err": err.getvalue(),
               "seconds": time.perf_counter() - t0}  # fmt: skip
        with open(results_path, "a") as f:
            f.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# 3. The running web app, through gradio_client


class AppDriver:
    """Calls the page's ``/analyze`` event of a running app.py, as a person's browser would."""

    def __init__(self, url: str, checkpoint: str = CHECKPOINT):
        from gradio_client import Client

        self._downloads = tempfile.mkdtemp(prefix="avllm_client_")
        self.client = Client(url, verbose=False, download_files=self._downloads)
        self.checkpoint = checkpoint
        self.baseline: dict | None = None  # the good clip's answers, from the first health check

    def _call(self, inputs: Inputs, timeout: float):
        from gradio_client import handle_file

        def f(p):
            return handle_file(str(p)) if p is not None else None

        job = self.client.submit(f(inputs.video), f(inputs.image), f(inputs.audio), self.checkpoint, CLAIM,
                                 QUESTION, api_name="/analyze")  # fmt: skip
        try:
            return job.result(timeout=timeout)
        except TimeoutError:
            job.cancel()
            raise

    def analyze(self, inputs: Inputs, case: str = "", timeout: float = 180.0) -> Outcome:
        """One Analyze of ``inputs``; a result's text is the media summary of the page's info panel."""
        from gradio_client.exceptions import AppError

        from demo.handlers import GENERIC_FAILURE

        t0 = time.perf_counter()
        try:
            out = self._call(inputs, timeout)
        except TimeoutError:
            return Outcome(case, "app", "hang", f"no answer within {timeout:.0f} s", time.perf_counter() - t0)
        except AppError as err:
            seconds = time.perf_counter() - t0
            if err.message == GENERIC_FAILURE:
                return Outcome(case, "app", "generic", err.message, seconds)
            return _classify_error(case, "app", err.message, seconds)
        except Exception as err:  # noqa: BLE001 — a broken connection, a dead server
            return Outcome(case, "app", "crash", f"{type(err).__name__}: {err}", time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        doc = self._prediction(out)
        if doc is None:
            return Outcome(case, "app", "bad_result", "no prediction.json in the answer", seconds)
        problem = _maps_problem(doc["prediction"])
        m = doc["media"]
        text = _summary(m["frames"], m["duration_s"], m["notes"])
        return Outcome(case, "app", "bad_result" if problem else "result", problem or text, seconds)

    @staticmethod
    def _prediction(out) -> dict | None:
        """prediction.json of an /analyze answer (output 14), parsed."""
        path = out[14] if isinstance(out, (list, tuple)) and len(out) > 14 else None
        if isinstance(path, dict):
            path = path.get("path") or path.get("value")
        if not path or not Path(path).is_file():
            return None
        return json.loads(Path(path).read_text())

    def health(self, good: Path, timeout: float = 180.0) -> tuple[bool, str]:
        """Analyze the good clip: (True, summary) when the answer is the same as the first time (answers, boxes,
        frames), else (False, why). The first call sets the baseline."""
        from gradio_client.exceptions import AppError

        try:
            out = self._call(Inputs(video=good), timeout)
        except TimeoutError:
            return False, f"no answer within {timeout:.0f} s"
        except AppError as err:
            return False, f"error: {err.message}"
        except Exception as err:  # noqa: BLE001
            return False, f"{type(err).__name__}: {err}"
        doc = self._prediction(out)
        if doc is None:
            return False, "no prediction.json"
        p = doc["prediction"]
        seen = {"source": doc["media"]["source"], "frames": doc["media"]["frames"],
                "answers": {k: v["text"] for k, v in p["answers"].items()}, "ssl_box": p["ssl_box"],
                "proposal_box": p["proposal_box"]}  # fmt: skip
        if seen["source"] != good.name or seen["frames"] < 1 or not any(seen["answers"].values()):
            return False, f"unexpected answer: {seen}"
        if self.baseline is None:
            self.baseline = seen
        if seen != self.baseline:
            return False, f"answer changed: {seen} vs {self.baseline}"
        return True, f"{good.name}: same answers as the first time"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def outcome_row(o: Outcome) -> dict:
    return asdict(o)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--cli-batch":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        _run_cli_batch(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: python tests/entry_points.py --cli-batch SPEC.json RESULTS.jsonl")
