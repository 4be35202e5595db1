"""Drafts with a vocabulary of their own (`engine/load/draftvocab.py`), SmolLM2's distilled
draft (`train/distill.py`), and how both reach the decoder."""

from __future__ import annotations

import random
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest
import torch

from lsp_llm.config import Settings
from lsp_llm.engine.decoding import Decoder
from lsp_llm.engine.drafting import DraftModel
from lsp_llm.engine.load.draftvocab import VOCAB_FILE, DraftVocab, tokenizer_fingerprint
from lsp_llm.engine.load.loading import load
from lsp_llm.generation.types import GenerationRequest, Speculation

TEXT = "def area(width, height):\n    return width * height\n\n\ndef perimeter(width, height):\n"


def test_a_draft_vocabulary_maps_both_ways_and_round_trips(tmp_path: Path):
    vocab = DraftVocab([7, 2, 9], target_vocab_size=12)
    assert vocab.rows == 4 and vocab.unknown == 3
    assert vocab.draft_ids([9, 7, 5, 2, 11]) == [2, 0, 3, 1, 3]
    assert [vocab.target_id(r) for r in range(5)] == [7, 2, 9, None, None]
    assert vocab.draft_ids([]) == []
    vocab.save(tmp_path)
    again = DraftVocab.load(tmp_path, 12)
    assert again is not None and again.to_target.tolist() == [7, 2, 9]
    assert again.draft_ids([2, 3]) == [1, 3]
    assert DraftVocab.load(tmp_path / "none", 12) is None
    assert again.tokenizer is None
    DraftVocab([7, 2], 12, tokenizer="ab12").save(tmp_path)
    named = DraftVocab.load(tmp_path, 12)
    assert named is not None and named.tokenizer == "ab12"
    with pytest.raises(ValueError, match="onto 12 tokens, the target has 13"):
        DraftVocab.load(tmp_path, 13)
    bad_files = ("{not json", '{"target_ids": [1]}', '{"target_vocab_size": 12, "target_ids": 7}')
    bad_files += ('{"target_vocab_size": 12, "target_ids": [1], "tokenizer": 5}',)
    for bad in bad_files:
        (tmp_path / VOCAB_FILE).write_text(bad)
        with pytest.raises(ValueError, match=r"draft_vocab\.json"):
            DraftVocab.load(tmp_path, 12)
    # a size far beyond the target's is refused before anything is allocated
    (tmp_path / VOCAB_FILE).write_text('{"target_vocab_size": 1000000000000, "target_ids": []}')
    with pytest.raises(ValueError, match="the target has 12"):
        DraftVocab.load(tmp_path, 12)
    with pytest.raises(ValueError, match="once"):
        DraftVocab([1, 1], 4)
    with pytest.raises(ValueError, match="does not have"):
        DraftVocab([1, 4], 4)


def test_a_draft_maps_only_the_tokens_it_has_not_seen_and_follows_rewinds():
    vocab = DraftVocab([7, 2, 9, 4], target_vocab_size=12)
    draft = DraftModel(torch.nn.Module(), 12, cache=object(), vocab=vocab)  # type: ignore[arg-type]
    mapped: list[int] = []  # how many tokens each call maps
    full_map = vocab.draft_ids
    vocab.draft_ids = lambda ids: mapped.append(len(ids)) or full_map(ids)  # type: ignore[method-assign]
    tokens = [9, 7, 5]
    for step in ([2, 2], [11], [4]):
        tokens += step
        assert draft._draft_ids(tokens) == full_map(tokens)
    assert mapped == [5, 1, 1]  # the first call maps all, later ones only what is new
    for other in (tokens[:3], [*tokens[:2], 4, 9], [], [1]):  # rewound, diverged, empty
        assert draft._draft_ids(other) == full_map(other)
    assert mapped[3:] == [0, 2, 0, 1]


def trimmed_twin(target: Path, folder: Path, kept: list[int]) -> Path:
    """The target model cut down to the `kept` token ids (plus a zero "unknown" row): where
    every token it reads is kept, its scores over them are the target's."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(target).eval()
    full = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(len(kept) + 1)
    with torch.no_grad():
        rows = model.get_input_embeddings().weight
        rows[: len(kept)] = full[kept]
        rows[len(kept)] = 0
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (target / name).exists():
            shutil.copy(target / name, folder / name)
    DraftVocab(kept, int(full.shape[0])).save(folder)
    return folder


def greedy(model, ids: list[int], n: int) -> list[int]:
    out = list(ids)
    with torch.no_grad():
        for _ in range(n):
            out.append(int(model(input_ids=torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(ids) :]


@pytest.fixture(scope="module")
def trimmed(tiny, tmp_path_factory):
    """The tiny target with a twin draft that keeps the prompt's tokens and about half of
    the others, and how many the target has."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny.target)
    size = len(tokenizer)
    prompt = tokenizer.encode(TEXT, add_special_tokens=False)
    others = [t for t in range(size) if t not in set(prompt)]
    random.Random(0).shuffle(others)
    kept = list(dict.fromkeys(prompt)) + others[: len(others) // 2]
    random.Random(1).shuffle(kept)  # rows in another order than the ids
    folder = trimmed_twin(tiny.target, tmp_path_factory.mktemp("trimmed"), kept)
    return folder, kept, prompt


def test_a_trimmed_draft_proposes_the_targets_tokens_it_keeps(loaded, trimmed):
    from transformers import AutoModelForCausalLM

    folder, kept, prompt = trimmed
    draft = AutoModelForCausalLM.from_pretrained(folder).eval()
    size = int(loaded.model.get_output_embeddings().weight.shape[0])
    vocab = DraftVocab.load(folder, size)
    assert vocab is not None
    proposer = DraftModel(draft, size, vocab=vocab)
    truth = greedy(loaded.model, prompt, 8)
    proposal = proposer.propose(prompt, 8, lambda: None)
    assert proposal and set(proposal) <= set(kept)
    same = 0
    while same < len(truth) and truth[same] in set(kept) and same < len(proposal):
        assert proposal[same] == truth[same]
        same += 1
    assert same > 0  # the comparison meant something
    # a token it does not keep reaches it as "unknown", and it still proposes kept ones
    dropped = next(t for t in range(size) if t not in set(kept))
    assert set(proposer.propose([*prompt, dropped], 4, lambda: None)) <= set(kept)


def test_a_trimmed_draft_loads_with_its_vocabulary_and_keeps_the_text(tiny, trimmed):
    folder, kept, prompt = trimmed
    with_draft = load(Settings(model=str(tiny.target), draft_model=str(folder)))
    assert with_draft.draft_vocab is not None and with_draft.draft_vocab.rows == len(kept) + 1
    assert with_draft.draft_name == str(folder) and not with_draft.warnings
    decoder = Decoder(
        with_draft.model,
        with_draft.tokenizer,
        with_draft.draft_model,
        draft_vocab=with_draft.draft_vocab,
    )
    plain = decoder.run(
        GenerationRequest(tuple(prompt), 24, speculation=Speculation("off")),
        threading.Event(),
        lambda e: None,
    )
    drafted = decoder.run(
        GenerationRequest(tuple(prompt), 24, speculation=Speculation("draft", 4)),
        threading.Event(),
        lambda e: None,
    )
    assert drafted.text == plain.text
    assert drafted.stats.accepted_draft_tokens > 0


def test_a_draft_with_a_vocabulary_and_no_tokenizer_reads_the_targets(tiny, trimmed, tmp_path):
    """Its rows are the target's token ids, so the target's tokenizer is its own: it needs
    no copy. Without a vocabulary map, a folder with no tokenizer is an error, as before."""
    folder, kept, _ = trimmed
    bare = shutil.copytree(folder, tmp_path / "bare")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (bare / name).unlink(missing_ok=True)
    got = load(Settings(model=str(tiny.target), draft_model=str(bare)))
    assert got.draft_model is not None and not got.warnings
    assert got.draft_vocab is not None and got.draft_vocab.rows == len(kept) + 1
    # the map names the tokenizer it was made for: the target's loads, another's does not
    size = len(got.draft_vocab.to_draft)
    DraftVocab(kept, size, tokenizer_fingerprint(got.tokenizer)).save(bare)
    got = load(Settings(model=str(tiny.target), draft_model=str(bare)))
    assert got.draft_model is not None and not got.warnings
    DraftVocab(kept, size, "0" * 64).save(bare)
    got = load(Settings(model=str(tiny.target), draft_model=str(bare)))
    assert got.draft_model is None
    assert any("made for another tokenizer" in w for w in got.warnings)
    (bare / VOCAB_FILE).unlink()
    got = load(Settings(model=str(tiny.target), draft_model=str(bare)))
    assert got.draft_model is None and any("continuing without" in w for w in got.warnings)


def test_a_draft_vocabulary_that_does_not_fit_is_refused_and_the_target_serves(tiny, tmp_path):
    folder = shutil.copytree(tiny.twin, tmp_path / "draft")
    DraftVocab([0, 1, 2], 5).save(folder)  # neither the draft's rows nor the target's size
    got = load(Settings(model=str(tiny.target), draft_model=str(folder)))
    assert got.draft_model is None and got.draft_vocab is None
    assert any(
        "draft_vocab.json maps onto 5" in w and "continuing without" in w for w in got.warnings
    )
    target_size = int(got.model.get_output_embeddings().weight.shape[0])
    DraftVocab([0, 1, 2], target_size).save(folder)  # the target's size, not the draft's rows
    got = load(Settings(model=str(tiny.target), draft_model=str(folder)))
    assert any("maps 4 rows, but the draft has" in w for w in got.warnings)
    (folder / VOCAB_FILE).write_text("{not json")
    got = load(Settings(model=str(tiny.target), draft_model=str(folder)))
    assert got.draft_model is None
    assert any("unreadable draft_vocab.json" in w for w in got.warnings)


def test_the_draft_vocabulary_is_the_most_used_tokens_and_the_prompt_formats():
    from lsp_llm.train.distill import choose_vocab

    counts = Counter({5: 10, 3: 10, 8: 4, 1: 1})
    vocab = choose_vocab(counts, 4, always=[9], target_size=10)
    assert vocab.to_target.tolist() == [9, 3, 5]  # ties by id; rows = size, one is unknown
    assert vocab.rows == 4


def test_training_rows_are_full_and_start_like_prompts():
    from lsp_llm.train.distill import rows

    files = [([100, 101], list(range(10))), ([102], list(range(20, 25)))]
    stream = rows(files, 16, end=99, seed=0)
    seen = [next(stream) for _ in range(50)]
    assert all(len(r) == 16 for r in seen)
    assert any(r[0] in (100, 102) for r in seen) and any(99 in r for r in seen)
    assert any(r[0] not in (100, 102) for r in seen)  # some rows start without headers


def test_distilling_writes_a_draft_smollm2_loads(smollm2_folder, tmp_path):
    """The training script end to end on SmolLM2, a few steps on a few files: what it writes
    loads as SmolLM2's draft and decodes SmolLM2's own text."""
    from lsp_llm.train.distill import main

    out = tmp_path / "draft"
    args = ["--out", str(out), "--max-steps", "2", "--files", "4", "--seq-len", "48"]
    args += ["--batch", "1", "--held-out-rows", "1", "--distill-share", "0.5", "--minutes", "5"]
    assert main(args) == 0
    assert (out / VOCAB_FILE).is_file() and (out / "training.json").is_file()
    got = load(Settings(model="smollm2", draft_model=str(out), quantization="none"))
    assert got.draft_vocab is not None and not got.warnings
    assert got.draft_vocab.rows == got.draft_model.get_output_embeddings().weight.shape[0]


def test_smollm2_comes_with_its_distilled_draft(smollm2):
    """The shipped draft: SmolLM2's default, its vocabulary checked, and greedy text with it
    is SmolLM2's own."""
    from lsp_llm.engine.load.bundled import smollm2_draft_dir
    from lsp_llm.engine.load.sources import default_draft

    assert default_draft("smollm2") == str(smollm2_draft_dir())
    assert smollm2.draft_name == "smollm2-draft" and smollm2.draft_vocab is not None
    decoder = Decoder(
        smollm2.model, smollm2.tokenizer, smollm2.draft_model, draft_vocab=smollm2.draft_vocab
    )
    ids = tuple(smollm2.tokenizer.encode(TEXT))
    runs = {
        mode: decoder.run(
            GenerationRequest(ids, 32, speculation=Speculation(mode, 4), reuse_prefix=False),
            threading.Event(),
            lambda e: None,
        )
        for mode in ("off", "draft")
    }
    assert runs["draft"].text == runs["off"].text
    assert runs["draft"].stats.accepted_draft_tokens > 0
    assert runs["draft"].stats.target_forwards < runs["off"].stats.target_forwards
