"""The CUDA path (marked `cuda`; skipped where torch sees no CUDA device): loading in
bfloat16, 8-bit and 4-bit NF4, greedy text equal to the CPU's, a cancel within one decoding
step, the draft on the same device, out-of-memory as a clear error, and a chat and a
completion through `lsp-llm serve` over stdio on the GPU. `scripts/gpu-check` runs these
first on a GPU machine."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lsp_llm.config import Settings
from lsp_llm.engine.decoding import Decoder
from lsp_llm.engine.load.loading import ModelLoadError, load
from lsp_llm.generation.types import GenerationRequest, Speculation
from tests.test_engine import cancelled_at_third_pass, prompts, run

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.fixture(scope="module")
def on_gpu(tiny):
    return load(Settings(model=str(tiny.target), draft_model=str(tiny.draft), device="cuda"))


def test_loads_on_the_gpu_in_16_bits_with_its_draft_beside_it(on_gpu):
    assert on_gpu.device == "cuda"
    weight = on_gpu.model.get_input_embeddings().weight
    assert weight.is_cuda and weight.dtype in (torch.bfloat16, torch.float16)
    assert on_gpu.draft_model is not None
    assert on_gpu.draft_model.get_input_embeddings().weight.device == weight.device


def test_greedy_text_is_the_cpu_s_in_float32(tiny):
    texts = []
    for device in ("cpu", "cuda"):
        loaded = load(Settings(model=str(tiny.target), device=device, dtype="float32"))
        ids = prompts(loaded.tokenizer, 1)[0]
        done, _ = run(
            Decoder(loaded.model, loaded.tokenizer),
            GenerationRequest(ids, 32, speculation=Speculation("off")),
        )
        texts.append(done.token_ids)
    assert texts[0] == texts[1]


@pytest.mark.parametrize("mode", ["off", "draft"])
def test_a_cancel_stops_within_one_pass(on_gpu, mode):
    model, tokenizer = on_gpu.model, on_gpu.tokenizer
    done, passes = cancelled_at_third_pass(model, tokenizer, on_gpu.draft_model, mode)
    assert done.reason == "cancelled"
    assert passes == 3
    assert done.stats.forwards_after_cancel == 1


def test_the_draft_on_the_gpu_gives_the_target_s_greedy_text(tiny):
    # float32: in 16 bits a verify pass's kernels round otherwise than a step's, and a
    # near-tie may go the other way
    wide = load(
        Settings(
            model=str(tiny.target), draft_model=str(tiny.draft), device="cuda", dtype="float32"
        )
    )
    ids = prompts(wide.tokenizer, 1)[0]
    twin = Decoder(wide.model, wide.tokenizer, wide.model)  # every draft accepted
    plain, _ = run(twin, GenerationRequest(ids, 40, speculation=Speculation("off")))
    fast, _ = run(twin, GenerationRequest(ids, 40, speculation=Speculation("draft", 6)))
    assert fast.token_ids == plain.token_ids
    assert fast.stats.target_forwards < plain.stats.target_forwards
    drafted = Decoder(wide.model, wide.tokenizer, wide.draft_model)
    other, _ = run(drafted, GenerationRequest(ids, 40, speculation=Speculation("draft", 6)))
    assert other.token_ids == plain.token_ids


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_bitsandbytes_weights_load_and_generate(tiny, quantization):
    pytest.importorskip("bitsandbytes")
    loaded = load(Settings(model=str(tiny.target), device="cuda", quantization=quantization))
    assert loaded.quantization == quantization
    done, deltas = run(
        Decoder(loaded.model, loaded.tokenizer),
        GenerationRequest(prompts(loaded.tokenizer, 1)[0], 16, speculation=Speculation("off")),
    )
    assert len(done.token_ids) > 0 and "".join(deltas) == done.text


def test_out_of_memory_is_a_clear_error(tmp_path):
    from lsp_llm.bench.shapes import SHAPES, build_shape_model

    # about 630 MB in 16 bits (4 layers, the embedding and the head of the 0.5B's shape)
    folder = build_shape_model(replace(SHAPES["qwen2.5-coder-0.5b"], layers=4), tmp_path / "m")
    torch.cuda.empty_cache()
    _free, total = torch.cuda.mem_get_info()
    # the allocator may hold 64 MiB more than it holds now: the model cannot fit
    torch.cuda.set_per_process_memory_fraction(
        min(1.0, (torch.cuda.memory_reserved() + 64 * 2**20) / total)
    )
    try:
        with pytest.raises(ModelLoadError, match="out of memory"):
            load(Settings(model=str(folder), device="cuda", quantization="none"))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


@pytest.mark.asyncio(loop_scope="module")
async def test_a_chat_and_a_completion_through_the_server_on_the_gpu(tiny, tmp_path):
    from lsp_llm.client import ServerSession

    statuses: list[dict] = []
    session = ServerSession(
        {"model": str(tiny.target), "draftModel": str(tiny.draft), "device": "cuda"},
        on_status=statuses.append,
    )
    await session.start()
    try:
        uri = session.open(tmp_path / "a.py", "import os\n\ndef main():\n    ")
        result = await session.inline(uri, 3, 4)
        assert result is not None and result.items and result.items[0].insert_text.strip()
        deltas: list[str] = []
        reply = await session.chat([{"role": "user", "content": "Say hello."}], deltas.append)
        assert deltas and "".join(deltas).strip()
        assert reply is not None
    finally:
        await session.close()
    ready = [s for s in statuses if s.get("state") == "ready"]
    assert ready and ready[-1].get("device", "cuda").startswith("cuda")
