"""The Atheris harness over the line codec runs for a bounded number of inputs and finds no disagreement."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = 200_000
"""About five seconds: enough for libFuzzer to reach every reason the codec gives from the seed lines."""


def test_atheris_finds_no_input_the_compiled_and_source_codecs_or_the_batch_parser_disagree_on(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.atheris_codec", f"-runs={RUNS}", f"-artifact_prefix={tmp_path}/",
         "-max_len=512", "-seed=15", str(corpus)],
        check=False, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0 and not crashes, f"{crashes}\n{done.stderr[-4000:]}"
    assert f"#{RUNS}\tDONE" in done.stderr, done.stderr[-2000:]
    # The corpus grew past the seed lines: coverage guidance reached the instrumented source codec.
    assert len(list(corpus.iterdir())) > 20, done.stderr[-2000:]
