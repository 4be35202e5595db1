"""Training examples for the bundled models: FIM examples shaped like an editor's request,
rows that never split a FIM or chat example, and the chunked losses."""

from __future__ import annotations

import itertools
import random

import pytest

from lsp_llm.train.data import (
    FIM_PREFIX_CHARS,
    FIM_SUFFIX_CHARS,
    SPM_RATE,
    Example,
    SourceFile,
    code_examples,
    examples,
    fim_example,
)
from lsp_llm.train.packing import batches, encoder, packed_rows
from lsp_llm.train.tiny import stdlib_sample


@pytest.fixture(scope="module")
def sources() -> list[SourceFile]:
    return [SourceFile(f"f{i}.py", t) for i, t in enumerate(stdlib_sample(200_000))]


def _fim_parts(ex: Example) -> tuple[str, str, str, str]:
    """The order ("psm" or "spm"), prefix, suffix and middle of a FIM example."""
    names = [p for p, _ in ex.parts]
    assert all(counted for _, counted in ex.parts)
    assert names[0] == "<|fim_prefix|>" and names[6] == "<|endoftext|>"
    if names[1] == "<|fim_suffix|>":  # PRE SUF suffix MID prefix middle
        assert names[3] == "<|fim_middle|>"
        return "spm", names[4], names[2], names[5]
    assert names[2] == "<|fim_suffix|>" and names[4] == "<|fim_middle|>"
    return "psm", names[1], names[3], names[5]


def test_fim_examples_keep_editor_sized_context_of_whole_lines(sources):
    rng = random.Random(0)
    seen = 0
    orders: dict[str, int] = {"psm": 0, "spm": 0}
    for src in itertools.islice(itertools.cycle(sources), 300):
        ex = fim_example(src.text, rng, 2400)
        if ex is None:
            continue
        seen += 1
        order, prefix, suffix, middle = _fim_parts(ex)
        orders[order] += 1
        assert middle
        assert (prefix + middle + suffix) in src.text
        # the prefix starts on a line, the suffix ends on one (or at the window's end)
        at = src.text.index(prefix + middle + suffix)
        assert at == 0 or src.text[at - 1] == "\n"
        # at most the allowed context, beyond the cursor's own line
        cursor_line = prefix[prefix.rfind("\n") + 1 :]
        assert len(prefix) - len(cursor_line) <= FIM_PREFIX_CHARS[1]
        rest_of_line = suffix.split("\n", 1)[0]
        assert len(suffix) - len(rest_of_line) <= FIM_SUFFIX_CHARS[1] + 1
    assert seen > 200
    # both orders, about half each (SPM_RATE)
    assert abs(orders["spm"] / seen - SPM_RATE) < 0.1


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_fim_order_follows_the_spm_rate(sources, rate):
    rng = random.Random(1)
    made = [fim_example(s.text, rng, 2400, rate) for s in sources[:60]]
    orders = {_fim_parts(ex)[0] for ex in made if ex is not None}
    assert orders == {"spm" if rate else "psm"}


def test_rows_have_one_length_and_never_split_fim_or_chat(sources):
    from transformers import AutoTokenizer

    from lsp_llm.engine.load.bundled import bundled_model_dir

    tok = AutoTokenizer.from_pretrained(bundled_model_dir())
    ids_of = tok.convert_tokens_to_ids
    opening = {ids_of("<|fim_prefix|>"): ids_of("<|fim_middle|>")}
    fim_end = ids_of("<|endoftext|>")
    im_start, im_end = ids_of("<|im_start|>"), ids_of("<|im_end|>")
    rows = packed_rows(encoder(tok), examples(sources, 0), code_examples(sources, 1), 200)
    whole = 0
    for ids, mask in itertools.islice(rows, 40):
        assert len(ids) == len(mask) == 200
        for i, t in enumerate(ids):
            if t in opening:  # a FIM example: its middle and end are in the same row
                j = ids.index(opening[t], i)
                assert fim_end in ids[j:]
                whole += 1
        # a chat example is whole: the row's <|im_start|> count is a multiple of 3 and the
        # last assistant turn is closed
        assert ids.count(im_start) % 3 == 0
        if im_start in ids:
            last = len(ids) - 1 - ids[::-1].index(im_start)
            assert im_end in ids[last:]
            # the question is not in the loss, the answer is
            assert not mask[last]
            assert any(mask[last:])
    assert whole > 10
    ids_batch, mask_batch = next(batches(rows, 3))
    assert len(ids_batch) == len(mask_batch) == 3


def test_chunked_losses_match_the_plain_ones(tiny):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from lsp_llm.train.run import losses

    target = AutoModelForCausalLM.from_pretrained(tiny.target)
    draft = AutoModelForCausalLM.from_pretrained(tiny.draft)
    torch.manual_seed(0)
    batch = torch.randint(0, target.config.vocab_size, (2, 33))
    inputs, targets = batch[:, :-1], batch[:, 1:].clone()
    targets[0, :5] = -100
    got = losses(target, draft, inputs, targets, distill=0.7)
    keep = targets.flatten() != -100
    t_logits = target(input_ids=inputs).logits.flatten(0, 1)[keep]
    d_logits = draft(input_ids=inputs).logits.flatten(0, 1)[keep]
    y = targets.flatten()[keep]
    want_t = F.cross_entropy(t_logits, y)
    want_ce = F.cross_entropy(d_logits, y)
    want_kl = F.kl_div(F.log_softmax(d_logits, -1), F.softmax(t_logits, -1), reduction="batchmean")
    torch.testing.assert_close(got["target"], want_t)
    torch.testing.assert_close(got["draft_ce"], want_ce)
    torch.testing.assert_close(got["draft_kl"], want_kl)
    torch.testing.assert_close(got["draft"], 0.3 * want_ce + 0.7 * want_kl)


def _fit_args(tmp_path, **overrides):
    import argparse

    values = dict(
        minutes=10.0,
        draft_minutes=0.0,
        max_steps=2,
        lr=1e-2,
        warmup=1,
        distill=0.7,
        report_seconds=1e9,
        checkpoint_minutes=0,
        out=tmp_path,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def _moved(before, model) -> bool:
    import torch

    return any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("draft_only", [False, True])
def test_fit_trains_the_target_only_outside_the_draft_phase(tiny, sources, tmp_path, draft_only):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lsp_llm.train.run import fit

    tok = AutoTokenizer.from_pretrained(tiny.target)
    target = AutoModelForCausalLM.from_pretrained(tiny.target).train()
    draft = AutoModelForCausalLM.from_pretrained(tiny.draft).train()
    before_t = [p.detach().clone() for p in target.parameters()]
    before_d = [p.detach().clone() for p in draft.parameters()]
    rows = packed_rows(encoder(tok), examples(sources, 0), code_examples(sources, 1), 65)
    # draft_minutes == minutes: the whole budget is the draft-only phase
    args = _fit_args(tmp_path, draft_minutes=10.0 if draft_only else 0.0)
    steps, tokens, _ = fit(target, draft, tok, batches(rows, 2), args, "cpu")
    assert (steps, tokens) == (2, 2 * 2 * 64)
    assert _moved(before_d, draft)
    assert _moved(before_t, target) is not draft_only
    assert all(p.grad is None for p in target.parameters()) is draft_only
