"""Step time and peak memory: rlhf_ext.ORPOTrainer vs trl.DPOTrainer (with its reference model) on the same data.

ORPO needs no reference model: per step it runs one forward + backward of the policy over chosen and rejected,
where DPO also runs a no-grad forward of a frozen reference copy (``precompute_ref_log_probs=False``, TRL's default)
and holds that copy in memory. Expected: ORPO's step ~ 3/4 of DPO's (forward ~ 1, backward ~ 2 units) and lower
peak memory by about one model's weights. Goal: ORPO <= 0.8x DPO's step time, lower peak RSS.

The model is a random-init Llama built locally (``--hidden``, ``--layers``; ``--vocab`` rows in the embedding and
LM head, of which the test tokenizer uses the first few hundred, so the logits cost is that of a real vocabulary),
saved once to a temp folder; both trainers load it from there (DPO loads its reference from the same path). Rows
are synthetic text pairs of about ``--prompt-words`` + ``--completion-words`` words from the test corpus. Each run
is a fresh subprocess (its peak RSS, ``ru_maxrss``, is its own); ORPO and DPO runs are interleaved and alternate
order per repeat, so load from other processes hits both alike. Step times exclude ``--warmup`` steps.

    python benchmarks/bench_orpo.py                                    # ~7M params, a few minutes on 2 cores
    python benchmarks/bench_orpo.py --hidden 128 --layers 2 --repeats 1 --steps 4   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rows(n: int, prompt_words: int, completion_words: int, seed: int) -> list[dict]:
    from rlhf_ext.testing.tiny_models import CORPUS

    words = " ".join(CORPUS).replace(".", " ").replace(",", " ").split()
    rng = random.Random(seed)

    def text(k):
        return " ".join(rng.choice(words) for _ in range(k))

    return [
        {
            "prompt": text(prompt_words),
            "chosen": " " + text(completion_words),
            "rejected": " " + text(rng.randint(completion_words // 2, completion_words)),
        }
        for _ in range(n)
    ]


def _child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_ext.testing.timing import StepTimer

    tok = AutoTokenizer.from_pretrained(spec["model"])
    steps = spec["warmup"] + spec["steps"]
    rows = _rows(spec["batch"] * steps, spec["prompt_words"], spec["completion_words"], seed=0)
    common = dict(
        output_dir=spec["out"],
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=spec["batch"],
        max_steps=steps,
        logging_steps=10**6,
        save_strategy="no",
        gradient_checkpointing=False,
        max_length=spec["max_length"],
        learning_rate=1e-6,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    if spec["method"] == "orpo":
        from rlhf_ext import ORPOConfig, ORPOTrainer

        trainer = ORPOTrainer(
            model=model, args=ORPOConfig(**common), train_dataset=Dataset.from_list(rows), processing_class=tok
        )
    else:
        from trl import DPOConfig, DPOTrainer

        precompute = spec["method"] == "dpo_precomputed"
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, precompute_ref_log_probs=precompute),
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
        )

    timer = StepTimer()
    trainer.add_callback(timer)
    rss_before = _rss_mb()
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": spec["method"],
        "step_s": statistics.median(timer.times[spec["warmup"] :]),
        "peak_rss_mb": peak,
        "train_rss_growth_mb": peak - rss_before,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def _build_model(args, folder: str) -> tuple[str, float, float]:
    """Random-init Llama + the test tokenizer in ``folder``; also the mean prompt/completion token counts."""
    from transformers import AutoTokenizer

    from rlhf_ext.testing.tiny_models import build_random_llama

    path = build_random_llama(folder, args.hidden, args.layers, args.vocab, tie_word_embeddings=False,
                              max_position_embeddings=2048)  # fmt: skip
    tok = AutoTokenizer.from_pretrained(path)
    sample = _rows(64, args.prompt_words, args.completion_words, seed=0)
    prompt_len = statistics.mean(len(tok(r["prompt"])["input_ids"]) for r in sample)
    completion_len = statistics.mean(len(tok(r["chosen"])["input_ids"]) for r in sample)
    return path, prompt_len, completion_len


def main(argv=None) -> None:
    from rlhf_ext.testing.timing import run_interleaved

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=8, help="pairs per step")
    parser.add_argument("--prompt-words", type=int, default=12)
    parser.add_argument("--completion-words", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="ORPO/DPO run pairs, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1 is steadiest on 2 cores)")
    parser.add_argument(
        "--with-precomputed-dpo",
        action="store_true",
        help="also time DPO with precompute_ref_log_probs=True (no reference forward inside the step), to separate "
        "the reference model's share of DPO's step from the rest of DPO's step",
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    with tempfile.TemporaryDirectory() as folder:
        model_path, prompt_len, completion_len = _build_model(args, folder)
        base = {
            "model": model_path,
            "out": os.path.join(folder, "out"),
            "batch": args.batch,
            "prompt_words": args.prompt_words,
            "completion_words": args.completion_words,
            "max_length": args.max_length,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
        }
        methods = ("orpo", "dpo", "dpo_precomputed") if args.with_precomputed_dpo else ("orpo", "dpo")
        results = run_interleaved(__file__, base, "method", methods, args.repeats)

    orpo, dpo = results["orpo"], results["dpo"]
    t_orpo = statistics.median(r["step_s"] for r in orpo)
    t_dpo = statistics.median(r["step_s"] for r in dpo)
    m_orpo = max(r["peak_rss_mb"] for r in orpo)
    m_dpo = max(r["peak_rss_mb"] for r in dpo)
    g_orpo = max(r["train_rss_growth_mb"] for r in orpo)
    g_dpo = max(r["train_rss_growth_mb"] for r in dpo)
    print(
        f"\nmodel: {orpo[0]['params_m']:.1f}M params (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}); "
        f"batch {args.batch} pairs; ~{prompt_len:.0f} prompt + ~{completion_len:.0f} chosen tokens; "
        f"{args.threads} thread(s); {args.repeats} interleaved repeats x {args.steps} timed steps"
    )
    print(f"{'':8}{'step s (median)':>18}{'peak RSS MB':>14}{'RSS growth in train MB':>26}")
    print(f"{'ORPO':8}{t_orpo:>18.3f}{m_orpo:>14.0f}{g_orpo:>26.0f}")
    print(f"{'DPO':8}{t_dpo:>18.3f}{m_dpo:>14.0f}{g_dpo:>26.0f}")
    if "dpo_precomputed" in results:
        pre = results["dpo_precomputed"]
        t_pre = statistics.median(r["step_s"] for r in pre)
        m_pre, g_pre = max(r["peak_rss_mb"] for r in pre), max(r["train_rss_growth_mb"] for r in pre)
        print(f"{'DPO-pre':8}{t_pre:>18.3f}{m_pre:>14.0f}{g_pre:>26.0f}   (precompute_ref_log_probs=True)")
    ratio = t_orpo / t_dpo
    verdict = "meets" if ratio <= 0.8 and m_orpo < m_dpo else "misses"
    print(f"ORPO/DPO step time {ratio:.2f}x, peak RSS {m_orpo - m_dpo:+.0f} MB: {verdict} the goal (<= 0.8x, lower).")


if __name__ == "__main__":
    main()
