"""Demo under load: many gradio_client clients send ``/analyze`` at once to ``app.py`` served on 127.0.0.1.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_load.py --clients 16 --requests 1 --checkpoint assets/avllm-tiny

``app.py`` runs in a subprocess on a free local port (``OMP_NUM_THREADS=1``: one thread per op, so the queue's two
concurrent requests use two cores). One warm-up request loads the model (its latency is printed apart), then one
request alone gives the unloaded latency to compare with. Then ``--clients`` threads each open their own
``gradio_client.Client`` and send ``--requests`` requests one after the other, all started together; every request
analyses the same example clip with a claim and a question. A request counts as *ok* when its job finishes with
every output and the ``prediction.json`` it returns parses to a non-empty object; *failed* when it raises (a
``gr.Error``, a refused queue slot); *lost* when it has no answer by the hard ``--timeout``. The server's resident
memory is sampled every 50 ms: its own, and with its child processes added (that sum overstates: a freshly forked
child shows its parent's pages until it executes its program). After the load one more request checks that the
server still answers. Exits 1 unless every request is ok.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # AppServer: app.py in a subprocess on a free port

from browser_util import AppServer

EXAMPLE = REPO / "examples" / "two_sources_take_turns.mp4"
CLAIM = "The clock is heard before the bell."
QUESTION = "How many objects make a sound?"
JSON_OUTPUT = 14  # index of prediction.json among the /analyze outputs (README: out[14])


@dataclass
class Outcome:
    """One request: its latency (s, submit to result) and what became of it."""

    client: int
    latency: float | None = None
    error: str | None = None  # why it failed (None when ok or lost)
    lost: bool = False  # no answer within the deadline


@dataclass
class LoadResult:
    """Everything one load run measured."""

    outcomes: list[Outcome]
    wall: float  # s, first submit to last answer
    peak_rss: int  # bytes, server process alone
    peak_rss_tree: int  # bytes, server process and its children
    warmup: float  # s, first request (model load included)
    alone: float  # s, one request with the server otherwise idle (just before the load)
    after_ok: bool  # the server answered a request after the load
    queue: dict[str, int | None] = field(default_factory=dict)

    @property
    def ok(self) -> list[float]:
        return [o.latency for o in self.outcomes if o.latency is not None and o.error is None and not o.lost]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]

    @property
    def lost(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.lost]


class RssSampler:
    """Peak resident memory of a process (and of it with its children), sampled on a thread every ``period`` s."""

    def __init__(self, pid: int, period: float = 0.05):
        self.pid, self.period = pid, period
        self.peak = self.peak_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> tuple[int, int]:
        try:
            import psutil
        except ImportError:  # /proc: the process alone
            rss = _proc_rss(self.pid)
            return rss, rss
        try:
            p = psutil.Process(self.pid)
            own = p.memory_info().rss
            kids = 0
            for c in p.children(recursive=True):
                try:
                    kids += c.memory_info().rss
                except psutil.Error:
                    pass
            return own, own + kids
        except psutil.Error:
            return 0, 0

    def _run(self) -> None:
        while not self._stop.is_set():
            own, tree = self._sample()
            self.peak, self.peak_tree = max(self.peak, own), max(self.peak_tree, tree)
            self._stop.wait(self.period)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _proc_rss(pid: int) -> int:
    """VmRSS of ``pid`` from /proc in bytes (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_output(out: tuple) -> None:
    """Raise ValueError unless ``out`` is a whole /analyze answer whose prediction.json parses."""
    if not isinstance(out, (tuple, list)) or len(out) <= JSON_OUTPUT or not out[JSON_OUTPUT]:
        raise ValueError(f"incomplete answer: {type(out).__name__} of {len(out) if hasattr(out, '__len__') else '?'}")
    path = out[JSON_OUTPUT]
    pred = json.loads(Path(path if isinstance(path, str) else path["path"]).read_text())
    if not isinstance(pred, dict) or not pred:
        raise ValueError("prediction.json is empty")


def one_request(client, checkpoint: str, timeout: float) -> float:
    """Send one /analyze request, wait for its answer (at most ``timeout`` s), check it; returns the latency (s).
    Raises TimeoutError when no answer came in time, any other exception when the request failed."""
    from gradio_client import handle_file

    t0 = time.perf_counter()
    job = client.submit(handle_file(str(EXAMPLE)), None, None, checkpoint, CLAIM, QUESTION, api_name="/analyze")
    out = job.result(timeout=timeout)
    latency = time.perf_counter() - t0
    check_output(out)
    return latency


def run_load(url: str, clients: int, requests: int, checkpoint: str, timeout: float) -> tuple[list[Outcome], float]:
    """``clients`` threads, each with its own Client (connected first), send ``requests`` requests one after the
    other; all threads start together. Returns every request's outcome and the wall time (s, first submit to last
    answer). Bounded by ``timeout`` overall: a request still unanswered then counts as lost."""
    from gradio_client import Client

    conns = [Client(url, verbose=False, download_files=True) for _ in range(clients)]
    start = threading.Barrier(clients + 1, timeout=60)

    def worker(i: int) -> list[Outcome]:
        start.wait()
        outs = []
        for _ in range(requests):
            o = Outcome(client=i)
            left = deadline - time.perf_counter()
            if left <= 0:
                o.lost = True
            else:
                try:
                    o.latency = one_request(conns[i], checkpoint, left)
                except TimeoutError:
                    o.lost = True
                except Exception as err:  # noqa: BLE001 (a failed request is a result here)
                    o.error = f"{type(err).__name__}: {err}"
            outs.append(o)
        return outs

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(worker, i) for i in range(clients)]
        deadline = time.perf_counter() + timeout
        t0 = time.perf_counter()
        start.wait()
        per_client = [f.result() for f in futures]
    return [o for outs in per_client for o in outs], time.perf_counter() - t0


def queue_settings() -> dict[str, int | None]:
    """The queue settings of app.py's page (concurrency limit of the default event, queue size)."""
    import app

    return {
        "default_concurrency_limit": app.demo._queue.default_concurrency_limit,
        "max_size": app.demo._queue.max_size,
    }


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0-100) of xs, linear between the closest ranks."""
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def measure(clients: int, requests: int, checkpoint: str, timeout: float) -> LoadResult:
    """Start app.py, warm it up, put it under load, check it afterwards, stop it."""
    from gradio_client import Client

    with AppServer(env={"AVLLM_CHECKPOINT": checkpoint}) as server, RssSampler(server.proc.pid) as rss:
        warm = Client(server.url, verbose=False)
        warmup = one_request(warm, checkpoint, timeout)
        alone = one_request(warm, checkpoint, timeout)
        outcomes, wall = run_load(server.url, clients, requests, checkpoint, timeout)
        try:
            one_request(warm, checkpoint, timeout)
            after_ok = server.alive()
        except Exception:  # noqa: BLE001
            after_ok = False
    return LoadResult(outcomes, wall, rss.peak, rss.peak_tree, warmup, alone, after_ok, queue_settings())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1, help="requests per client, one after the other")
    parser.add_argument("--checkpoint", default="assets/avllm-tiny")
    parser.add_argument("--timeout", type=float, default=300.0, help="hard limit (s) for the whole load")
    args = parser.parse_args(argv)

    r = measure(args.clients, args.requests, args.checkpoint, args.timeout)
    n = len(r.outcomes)
    print(
        f"app.py queue: default_concurrency_limit={r.queue['default_concurrency_limit']}, "
        f"max_size={r.queue['max_size']}; server OMP_NUM_THREADS=1; clip {EXAMPLE.name}"
    )
    print(f"warm-up request (model load included): {r.warmup:.2f} s; one request alone: {r.alone:.2f} s")
    print(
        "| clients x requests | ok | failed | lost | p50 (s) | p95 (s) | max (s) | wall (s) | peak RSS server "
        "(MB) | peak RSS with children (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lat = r.ok
    p50, p95, mx = (percentile(lat, 50), percentile(lat, 95), max(lat)) if lat else (float("nan"),) * 3
    print(
        f"| {args.clients} x {args.requests} | {len(lat)}/{n} | {len(r.failed)} | {len(r.lost)} | {p50:.2f} | "
        f"{p95:.2f} | {mx:.2f} | {r.wall:.2f} | {r.peak_rss / 2**20:.0f} | {r.peak_rss_tree / 2**20:.0f} |"
    )
    print(
        f"throughput: {len(lat) / r.wall:.2f} requests/s ({len(lat) * r.alone / r.wall:.2f}x one request "
        f"at a time); p50 / alone: {p50 / r.alone:.1f}; server answered after the load: {r.after_ok}"
    )
    for o in r.failed:
        print(f"client {o.client} failed: {o.error}")
    return 0 if len(lat) == n and r.after_ok else 1


if __name__ == "__main__":
    sys.exit(main())
