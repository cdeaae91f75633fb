"""DPO step time: trl.DPOTrainer's CPU LM head vs rlhf_ext.DPOTrainer's compact one, same data, same LoRA policy.

On CPU, TRL's fused LM head projects every position of the [chosen; rejected] batch through the vocabulary (prompt
and padding included) in the policy's forward, again in its backward and in the reference forward; rlhf_ext's
DPOTrainer projects only the completion positions (``rlhf_ext.lm_head.add_compact_lm_head``). On TL;DR-shaped pairs
(~130 prompt tokens, ~13 summary tokens) that is one position in ten. Everything else (loss, reference through the
disabled adapter, collator) is TRL's in both, so the logged losses must agree to float32 rounding: the script prints
them side by side with their largest difference.

Each run is a fresh subprocess; ``trl`` and ``rlhf_ext`` runs are interleaved and alternate order per repeat, so load
from other processes hits both alike. Step times exclude ``--warmup`` steps. The learning rate is constant (no
warmup), so the losses after the first step show the updates.

    python benchmarks/bench_dpo.py                        # random-init Llama with SmolLM2's 49k vocabulary, minutes
    python benchmarks/bench_dpo.py --model smollm2 --sft outputs/tldr/sft --labels outputs/tldr/labels \\
        --steps 3 --warmup 1 --repeats 1                  # the summarize pipeline's DPO stage (offline config's shape)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # the offline config's


def _synthetic_pairs(n: int, prompt_words: int, completion_words: int) -> list[dict]:
    from rlhf_ext.testing.tiny_models import CORPUS

    words = " ".join(CORPUS).replace(".", " ").replace(",", " ").split()
    rng = random.Random(0)

    def text(k):
        return " ".join(rng.choice(words) for _ in range(k))

    return [
        {
            "prompt": text(prompt_words),
            "chosen": " " + text(completion_words),
            "rejected": " " + text(completion_words),
        }
        for _ in range(n)
    ]


def _child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig

    from rlhf_ext.testing.timing import StepTimer

    if spec["sft"]:
        from rlhf_ext.data.ranking import ranked_to_pairs
        from rlhf_ext.models import load_policy
        from rlhf_ext.summarization import preference_dataset

        model, tok = load_policy(spec["sft"])
        pairs = ranked_to_pairs(preference_dataset(spec["labels"], "train"), "best_vs_worst")
    else:
        model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(spec["model"])
        steps = spec["warmup"] + spec["steps"]
        pairs = Dataset.from_list(_synthetic_pairs(spec["batch"] * steps, spec["prompt_words"], spec["words"]))
    args = DPOConfig(
        output_dir=spec["out"],
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=spec["batch"],
        max_steps=spec["warmup"] + spec["steps"],
        logging_steps=1,
        save_strategy="no",
        gradient_checkpointing=False,
        max_length=256,
        beta=0.1,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if spec["trainer"] == "rlhf_ext":
        from rlhf_ext import DPOTrainer
    else:
        from trl import DPOTrainer
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=pairs,
        processing_class=tok,
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS),
    )
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    batch = next(iter(trainer.get_train_dataloader()))
    return {
        "trainer": spec["trainer"],
        "step_s": statistics.median(timer.times[spec["warmup"] :]),
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
        "shape": list(batch["input_ids"].shape),
        "scored": int(batch["completion_mask"].sum()),
        "tokens": int(batch["attention_mask"].sum()),
    }


def _build_model(args, folder: str) -> str:
    """Random-init Llama with ``--vocab`` rows in its (tied) embedding and LM head + the test tokenizer, in ``folder``."""
    from rlhf_ext.testing.tiny_models import build_random_llama

    return build_random_llama(folder, args.hidden, args.layers, args.vocab, tie_word_embeddings=True)


def main(argv=None) -> None:
    from rlhf_ext.testing.timing import run_interleaved

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--sft", help="with --model smollm2: the SFT policy folder (the summarize pipeline's stage 1)")
    parser.add_argument("--labels", help="with --model smollm2: the ranked labels folder (best-vs-worst pairs)")
    parser.add_argument("--hidden", type=int, default=256, help="tiny model")
    parser.add_argument("--layers", type=int, default=4, help="tiny model")
    parser.add_argument("--vocab", type=int, default=49152, help="tiny model (SmolLM2's vocabulary by default)")
    parser.add_argument("--prompt-words", type=int, default=55, help="tiny model: ~130 prompt tokens")
    parser.add_argument("--words", type=int, default=6, help="tiny model: ~13 completion tokens")
    parser.add_argument("--batch", type=int, default=8, help="pairs per step")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="trl/rlhf_ext run pairs, interleaved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1 is steadiest on 2 cores)")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    if args.model == "smollm2" and not (args.sft and args.labels):
        parser.error("--model smollm2 needs --sft and --labels (outputs/tldr/sft and outputs/tldr/labels of a run)")

    with tempfile.TemporaryDirectory() as folder:
        base = {
            "model": None if args.model == "smollm2" else _build_model(args, folder),
            "sft": os.path.abspath(args.sft) if args.model == "smollm2" else None,
            "labels": os.path.abspath(args.labels) if args.model == "smollm2" else None,
            "out": os.path.join(folder, "out"),
            "batch": args.batch,
            "prompt_words": args.prompt_words,
            "words": args.words,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
        }
        results = run_interleaved(__file__, base, "trainer", ("trl", "rlhf_ext"), args.repeats)

    before, after = results["trl"], results["rlhf_ext"]
    t_before = statistics.median(r["step_s"] for r in before)
    t_after = statistics.median(r["step_s"] for r in after)
    first = before[0]
    model = "SmolLM2-135M SFT policy" if args.model == "smollm2" else f"random Llama h{args.hidden} x{args.layers}"
    print(
        f"\n{model}, LoRA r16 on every linear layer; batch {args.batch} pairs = {first['shape'][0]} rows x "
        f"{first['shape'][1]} tokens ({first['tokens']} real, {first['scored']} scored); {args.threads} thread(s); "
        f"median of {args.repeats} interleaved run(s) x {args.steps} timed steps"
    )
    print(f"{'':34}{'s/step':>8}")
    print(f"{'trl.DPOTrainer (full-width head)':34}{t_before:>8.2f}")
    print(f"{'rlhf_ext.DPOTrainer (compact head)':34}{t_after:>8.2f}")
    print(f"speed-up {t_before / t_after:.2f}x")
    losses_before, losses_after = first["losses"], after[0]["losses"]
    print("losses per step, trl:      " + " ".join(f"{x:.6f}" for x in losses_before))
    print("losses per step, rlhf_ext: " + " ".join(f"{x:.6f}" for x in losses_after))
    diff = max(abs(a - b) for a, b in zip(losses_before, losses_after))
    print(f"largest loss difference {diff:.2e}")


if __name__ == "__main__":
    main()
