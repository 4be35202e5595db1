"""The project's own CPU kernels (`cpukernels.cpp`): built on first use with the system's
C++ compiler, loaded with ctypes and called directly by eager passes; the int4 product is
also registered as the operator `lsp_llm::q4_linear` so a graph being compiled can hold it.

**GGUF block formats.** `block_linear` multiplies by a weight whose rows are in any of the
formats `ggufblocks.FORMATS` names, as a GGUF file holds them (`ggufmodel.py` serves whole
files that way), and `block_rows` reads rows of one (an embedding). Where the CPU lists
AVX-512 (F, BW, DQ, VL; VNNI when listed) the build adds those instruction sets: loops per
format for a decoding step, and integer sums over a K format's super-block for prompts.
With VNNI, a prompt's rows (`Kernel.int8_rows` or more) in Q4_0, Q5_0, Q8_0 and the K
formats (the Qwen files') are held as int8 per 32 inputs, as llama.cpp holds them: one
instruction multiplies 64 inputs where int16 takes two for 32. A decoding step's one row
is int8 too in the K formats, and so are a verify pass's few rows (`Kernel.int8_decoding`:
each super-block decoded once, into registers, for all of them), whose codes are unsigned
and so go into that instruction as the file holds them; Q4_0/Q5_0/Q8_0 decode in int16, and so do
Q4_1/Q5_1 always (SmolLM2's file and the int4 packing below).

**int4 products.** torch's `_weight_int4pack_mm_for_cpu` turns every int4 weight into a
float and multiplies in floating point, which on an AVX2 CPU without bfloat16 or AVX-512
instructions costs more than reading the weights. `q4_linear` holds the few rows of
activations as int16 per block of 32 (about 16 bits) and takes each block's dot product
in integer arithmetic, 16 products and their pairwise sums in one instruction. Not int8,
as llama.cpp rounds them: that cost SmolLM2 eval similarity; not two int8 parts either, as
precise as int16 and twice the instructions.

**Attention of one new token** (`attend`): PyTorch's CPU flash attention, given one query
row, reads each key/value head once per query head; `attend` reads it once for all of
them. It serves eager passes whose layers run as PyTorch operations; the native layers
(`nativelayers.py`) have their own attention over a float16 cache.

Through the dispatcher, as a compiled graph must call it, each product costs more than
called directly, enough to make a compiled pass slower, so
`LeanCache.compile_decode_step` packs the layers for torch's kernel instead (and its graph
keeps PyTorch's attention). The measurements behind these choices are in
docs/engine-decisions.md (`tests/test_native.py` checks the results, not the times).

Built into lsp-llm's cache (`~/.cache/lsp-llm/kernels/`, keyed by the source, compiler
and flags) once, in about a second. Where there is no x86-64 CPU with AVX2/FMA/F16C, no
compiler, or the build fails, `kernel()` returns None and PyTorch's kernels are used
(`LSP_LLM_NATIVE_KERNELS=0` asks for that too).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import subprocess
import threading
from importlib.resources import files
from pathlib import Path

import torch

from lsp_llm.engine.cpu.compiled import cxx_compiler

logger = logging.getLogger(__name__)

BLOCK = 32
MAX_ROWS = 16
"""Passes feeding up to this many tokens run through the native layers when the model also
has float weights (a longer prompt is read faster by float32's GEMM)."""
MAX_KERNEL_ROWS = 64
"""Rows of activations one kernel call takes (a prompt is read in chunks of this many)."""
FLAGS = ("-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp", "-shared", "-fPIC")
CPU_FLAGS = ("avx2", "fma", "f16c")
AVX512_FLAGS = ("-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl")
AVX512_CPU = ("avx512f", "avx512bw", "avx512dq", "avx512vl")
"""Where the CPU has these, the kernels are built with AVX-512 too (named instruction sets,
never -march=native: a CPU may list AMX without the process being granted it)."""


def build_flags() -> tuple[str, ...]:
    """The compiler flags for this CPU."""
    if os.environ.get("LSP_LLM_AVX512", "1") == "0" or not _cpu_has(AVX512_CPU):
        return FLAGS
    if _cpu_has(("avx512_vnni",)):
        return FLAGS + AVX512_FLAGS + ("-mavx512vnni",)
    return FLAGS + AVX512_FLAGS


_lock = threading.Lock()
_state: dict[str, object] = {}


def _cpu_has(flags: tuple[str, ...]) -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return all(f in have for f in flags)
    return False


def _cache_dir() -> Path:
    from lsp_llm.engine.cachedir import cache_root

    return cache_root() / "kernels"


def _build(source: str, compiler: str) -> Path:
    """The shared library for `source`, compiled once into the cache (atomically: a
    concurrent build by another process cannot leave a half-written file behind)."""
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    flags = build_flags()
    key = hashlib.sha256("\n".join([source, *flags, *version]).encode()).hexdigest()[:16]
    out = _cache_dir() / f"cpukernels-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(f".{os.getpid()}.cpp")
    tmp = out.with_suffix(f".{os.getpid()}.so")
    src.write_text(source)
    try:
        done = subprocess.run(
            [compiler, *flags, str(src), "-o", str(tmp)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[:500]}")
        os.replace(tmp, out)
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


class Kernel:
    """The loaded library."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        if lib.q4_block() != BLOCK or lib.q4_max_rows() != MAX_KERNEL_ROWS:
            raise RuntimeError("the library's block or row limit differs from native.py's")
        p, i = ctypes.c_void_p, ctypes.c_int
        lib.q4_linear.argtypes = [p, i, i, p, i, p, i]
        lib.q4_linear.restype = i
        f = ctypes.c_float
        lib.attend.argtypes = [p, p, p, i, i, i, i, i, f, p, i]
        lib.attend.restype = i
        lib.decode_layers.argtypes = [p, p, p, f, f, p, i, i, p, p, p, p, i, i]
        lib.decode_layers.restype = i
        lib.block_linear.argtypes = [i, p, i, i, p, i, p, i]
        lib.block_linear.restype = i
        lib.block_rows.argtypes = [i, p, i, p, i, p]
        lib.block_rows.restype = i
        lib.gguf_row_bytes.argtypes = [i, i]
        lib.gguf_row_bytes.restype = ctypes.c_longlong
        self._block_linear = lib.block_linear
        self._block_rows = lib.block_rows
        self._row_bytes = lib.gguf_row_bytes
        self._linear = lib.q4_linear
        self._attend = lib.attend
        self.decode_layers = lib.decode_layers
        """Every layer of a pass over a few tokens (`nativelayers.py` calls it)."""
        self.max_dim = int(lib.attend_max_dim())
        self.int8_rows = int(lib.int8_rows())
        """Activation rows from which a product in Q4_0, Q5_0, Q8_0 or a K format holds
        them as int8 per 32 inputs (a prompt, with VNNI); 0 where it never does."""
        lib.int8_decoding.restype = i
        self.int8_decoding = int(lib.int8_decoding())
        """Up to how many activation rows (a decoding step, a verify pass over a draft) a
        K format's product holds them as int8 per 32 inputs too (with VNNI); 0: never."""
        self.path = path

    def linear(self, x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        """[n, in] float activations (n <= MAX_KERNEL_ROWS) times `Q4Blocks.blocks` -> [n, out]
        float32."""
        x = x.to(torch.float32).contiguous()
        n, inp = x.shape
        out = blocks.shape[0]
        y = torch.empty(n, out, dtype=torch.float32)
        code = self._linear(
            blocks.data_ptr(), out, inp, x.data_ptr(), n, y.data_ptr(), torch.get_num_threads()
        )
        if code != 0:
            raise ValueError(f"q4_linear refused [{n}, {inp}] activations (code {code})")
        return y

    def row_bytes(self, fmt: int, inputs: int) -> int:
        """Bytes of one row of `inputs` weights in GGUF format `fmt`; -1 where the kernels
        cannot read such rows."""
        return int(self._row_bytes(fmt, inputs))

    def block_linear(
        self, fmt: int, x: torch.Tensor, rows: torch.Tensor, inputs: int
    ) -> torch.Tensor:
        """x [n, inputs] times the weight whose rows (format `fmt`, as a GGUF file holds
        them) are `rows` [out, row bytes] -> [n, out] float32, any n (fed to the kernel
        `MAX_KERNEL_ROWS` at a time)."""
        x = x.to(torch.float32).contiguous()
        n = int(x.shape[0])
        out = int(rows.shape[0])
        y = torch.empty(n, out, dtype=torch.float32)
        threads = torch.get_num_threads()
        for start in range(0, n, MAX_KERNEL_ROWS):
            take = min(MAX_KERNEL_ROWS, n - start)
            code = self._block_linear(
                fmt,
                rows.data_ptr(),
                out,
                inputs,
                x[start].data_ptr(),
                take,
                y[start].data_ptr(),
                threads,
            )
            if code != 0:
                raise ValueError(
                    f"block_linear refused format {fmt} [{take}, {inputs}] (code {code})"
                )
        return y

    def block_rows(
        self, fmt: int, rows: torch.Tensor, inputs: int, ids: torch.Tensor
    ) -> torch.Tensor:
        """Rows `ids` of the weight `rows` (format `fmt`) as float32 [len(ids), inputs]."""
        ids = ids.to(torch.int64).contiguous()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= rows.shape[0]):
            raise IndexError(f"row ids must be in 0..{rows.shape[0] - 1}")
        out = torch.empty(int(ids.numel()), inputs, dtype=torch.float32)
        code = self._block_rows(
            fmt, rows.data_ptr(), inputs, ids.data_ptr(), int(ids.numel()), out.data_ptr()
        )
        if code != 0:
            raise ValueError(f"block_rows refused format {fmt} with {inputs} inputs (code {code})")
        return out

    def attends(self, heads: int, kv_heads: int, head_dim: int) -> bool:
        """Whether `attend` takes a model of these sizes."""
        return (
            heads % kv_heads == 0
            and heads // kv_heads <= 16
            and head_dim % 8 == 0
            and head_dim <= self.max_dim
        )

    def attend(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        length: int,
        scale: float,
    ) -> torch.Tensor:
        """One new token's attention: q [1, heads, 1, dim] float32 over the first `length`
        positions of keys/values [1, kv_heads, capacity, dim] (contiguous float32) ->
        [1, heads, 1, dim]."""
        _, heads, _, dim = q.shape
        _, kv, cap, _ = keys.shape
        if keys.dtype != torch.float32 or not (keys.is_contiguous() and values.is_contiguous()):
            raise ValueError("attend needs contiguous float32 keys and values")
        q = q.to(torch.float32).contiguous()
        out = torch.empty(1, heads, 1, dim, dtype=torch.float32)
        code = self._attend(
            q.data_ptr(),
            keys.data_ptr(),
            values.data_ptr(),
            kv,
            heads // kv,
            cap,
            length,
            dim,
            scale,
            out.data_ptr(),
            torch.get_num_threads(),
        )
        if code != 0:
            raise ValueError(f"attend refused {heads} heads over {kv} at {length}/{cap} ({code})")
        return out


def kernel() -> Kernel | None:
    """The kernel, built and loaded on the first call; None where it cannot run here (the
    reason is logged once)."""
    with _lock:
        if "kernel" not in _state:
            _state["kernel"] = _load()
        found = _state["kernel"]
    return found if isinstance(found, Kernel) else None


def _load() -> Kernel | None:
    if os.environ.get("LSP_LLM_NATIVE_KERNELS", "1") == "0":
        return None
    if not _cpu_has(CPU_FLAGS):
        logger.info("native kernels: this CPU lacks %s; PyTorch's are used", CPU_FLAGS)
        return None
    compiler = cxx_compiler()
    if compiler is None:
        logger.info("native kernels: no C++ compiler; PyTorch's are used")
        return None
    try:
        source = files("lsp_llm.engine.cpu").joinpath("cpukernels.cpp").read_text()
        found = Kernel(_build(source, compiler))
        _register(found)
        return found
    except Exception as exc:  # any build or load fault: torch's kernel instead
        logger.warning("native kernels unavailable, using PyTorch's: %s", exc)
        return None


def _register(k: Kernel) -> None:
    """`torch.ops.lsp_llm.q4_linear`: an operator torch.compile can put in a graph (it
    sees only its output's shape); registered straight on the CPU dispatch key, which
    costs a few microseconds a call less than `torch.library.custom_op`."""
    if hasattr(torch.ops.lsp_llm, "q4_linear"):
        return
    lib = torch.library.Library("lsp_llm", "DEF")
    lib.define("q4_linear(Tensor x, Tensor blocks) -> Tensor")
    lib.impl("q4_linear", k.linear, "CPU")

    @torch.library.register_fake("lsp_llm::q4_linear")
    def _shape(x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
        return x.new_empty(x.shape[0], blocks.shape[0], dtype=torch.float32)

    _state["library"] = lib  # the registration lives as long as this object


class Q4Blocks:
    """A float [out, in] weight as int4 blocks of 32 inputs with a float16 scale and
    minimum each (GGUF's Q4_1 layout), multiplied by `kernel()`'s `q4_linear`. Outside a
    graph being compiled the kernel is called directly, which saves the dispatcher's few
    microseconds on each of a pass's 121 products."""

    def __init__(self, weight: torch.Tensor, kernel: Kernel) -> None:
        w = weight.detach().float()
        out, inp = w.shape
        if inp % BLOCK:
            raise ValueError(f"int4 needs inputs in blocks of {BLOCK}, got {inp}")
        g = w.reshape(out, inp // BLOCK, BLOCK)
        low = g.amin(dim=-1).half()
        d = ((g.amax(dim=-1) - low.float()) / 15).clamp(min=1e-8).half()
        q = torch.round((g - low.float()[..., None]) / d.float()[..., None]).clamp(0, 15)
        q = q.to(torch.uint8)
        codes = q[..., :16] | (q[..., 16:] << 4)
        scales = torch.stack((d, low), dim=-1).view(torch.uint8)  # [out, blocks, 4]
        self.blocks = torch.cat((scales, codes), dim=-1).contiguous()
        self.kernel = kernel

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return torch.ops.lsp_llm.q4_linear(x, self.blocks)
        return self.kernel.linear(x, self.blocks)

    def dequantized(self) -> torch.Tensor:
        """The weight the blocks stand for, in float32."""
        d, m = self.blocks[..., :4].contiguous().view(torch.float16).float().unbind(-1)
        codes = self.blocks[..., 4:]
        q = torch.cat((codes & 15, codes >> 4), dim=-1).float()
        return (q * d[..., None] + m[..., None]).reshape(self.blocks.shape[0], -1)
