"""The `compile` setting: a decoding step's layers compiled by torch.compile compute what
the eager pass computes, every cache over the model shares one compilation, a compiler
fault falls back to eager with a warning, and the setting reaches the engine."""

from __future__ import annotations

import pytest
import torch

from lsp_llm.config import Settings, parse_settings
from lsp_llm.engine.cpu.compiled import CompiledStep, cxx_compiler
from lsp_llm.engine.leanforward import LeanCache
from lsp_llm.engine.load.loading import load
from lsp_llm.engine.worker import Engine
from lsp_llm.generation.types import GenerationRequest, Speculation

needs_compiler = pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler")


@needs_compiler
@pytest.mark.parametrize("weights", ["float", "int4"])
def test_compiled_step_computes_the_eager_pass_and_forks_share_it(loaded, weights):
    model = loaded.model
    prompt = list(range(5, 45))
    compiled = LeanCache(model, weights)
    compiled.compile_decode_step()
    # the compiled layers multiply int4 with torch's kernel and attend with PyTorch's:
    # so does the eager twin here; the output head stays eager in both, the same one
    eager = _twin(model, weights, compiled)
    step = compiled.step
    assert step is not None
    torch._dynamo.reset()  # compiled by an earlier test, the graph would be reused
    before = _graphs()
    with torch.inference_mode():
        # a one-token prompt: the compiled pass at position 0
        torch.testing.assert_close(compiled.forward([5]), eager.forward([5]))
        for cache in (eager, compiled):
            cache.forward(prompt)
        for token in (7, 300, 11, 900):
            want, got = eager.forward([token]), compiled.forward([token])
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            assert int(got.argmax()) == int(want.argmax())
        assert step.failed is None and step.ready
        graphs = _graphs()
        assert graphs > before  # a graph was compiled, and ran
        # a fork (another lane) and a cache past the first capacity reuse the graph
        fork = compiled.fork()
        fork.forward(list(range(3, 600)))
        torch.testing.assert_close(
            fork.forward([9]), _eager_after(model, weights, compiled, 600, 9)
        )
    assert fork.step is step and step.failed is None
    assert _graphs() == graphs  # no other graph for other positions, caches or sizes


def _twin(model, weights, compiled):
    cache = LeanCache(model, weights, native=False)
    cache.head_proj = compiled.head_proj
    return cache


def _eager_after(model, weights, compiled, length, token):
    cache = _twin(model, weights, compiled)
    cache.forward(list(range(3, length)))
    return cache.forward([token])


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def test_a_step_that_cannot_compile_stays_eager_and_says_why(caplog):
    def branchy(x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: no single graph (fullgraph)
            return x + 1
        return x - 1

    step = CompiledStep(branchy, lambda args: [])
    assert step.run(torch.ones(3)) is None and not step.ready
    assert step.failed and "compiling the decoding step failed" in caplog.text
    caplog.clear()
    assert step.run(torch.ones(3)) is None  # not tried again
    assert caplog.text == ""


@needs_compiler
def test_engine_with_compile_decodes_what_the_eager_engine_decodes(tiny):
    ids = tuple(range(10, 60))
    texts = []
    for compile_ in (False, True):
        engine = Engine(load(Settings(model=str(tiny.target), compile=compile_)))
        try:
            assert engine.loaded.warnings == []
            if compile_:  # compiled at load, before any request
                step = engine.decoder.lanes["interactive"].target.step
                assert step is not None and step.ready and step.failed is None
            done = engine.generate(GenerationRequest(ids, 12, speculation=Speculation("off")))
            texts.append(done.text)
        finally:
            engine.close()
    assert texts[0] == texts[1] and texts[0]


def test_compile_is_not_used_where_the_native_layers_run(tiny):
    """An int4 model on a CPU with the project's kernels decodes faster with them than
    with a compiled step: `compile` then says so and changes nothing."""
    from lsp_llm.engine.cpu import native
    from lsp_llm.engine.decoding import Decoder

    if native.kernel() is None:
        pytest.skip("no x86-64 CPU with AVX2/FMA/F16C or no C++ compiler here")
    loaded = load(Settings(model=str(tiny.target), quantization="4bit"))
    decoder = Decoder(loaded.model, loaded.tokenizer, None, weights="int4")
    target = decoder.lanes["interactive"].target
    assert target.native_layers is not None
    said = decoder.compile_decode_step()
    assert said is not None and "native kernels" in said
    assert target.step is None and target.native_layers is not None


def test_compile_setting_parses():
    settings, errors = parse_settings({"compile": True})
    assert errors == [] and settings.compile is True
    _settings, errors = parse_settings({"compile": "yes"})
    assert errors and "compile" in errors[0]
