"""The README's Python snippet runs as written (from the repository root) and does what its comments say."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _snippet(section: str) -> str:
    text = (REPO / "README.md").read_text()
    part = text.split(f"## {section}", 1)[1]
    m = re.search(r"```python\n(.*?)```", part, re.S)
    assert m, f"no python block in README section {section!r}"
    return m.group(1)


@pytest.mark.skipif(not (REPO / "assets" / "avllm-tiny" / "model.safetensors").is_file(),
                    reason="no shipped checkpoint")
def test_quick_start_snippet_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    env: dict = {}
    exec(compile(_snippet("Quick start (Python)"), "README.md", "exec"), env)  # noqa: S102 — our own README
    pred = env["prediction"]
    json.dumps(pred.to_dict())
    assert env["maps"]["ssl"].shape == (8, 8)
    assert all(len(b) == 4 for b in env["answer"].boxes)
    assert all(s[0] <= s[1] for s in env["when"].segments)
