"""RankedRewardTrainer under DeepSpeed ZeRO-2 vs DDP, 2 CPU processes each: losses side by side.

Both runs launch through ``accelerate launch`` with the repository's configs: DDP with
``recipes/accelerate_configs/cpu_2proc.yaml``, ZeRO-2 with ``recipes/accelerate_configs/deepspeed_zero2.yaml``
overridden to ``--num_processes 2 --mixed_precision no`` (its 8-GPU bf16 defaults do not fit a CPU box). Same data,
seed, model and hyperparameters; rank 0 has K=4 rows and rank 1 K=2/3 rows at every step (sequential sampler), so
the run also exercises the trainer with a different K on each rank. ZeRO-2 shards the optimizer state and gradients,
which only reorders float32 arithmetic, so the losses should agree to ~1e-5 (the DDP parity tolerance of
tests/test_distributed.py).

Needs deepspeed (``pip install -e '.[deepspeed]'``, pure Python). Its first run on a machine JIT-builds a C++ op
with g++/ninja (cached in ~/.cache/torch_extensions afterwards). Run from the repository root:

    python benchmarks/bench_zero2_ranked.py                 # tiny model, 6 steps
    python benchmarks/bench_zero2_ranked.py --steps 20 --hidden 128 --layers 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "recipes" / "accelerate_configs"
B = 2  # prompts per device


def rows(steps: int) -> list[dict]:
    """Rank 0's slots of every step hold K=4 rows, rank 1's K=2 and K=3 rows (sequential sampling, B per device)."""
    from rlhf_ext.testing.synthetic import count_ranked

    k4 = count_ranked(B * steps, seed=1, k=4)
    k2 = count_ranked(steps, seed=2, k=2)
    k3 = count_ranked(steps, seed=3, k=3)
    out = []
    for step in range(steps):
        out += k4[step * B : (step + 1) * B] + [k2[step], k3[step]]
    return out


def worker(spec: dict) -> None:
    """One process of a launched run: train, and rank 0 writes its step logs."""
    import torch

    torch.set_num_threads(1)
    from datasets import Dataset
    from transformers import AutoTokenizer

    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
    from rlhf_ext.testing.distributed import teardown

    tok = AutoTokenizer.from_pretrained(spec["tokenizer"])
    args = RankedRewardConfig(
        output_dir=spec["out"],
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        per_device_train_batch_size=B,
        max_steps=spec["steps"],
        learning_rate=1e-3,
        train_sampling_strategy="sequential",
    )
    trainer = RankedRewardTrainer(
        model=spec["model"], args=args, train_dataset=Dataset.from_list(rows(spec["steps"])), processing_class=tok
    )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    if trainer.accelerator.is_main_process:
        logs = [e for e in trainer.state.log_history if "loss" in e]
        result = {
            "distributed_type": str(trainer.accelerator.distributed_type),
            "world": trainer.accelerator.num_processes,
            "train_seconds": seconds,
            "loss": [e["loss"] for e in logs],
            "accuracy": [e["accuracy"] for e in logs],
        }
        Path(spec["result"]).write_text(json.dumps(result))
    teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=32, help="hidden size of the random-init Llama reward model")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    import importlib.util

    if importlib.util.find_spec("deepspeed") is None:
        sys.exit("This benchmark needs deepspeed: pip install -e '.[deepspeed]'")

    from rlhf_ext.testing.distributed import run_distributed
    from rlhf_ext.testing.tiny_models import build_tiny_models

    tmp = Path(tempfile.mkdtemp(prefix="bench-zero2-"))
    models = build_tiny_models(tmp / "models", hidden_size=args.hidden, num_layers=args.layers)
    runs = {
        "DDP": (CONFIGS / "cpu_2proc.yaml", ()),
        "ZeRO-2": (CONFIGS / "deepspeed_zero2.yaml", ("--num_processes", "2", "--mixed_precision", "no")),
    }
    results = {}
    for name, (config, launch_args) in runs.items():
        spec = {
            "tokenizer": str(models.tokenizer),
            "model": str(models.reward_model),
            "steps": args.steps,
            "out": str(tmp / name),
            "result": str(tmp / f"{name}.json"),
        }
        start = time.perf_counter()
        run_distributed(
            __file__,
            "--worker",
            json.dumps(spec),
            config_file=config,
            launch_args=launch_args,
            timeout=args.timeout,
        )
        results[name] = json.loads(Path(spec["result"]).read_text())
        results[name]["wall_seconds"] = time.perf_counter() - start

    ddp, zero = results["DDP"], results["ZeRO-2"]
    print(f"{'step':>4}  {'DDP loss':>10}  {'ZeRO-2 loss':>11}  {'|diff|':>8}  {'DDP acc':>7}  {'ZeRO-2 acc':>10}")
    for step, (a, b, c, d) in enumerate(zip(ddp["loss"], zero["loss"], ddp["accuracy"], zero["accuracy"]), 1):
        print(f"{step:>4}  {a:>10.6f}  {b:>11.6f}  {abs(a - b):>8.1e}  {c:>7.3f}  {d:>10.3f}")
    worst = max(abs(a - b) for a, b in zip(ddp["loss"], zero["loss"]))
    print(f"max |loss difference|: {worst:.1e} over {len(ddp['loss'])} steps")
    for name, result in results.items():
        print(
            f"{name}: {result['distributed_type']}, {result['world']} processes, train() {result['train_seconds']:.1f} s, "
            f"launch to exit {result['wall_seconds']:.1f} s"
        )


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    else:
        main()
