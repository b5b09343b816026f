"""Bad input through every entry point: the corpus of tests/bad_corpus.py (every case, by default) through the
Python predictor, the command line and the running web app, with a good clip sent to the app after each case.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_resilience.py [--entries predictor cli app] [--cli per-file]
        [--cases corrupt_bytes,nan_audio] [--json out.json] [--from-json out.json]

Entry points (tests/entry_points.py):
    predictor  load_clip_from_config + run_prediction in this process (the shipped checkpoint, loaded once)
    cli        python -m avllm.predict: ``--cli per-file`` starts one program per case (the real boundary: exit
               status and stderr); ``--cli batch`` calls avllm.predict.main for every case in one new process
    app        app.py started on 127.0.0.1 on a free port, /analyze called with gradio_client; after each case a
               good 1 s clip is analysed and must give the same answers as the first time ("health")

Prints one row per case and entry point (outcome, the result's media summary or the message, seconds, the app's
health after the case), then counts per outcome and entry point and the slowest cases. Torch runs one thread in
every entry point (OMP_NUM_THREADS=1 for the CLI and the app, torch.set_num_threads(1) here).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import bad_corpus as bc
import entry_points as ep

KINDS = ("result", "message", "generic", "unclear", "crash", "hang", "bad_result")


def log_exceptions(log: str) -> list[str]:
    """The exception line of every traceback in a server log."""
    lines, found = log.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            found.append(lines[j][:160] if j < len(lines) else "(cut)")
    return found


def _row(o: ep.Outcome, case: bc.Case) -> str:
    health = "" if o.healthy is None else ("ok" if o.healthy else f"FAILED: {o.health_note}")
    text = o.short(90).replace("|", "/")
    return f"| {o.case} | {o.entry} | {case.expect} | {o.kind} | {text} | {o.seconds:.2f} | {health} |"


def run(args) -> list[ep.Outcome]:
    import torch

    torch.set_num_threads(1)
    names = args.cases.split(",") if args.cases else bc.NAMES
    tmp = Path(tempfile.mkdtemp(prefix="bench_resilience_"))
    cases = [bc.case(n) for n in names]
    t0 = time.perf_counter()
    built = {c.name: c.build(tmp / "corpus") for c in cases}
    good = bc.good_clip(tmp / "good.mp4")
    print(f"corpus: {len(built)} cases written in {time.perf_counter() - t0:.1f} s\n", flush=True)
    print("| case | entry | expected | outcome | result / message | s | app health after |")
    print("|---|---|---|---|---|---:|---|", flush=True)
    outcomes: list[ep.Outcome] = []

    if "predictor" in args.entries:
        from avllm.predictor import Predictor

        predictor = Predictor.from_checkpoint(REPO / args.checkpoint)
        for c in cases:
            outcomes.append(ep.predictor_entry(predictor, built[c.name], c.name))
            print(_row(outcomes[-1], c), flush=True)
        del predictor

    if "cli" in args.entries:
        ckpt = str(REPO / args.checkpoint)
        if args.cli == "batch":
            t1 = time.perf_counter()
            got = ep.cli_batch([(c.name, built[c.name]) for c in cases], tmp / "cli", ckpt, timeout=3600)
            print(f"cli batch: one process, {time.perf_counter() - t1:.1f} s in all", flush=True)
        else:
            got = []
            for c in cases:
                got.append(ep.cli_entry(built[c.name], tmp / "cli" / c.name, c.name, ckpt, timeout=300))
                shutil.rmtree(tmp / "cli" / c.name, ignore_errors=True)
        for c, o in zip(cases, got):
            outcomes.append(o)
            print(_row(o, c), flush=True)

    if "app" in args.entries:
        from browser_util import AppServer

        t1 = time.perf_counter()
        with AppServer(env={"AVLLM_CHECKPOINT": args.checkpoint}, start_timeout=180) as server:
            print(f"app: started in {time.perf_counter() - t1:.1f} s on {server.url}", flush=True)
            app = ep.AppDriver(server.url, args.checkpoint)
            ok, why = app.health(good)
            print(f"app: first good clip: {'ok' if ok else 'FAILED'} ({why})", flush=True)
            for c in cases:
                o = app.analyze(built[c.name], c.name, timeout=args.timeout)
                t2 = time.perf_counter()
                o.healthy, o.health_note = app.health(good, timeout=args.timeout)
                o.health_note += f" ({time.perf_counter() - t2:.1f} s)"
                o.healthy = o.healthy and server.alive()
                outcomes.append(o)
                print(_row(o, c), flush=True)
            app.close()
            errors = log_exceptions(server.log())
            print(f"app: alive at the end: {server.alive()}; tracebacks in its log: {len(errors)}")
            for line in errors:
                print(f"  {line}")
    shutil.rmtree(tmp, ignore_errors=True)
    return outcomes


def summary(outcomes: list[ep.Outcome]) -> None:
    entries = list(dict.fromkeys(o.entry for o in outcomes))
    print("\n| entry point | cases | " + " | ".join(KINDS) + " | health after each (app) | slowest case (s) |")
    print("|---|---:|" + "---:|" * len(KINDS) + "---|---|")
    for e in entries:
        mine = [o for o in outcomes if o.entry == e]
        counts = collections.Counter(o.kind for o in mine)
        checked = [o for o in mine if o.healthy is not None]
        health = f"{sum(o.healthy for o in checked)} / {len(checked)} ok" if checked else "-"
        slow = max(mine, key=lambda o: o.seconds)
        print(f"| {e} | {len(mine)} | " + " | ".join(str(counts.get(k, 0)) for k in KINDS)
              + f" | {health} | {slow.case} ({slow.seconds:.1f}) |")  # fmt: skip
    wrong = [o for o in outcomes if o.kind not in ep.GOOD_KINDS or o.healthy is False]
    expected = {c.name: c.expect for c in bc.CASES}
    off = [o for o in outcomes if expected[o.case] != "either" and o.kind in ep.GOOD_KINDS
           and o.kind != {"result": "result", "error": "message"}[expected[o.case]]]  # fmt: skip
    print(f"\nnot a result or a readable message, or unhealthy after: {len(wrong)}; "
          f"outcome other than expected: {len(off)}")  # fmt: skip
    for o in wrong + off:
        print(f"  {o.case} via {o.entry}: {o.kind}: {o.text} {o.health_note if o.healthy is False else ''}")


def wide_table(outcomes: list[ep.Outcome]) -> None:
    """One row per case: what it is, then each entry point's outcome and seconds, and the message or result."""
    entries = list(dict.fromkeys(o.entry for o in outcomes))
    by = {(o.case, o.entry): o for o in outcomes}
    print("\n| case | input | " + " | ".join(f"{e} (s)" for e in entries) + " | message, or the result's media |")
    print("|---|---|" + "---|" * len(entries) + "---|")
    for c in bc.CASES:
        got = [by.get((c.name, e)) for e in entries]
        if not any(got):
            continue
        cells = []
        for o in got:
            if o is None:
                cells.append("-")
            else:
                health = "" if o.healthy is None else (", then ok" if o.healthy else ", then UNHEALTHY")
                cells.append(f"{o.kind} ({o.seconds:.1f}{health})")
        first = next(o for o in got if o is not None)
        print(f"| {c.name} | {c.what} | " + " | ".join(cells) + f" | {first.short(80).replace('|', '/')} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", nargs="+", default=["predictor", "cli", "app"],
                        choices=["predictor", "cli", "app"])  # fmt: skip
    parser.add_argument("--cli", choices=["per-file", "batch"], default="per-file")
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    parser.add_argument("--checkpoint", default=ep.CHECKPOINT)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per app request")
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    parser.add_argument("--from-json", type=Path, help="print the tables of an earlier run's --json, run nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        outcomes = [ep.Outcome(**row) for row in json.loads(args.from_json.read_text())]
        summary(outcomes)
        wide_table(outcomes)
        return
    t0 = time.perf_counter()
    outcomes = run(args)
    summary(outcomes)
    wide_table(outcomes)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([ep.outcome_row(o) for o in outcomes], indent=1))


if __name__ == "__main__":
    main()
