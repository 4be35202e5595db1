"""Converting a Hugging Face model folder to GGUF for the llama.cpp peer, with the
converter that ships in the llama-cpp-python source distribution (fetched once from the
package registry by pip and cached; no model hub involved)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
from pathlib import Path

KEEP = ("convert_hf_to_gguf.py", "gguf-py/", "conversion/")

# Run in a subprocess: the converter reads sys.argv and puts its own modules on sys.path.
# Our tokenizer is self-trained, so the converter's table of known pre-tokenizers (keyed
# by a hash of token ids) does not know it; it uses Qwen2's split regex, so "qwen2" is
# the right answer (facts.md).
_CONVERT = """
import sys
src, model, out, outtype = sys.argv[1:5]
sys.path[:0] = [src, src + "/gguf-py"]
import conversion.base
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
import convert_hf_to_gguf
sys.argv = ["convert_hf_to_gguf.py", model, "--outfile", out, "--outtype", outtype]
convert_hf_to_gguf.main()
"""


def converter_source(cache: Path) -> Path:
    """`vendor/llama.cpp` of the installed llama-cpp-python's sdist, unpacked under `cache`."""
    version = importlib.metadata.version("llama-cpp-python")
    target = cache / f"llama.cpp-{version}"
    if (target / "convert_hf_to_gguf.py").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*pip, f"llama-cpp-python=={version}", "-d", str(cache)], check=True)
    tarball = next(cache.glob(f"llama_cpp_python-{version}.tar.gz"))
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/vendor/llama.cpp/", 1)
            if len(parts) == 2 and parts[1].startswith(KEEP) and member.isfile():
                member.name = parts[1]
                tar.extract(member, target, filter="data")
    return target


def convert(model_dir: Path, out: Path, cache: Path, outtype: str = "f32") -> Path:
    """`model_dir` as a GGUF file at `out` (kept if it is newer than the weights)."""
    weights = max(p.stat().st_mtime for p in model_dir.iterdir())
    if out.exists() and out.stat().st_mtime > weights:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    src = converter_source(cache)
    subprocess.run(
        [sys.executable, "-c", _CONVERT, str(src), str(model_dir), str(out), outtype],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def requantize(gguf: Path, out: Path, ftype: str = "f16") -> Path:
    """`gguf` rewritten by llama.cpp's own quantizer in another format (`f16`, `q8_0`;
    kept if newer than the source): the peer's figures for the same weights, unpacked."""
    import llama_cpp

    if out.exists() and out.stat().st_mtime > gguf.stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    codes = {"f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16, "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = codes[ftype]
    params.allow_requantize = True
    status = llama_cpp.llama_model_quantize(str(gguf).encode(), str(out).encode(), params)
    if status != 0:
        raise RuntimeError(f"llama.cpp could not write {out} as {ftype} (status {status})")
    return out
