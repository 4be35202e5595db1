"""Train the bundled target and draft models from scratch, on the CPU or a CUDA GPU.

    python -m lsp_llm.train --minutes 85 --out build/bundled-train --install

Seeded and deterministic up to floating-point scheduling. One loop trains both: the target
on next-token loss over packed sequences, the draft on the same batch with next-token loss
plus distillation from the target's logits (agreement is what makes drafts accepted). For
the last `--draft-minutes` the target is frozen and only the draft learns from it.
Prints progress and throughput; `--install` copies the result into lsp_llm/models/.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lsp_llm.engine.load.bundled import bundled_draft_dir, bundled_model_dir
from lsp_llm.train.data import HELD_OUT, SPM_RATE, code_examples, examples, load_sources
from lsp_llm.train.packing import batches, encoder, packed_rows

logger = logging.getLogger(__name__)

TARGET: dict[str, Any] = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "intermediate_size": 704,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
DRAFT: dict[str, Any] = {  # two layers: one layer cannot learn to copy (no induction heads)
    "hidden_size": 96,
    "num_hidden_layers": 2,
    "intermediate_size": 256,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
}


def make_model(tokenizer: Any, shape: dict[str, Any], seq_len: int) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=seq_len,  # what it is trained on; prompts are kept inside
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )
    return Qwen2ForCausalLM(config)


def lr_at(step: int, progress: float, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


LOSS_CHUNKS = 8
"""The vocabulary-sized logits are made and scored in this many slices of the batch: the
same losses, but each slice stays in cache (about 1.8x the tokens/s on 2 CPU cores)."""


def losses(
    target: Any, draft: Any, inputs: Any, targets: Any, distill: float, train_target: bool = True
) -> dict[str, Any]:
    """Mean next-token loss of the target; for the draft, next-token loss and KL to the
    target's distribution, mixed by `distill`. Positions whose target is -100 are skipped.
    With `train_target` false the target is only the teacher: no graph is kept for it."""
    import torch
    import torch.nn.functional as F

    flat = targets.flatten()
    keep = flat != -100
    n = max(1, int(keep.sum()))
    teacher_grad = train_target and torch.is_grad_enabled()
    with torch.set_grad_enabled(teacher_grad):
        t_hidden = target.model(input_ids=inputs).last_hidden_state.flatten(0, 1)[keep]
    d_hidden = draft.model(input_ids=inputs).last_hidden_state.flatten(0, 1)[keep]
    labels = flat[keep]
    t_sum: Any = 0.0
    d_ce: Any = 0.0
    d_kl: Any = 0.0
    for th, dh, y in zip(
        t_hidden.chunk(LOSS_CHUNKS),
        d_hidden.chunk(LOSS_CHUNKS),
        labels.chunk(LOSS_CHUNKS),
        strict=True,
    ):
        with torch.set_grad_enabled(teacher_grad):
            t_logp = F.log_softmax(target.lm_head(th).float(), dim=-1)
        d_logp = F.log_softmax(draft.lm_head(dh).float(), dim=-1)
        t_sum = t_sum + F.nll_loss(t_logp, y, reduction="sum")
        d_ce = d_ce + F.nll_loss(d_logp, y, reduction="sum")
        d_kl = d_kl + F.kl_div(d_logp, t_logp.detach(), reduction="sum", log_target=True)
    return {
        "target": t_sum / n,
        "draft_ce": d_ce / n,
        "draft_kl": d_kl / n,
        "draft": ((1 - distill) * d_ce + distill * d_kl) / n,
    }


def save(model: Any, tokenizer: Any, folder: Path, info: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps(info, indent=2) + "\n")


def fit(
    target: Any, draft: Any, tokenizer: Any, stream: Any, args: argparse.Namespace, device: str
) -> tuple[int, int, list[dict[str, float]]]:
    """The training loop: both models for `minutes - draft_minutes`, then the draft alone
    against the frozen target for `draft_minutes` (a teacher forward costs about a third of
    a training step, so the draft sees over twice the tokens per minute there). Returns the
    steps, the tokens and the progress history."""
    import torch

    opt_t = torch.optim.AdamW(target.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    opt_d = torch.optim.AdamW(draft.parameters(), lr=args.lr, weight_decay=0.1, betas=(0.9, 0.95))
    budget = args.minutes * 60
    joint = max(0.0, budget - args.draft_minutes * 60)
    start = time.perf_counter()
    step = 0
    tokens = 0
    last_report = start
    history: list[dict[str, float]] = []
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= budget or (args.max_steps and step >= args.max_steps):
            break
        both = elapsed < joint
        rows, masks = next(stream)
        batch = torch.tensor(rows, device=device)
        inputs, targets = batch[:, :-1], batch[:, 1:].clone()
        targets[~torch.tensor(masks, device=device)[:, 1:]] = -100
        lr_t = lr_at(step, elapsed / joint if joint else 1.0, args.lr, args.warmup)
        lr = lr_at(step, elapsed / budget, args.lr, args.warmup)
        for opt, value in ((opt_t, lr_t), (opt_d, lr)):
            for group in opt.param_groups:
                group["lr"] = value
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = losses(target, draft, inputs, targets, args.distill, train_target=both)
        trained = ((opt_t, "target", target),) if both else ()
        for opt, key, model in (*trained, (opt_d, "draft", draft)):
            opt.zero_grad(set_to_none=True)
            loss[key].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        step += 1
        tokens += inputs.numel()
        now = time.perf_counter()
        if now - last_report >= args.report_seconds:
            last_report = now
            rate = tokens / (now - start)
            row = {
                "step": step,
                "minutes": (now - start) / 60,
                "tokens": tokens,
                "tokens_per_s": rate,
                "target_loss": loss["target"].item(),
                "draft_ce": loss["draft_ce"].item(),
                "draft_kl": loss["draft_kl"].item(),
                "lr": lr,
            }
            history.append(row)
            print(
                f"step {step:6d}  {row['minutes']:5.1f} min  {tokens / 1e6:6.2f}M tok  "
                f"{rate:6.0f} tok/s  target loss {row['target_loss']:.3f}"
                f"{'' if both else ' (frozen)'}  draft ce {row['draft_ce']:.3f} "
                f"kl {row['draft_kl']:.3f}  lr {lr:.2e}",
                flush=True,
            )
        if (
            both
            and args.checkpoint_minutes
            and step % 50 == 0
            and int((now - start) / 60 / args.checkpoint_minutes)
            > len(list(args.out.glob("ckpt-*")))
        ):
            save(target.cpu(), tokenizer, args.out / f"ckpt-{step}", {"step": step})
            target.to(device)
    return step, tokens, history


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from lsp_llm.train.tokenizer import train_tokenizer

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    t0 = time.perf_counter()
    sources = load_sources(held_out=False)
    print(
        f"training slice: {len(sources)} files, {sum(len(s.text) for s in sources) / 1e6:.1f} MB;"
        f" held out: {', '.join(HELD_OUT)}",
        flush=True,
    )
    tokenizer = train_tokenizer((s.text for s in sources), args.vocab)
    print(f"tokenizer: {len(tokenizer)} tokens in {time.perf_counter() - t0:.0f}s", flush=True)
    target = make_model(tokenizer, TARGET, args.seq_len).to(device)
    draft = make_model(tokenizer, DRAFT, args.seq_len).to(device)
    n_target = sum(p.numel() for p in target.parameters())
    n_draft = sum(p.numel() for p in draft.parameters())
    print(
        f"target {n_target / 1e6:.2f}M params, draft {n_draft / 1e6:.2f}M params "
        f"({n_target / n_draft:.1f}x smaller), device {device}",
        flush=True,
    )
    packed = packed_rows(
        encoder(tokenizer),
        examples(sources, args.seed, spm_rate=args.spm_rate),
        code_examples(sources, args.seed + 1),
        args.seq_len + 1,
    )
    step, tokens, history = fit(target, draft, tokenizer, batches(packed, args.batch), args, device)
    info = {
        "seed": args.seed,
        "steps": step,
        "tokens": tokens,
        "minutes": (time.perf_counter() - t0) / 60,
        "draft_only_minutes": args.draft_minutes,
        "device": device,
        "target_params": n_target,
        "draft_params": n_draft,
        "vocab": len(tokenizer),
        "seq_len": args.seq_len,
        "batch": args.batch,
        "held_out": list(HELD_OUT),
        "fim_spm_rate": args.spm_rate,
        "python": sys.version.split()[0],
        "history": history,
        "command": " ".join(["python -m lsp_llm.train", *sys.argv[1:]]),
    }
    save(target.cpu().eval(), tokenizer, args.out / "bundled", info)
    save(draft.cpu().eval(), tokenizer, args.out / "bundled-draft", info)
    print(
        f"done: {step} steps, {tokens / 1e6:.2f}M tokens in {info['minutes']:.1f} min; "
        f"saved to {args.out}",
        flush=True,
    )
    return info


def install_folder(source: Path, dest: Path) -> None:
    """Replace the packaged model folder `dest` with `source`, keeping `dest`'s model card
    (README.md): the card is written by hand, the weights by training."""
    card = dest / "README.md"
    kept = card.read_text() if card.exists() else None
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest)
    if kept is not None:
        card.write_text(kept)
    print(f"installed {source} -> {dest}", flush=True)


def install(out: Path) -> None:
    for name, dest in (("bundled", bundled_model_dir()), ("bundled-draft", bundled_draft_dir())):
        install_folder(out / name, dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsp_llm.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("build/bundled-train"))
    parser.add_argument("--minutes", type=float, default=85.0, help="training time budget")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--seq-len", type=int, default=384)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--distill",
        type=float,
        default=0.7,
        help="weight of the draft's distillation loss (KL to the target); the rest is next-token",
    )
    parser.add_argument(
        "--draft-minutes",
        type=float,
        default=15.0,
        help="the last minutes of the budget train the draft alone, from the frozen target",
    )
    parser.add_argument(
        "--spm-rate",
        type=float,
        default=SPM_RATE,
        help="share of FIM examples in suffix-prefix-middle order (the rest prefix-suffix-middle)",
    )
    parser.add_argument("--report-seconds", type=float, default=30.0)
    parser.add_argument("--checkpoint-minutes", type=float, default=15.0)
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even with CUDA")
    parser.add_argument(
        "--install", action="store_true", help="copy the trained pair into lsp_llm/models/"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train(args)
    if args.install:
        install(args.out)
    return 0
