"""Ranked-list reward training (RankedRewardTrainer) vs the same comparisons expanded to pairs (trl.RewardTrainer),
and shared-prompt batching (a prompt encoded once per ranked element) vs one row per completion.

Part 1, speed and memory, in two shapes: "short prompt" (16-token prompts, 128-token completions: InstructGPT-style
instructions) and "TL;DR" (512-token prompts, 48-token completions: summarization, where the prompt is ~90% of
every sequence). For each K, P prompts with K ranked completions (no ties) give P*C(K,2) comparisons, trained for
one epoch three ways, with a random-init Llama scalar reward model built locally (~20M parameters by default) on
pre-tokenized rows:

- ``shared``: RankedRewardTrainer as shipped (``shared_prompt=True``): each prompt once, its K completions packed
  after it (rlhf_ext.shared_prompt), P + KC tokens per element, when that costs less than one row per completion;
- ``ranked``: RankedRewardTrainer with ``shared_prompt=False``: K rows of prompt + completion, K(P + C) tokens;
- ``pairs``: trl.RewardTrainer on the C(K,2) pairs of each prompt: 2 rows per pair, K(K-1)(P + C) tokens.

Each run is a fresh subprocess (so its peak RSS, ``ru_maxrss``, is its own); the runs of one K are interleaved and
their order rotates per repeat, so load from other processes hits all alike. Step size is matched in sequences: the
pair trainer's batch is ``batch * K / 2`` pairs, as many rows per forward as the ranked trainer's ``batch`` prompts.
The fastest run of each side is reported (the least disturbed), with its CPU time (less sensitive to load still).
Goals: ranked >= 0.8 (K - 1) x pairs; on the TL;DR shape, shared >= 2.5x ranked at K = 4 with no higher peak RSS.

Part 2, learning: held-out pairwise accuracy after one epoch of the same labeled rankings (completions are word
sequences, ranked by how many times they contain "good"), ranked batches vs the comparisons shuffled as
independent pairs (TRL). Both take the same number of optimizer steps (each pair batch holds as many comparisons as
a ranked batch), same learning rate and seed, on the tiny test model.

``--json`` writes every number; ``--render-docs`` rewrites the tables of docs/ranked_reward.md from such a file
(between ``<!-- bench_ranked_reward:... -->`` markers), so the docs never hold hand-copied numbers.

    python benchmarks/bench_ranked_reward.py --json docs/bench_ranked_reward.json    # ~20 min on 2 shared cores
    python benchmarks/bench_ranked_reward.py --render-docs docs/bench_ranked_reward.json \\
        docs/bench_shared_prompt_designs.json
    python benchmarks/bench_ranked_reward.py --shapes tldr --ks 4 --layers 2 --repeats 1 --skip-accuracy  # quick look
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from math import comb
from pathlib import Path

from rlhf_ext.testing.synthetic import count_ranked

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHAPES = {"short": (16, 128), "tldr": (512, 48)}  # prompt tokens, completion tokens (+ EOS)
SHAPE_TITLES = {"short": "short prompt (16 + 128 tokens)", "tldr": "TL;DR (512 + 48 tokens)"}
SIDES = ("shared", "ranked", "pairs")
DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "ranked_reward.md"


# ---------------------------------------------------------------------------------------------------------------
# Part 1: one timed run per subprocess
# ---------------------------------------------------------------------------------------------------------------


def _speed_child(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    from datasets import Dataset
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
    from rlhf_ext.data.ranking import ranked_pairs
    from rlhf_ext.shared_prompt import SHARED_KEYS, common_prefix_length

    tok = AutoTokenizer.from_pretrained(spec["tokenizer"])
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=spec["hidden"],
        intermediate_size=spec["hidden"] * 8 // 3,
        num_hidden_layers=spec["layers"],
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        num_labels=1,
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(cfg)
    n_params = sum(p.numel() for p in model.parameters())

    rng = random.Random(spec["k"])
    low, high = 4, len(tok) - 1  # skip the special tokens
    rows = []
    for _ in range(spec["prompts"]):
        prompt = [rng.randint(low, high) for _ in range(spec["prompt_len"])]
        completions = [
            prompt + [rng.randint(low, high) for _ in range(spec["completion_len"])] + [tok.eos_token_id]
            for _ in range(spec["k"])
        ]
        rows.append({"completions_ids": completions, "ranks": rng.sample(range(spec["k"]), spec["k"])})
    common = dict(
        output_dir=tempfile.mkdtemp(),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
        num_train_epochs=1,
        max_length=None,
        seed=0,
        dataloader_drop_last=False,
    )
    packed = []
    if spec["side"] in ("shared", "ranked"):
        data = Dataset.from_list(rows)
        args = RankedRewardConfig(
            per_device_train_batch_size=spec["batch"], shared_prompt=spec["side"] == "shared", **common
        )
        trainer = RankedRewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
        collate = trainer.data_collator.torch_call

        def recording(examples):
            batch = collate(examples)
            packed.append(SHARED_KEYS[0] in batch)
            return batch

        trainer.data_collator.torch_call = recording
        sequences = sum(len(r["completions_ids"]) for r in rows)
        tokens = sum(len(c) for r in rows for c in r["completions_ids"])
        if spec["side"] == "shared":
            tokens = 0
            for r in rows:
                prefix = common_prefix_length(r["completions_ids"])
                tokens += prefix + sum(len(c) - prefix for c in r["completions_ids"])
    else:
        pairs = [
            {"chosen_ids": r["completions_ids"][w], "rejected_ids": r["completions_ids"][lo]}
            for r in rows
            for w, lo in ranked_pairs(r["ranks"])
        ]
        data = Dataset.from_list(pairs)
        args = RewardConfig(per_device_train_batch_size=max(1, spec["batch"] * spec["k"] // 2), **common)
        trainer = RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
        sequences = 2 * len(pairs)
        tokens = sum(len(p["chosen_ids"]) + len(p["rejected_ids"]) for p in pairs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if spec["side"] == "shared" and not all(packed):
        tokens = None  # some batches ran unshared (packing did not pay): the packed count does not apply
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "sequences": sequences,
        "tokens": tokens,
        "packed_batches": sum(packed),
        "comparisons": spec["prompts"] * comb(spec["k"], 2),
        "params": n_params,
        "peak_rss_mb": rss_peak / 1024,
        "train_rss_growth_mb": (rss_peak - rss_before) / 1024,
        "steps": trainer.state.global_step,
    }


def _run_child(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict]) -> dict:
    """The fastest run of a side (least disturbed by other processes) and what all runs measured."""
    best = min(runs, key=lambda x: x["seconds"])
    return {
        **{k: best[k] for k in ("sequences", "tokens", "packed_batches", "comparisons", "params", "steps")},
        "seconds": best["seconds"],
        "cpu_seconds": min(x["cpu_seconds"] for x in runs),
        "runs_seconds": [round(x["seconds"], 2) for x in runs],
        "peak_rss_mb": max(x["peak_rss_mb"] for x in runs),
        "train_rss_growth_mb": max(x["train_rss_growth_mb"] for x in runs),
    }


def speed(args, tokenizer_path) -> list[dict]:
    results = []
    for shape in args.shapes:
        prompt_len, completion_len = SHAPES[shape]
        print(
            f"== Part 1, {SHAPE_TITLES[shape]}: one epoch, shared vs ranked (RankedRewardTrainer) vs pairs "
            f"(trl.RewardTrainer); {args.prompts} prompts, batch {args.batch} prompts, {args.threads} thread(s), "
            f"{args.repeats} repeat(s) interleaved",
            flush=True,
        )
        for k in args.ks:
            runs = {side: [] for side in SIDES}
            for repeat in range(args.repeats):
                order = SIDES[repeat % 3 :] + SIDES[: repeat % 3]
                for side in order:
                    spec = dict(
                        side=side,
                        k=k,
                        prompts=args.prompts,
                        prompt_len=prompt_len,
                        completion_len=completion_len,
                        hidden=args.hidden,
                        layers=args.layers,
                        batch=args.batch,
                        threads=args.threads,
                        tokenizer=tokenizer_path,
                    )
                    runs[side].append(_run_child(spec))
            row = {"shape": shape, "prompt_len": prompt_len, "completion_len": completion_len, "k": k}
            row.update({side: _summary(runs[side]) for side in SIDES})
            results.append(row)
            print(_speed_line(row), flush=True)
    return results


def _speed_line(row: dict) -> str:
    s, r, p = row["shared"], row["ranked"], row["pairs"]
    return (
        f"K={row['k']}: {r['params'] / 1e6:.1f}M params, {r['comparisons']} comparisons | "
        + " | ".join(
            f"{name} {x['sequences']} seqs/{x['tokens'] or '-'} tokens/{x['steps']} steps: wall {x['seconds']:.1f}s "
            f"(runs {x['runs_seconds']}), CPU {x['cpu_seconds']:.1f}s, peak RSS {x['peak_rss_mb']:.0f} MB"
            for name, x in (("shared", s), ("ranked", r), ("pairs", p))
        )
        + f"\n      ranked/pairs wall {p['seconds'] / r['seconds']:.2f}x CPU {p['cpu_seconds'] / r['cpu_seconds']:.2f}x"
        f" (goal {0.8 * (row['k'] - 1):.1f}); shared/ranked wall {r['seconds'] / s['seconds']:.2f}x"
        f" CPU {r['cpu_seconds'] / s['cpu_seconds']:.2f}x; shared/pairs wall {p['seconds'] / s['seconds']:.2f}x"
        f" CPU {p['cpu_seconds'] / s['cpu_seconds']:.2f}x; packed batches {s['packed_batches']}/{s['steps']}"
    )


# ---------------------------------------------------------------------------------------------------------------
# Part 2: held-out accuracy after one epoch
# ---------------------------------------------------------------------------------------------------------------


def heldout_accuracy(model, tok, rows):
    import torch

    from rlhf_ext.data.ranking import ranked_pairs

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for row in rows:
            texts = [row["prompt"] + c + tok.eos_token for c in row["completions"]]
            enc = tok(texts, return_tensors="pt", padding=True)
            r = model(**enc).logits[:, 0].tolist()
            for w, lo in ranked_pairs(row["ranks"]):
                correct += r[w] > r[lo]
                total += 1
    return correct / total


def learning(args, paths):
    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
    from rlhf_ext.data.ranking import ranked_pairs

    tok = AutoTokenizer.from_pretrained(paths.tokenizer)
    k = args.acc_k
    train, test = count_ranked(args.acc_prompts, 0, k, noise=args.acc_noise), count_ranked(200, 1, k)
    pairs = [
        {"prompt": r["prompt"], "chosen": r["completions"][w], "rejected": r["completions"][lo]}
        for r in train
        for w, lo in ranked_pairs(r["ranks"])
    ]
    mean_pairs = len(pairs) / len(train)
    common = dict(
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
        num_train_epochs=1,
        learning_rate=args.acc_lr,
        seed=0,
    )
    print(
        f"== Part 2: held-out pairwise accuracy after one epoch; {len(train)} prompts x K={k} "
        f"({len(pairs)} comparisons, ties excluded), labeler noise sd {args.acc_noise}, noise-free held-out set, "
        f"tiny Llama RM, lr {args.acc_lr}"
    )
    accuracies = {}
    for seed in range(args.acc_seeds):
        common["seed"] = seed
        ranked = RankedRewardTrainer(
            model=str(paths.reward_model),
            args=RankedRewardConfig(
                output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.acc_batch, **common
            ),
            train_dataset=Dataset.from_list(train),
            processing_class=tok,
        )
        pair_batch = max(1, round(args.acc_batch * mean_pairs))
        shuffled = RewardTrainer(
            model=str(paths.reward_model),
            args=RewardConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=pair_batch, **common),
            train_dataset=Dataset.from_list(pairs),
            processing_class=tok,
        )
        for name, trainer in (("ranked", ranked), ("shuffled pairs", shuffled)):
            start = time.perf_counter()
            trainer.train()
            took = time.perf_counter() - start
            acc = heldout_accuracy(trainer.model, tok, test)
            accuracies.setdefault(name, []).append(acc)
            print(f"  seed {seed} {name:>14}: {trainer.state.global_step} steps, {took:.1f}s, held-out acc {acc:.3f}")
    for name, values in accuracies.items():
        print(
            f"  {name:>14}: mean held-out pairwise accuracy {statistics.mean(values):.3f} over {len(values)} seed(s)"
        )
    return {
        "prompts": len(train),
        "k": k,
        "comparisons": len(pairs),
        "noise": args.acc_noise,
        "lr": args.acc_lr,
        "seeds": args.acc_seeds,
        "accuracy": {name: values for name, values in accuracies.items()},
    }


# ---------------------------------------------------------------------------------------------------------------
# Tables for docs/ranked_reward.md, from the JSON of a run
# ---------------------------------------------------------------------------------------------------------------


def _x(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render_tables(results: dict) -> dict[str, str]:
    """Markdown for each marked block of docs/ranked_reward.md, from the JSON written by ``--json``."""
    setup = results["setup"]
    blocks = {}
    header = (
        f"Measured {setup['date']} ({setup['machine']}; {setup['params_m']:.1f}M-parameter Llama, "
        f"{setup['prompts']} prompts per K, batch {setup['batch']} prompts, {setup['threads']} thread, "
        f"{setup['repeats']} interleaved repeat(s), fastest run per side; load average {setup['load_before']} before, "
        f"{setup['load_after']} after). Command: `{setup['command']}`."
    )
    for shape in SHAPES:
        rows = [row for row in results["speed"] if row["shape"] == shape]
        if not rows:
            continue
        lines = [
            header,
            "",
            "| K | comparisons | tokens per epoch: shared / ranked / pairs | wall: shared / ranked / pairs "
            "| CPU: shared / ranked / pairs | ranked vs pairs (wall, CPU) | shared vs ranked (wall, CPU) "
            "| shared vs pairs (wall, CPU) | packed batches | peak RSS MB: shared / ranked / pairs |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            s, r, p = row["shared"], row["ranked"], row["pairs"]
            shared_tokens = s["tokens"] if s["tokens"] is not None else "(not packed)"
            lines.append(
                f"| {row['k']} | {r['comparisons']} | {shared_tokens} / {r['tokens']} / {p['tokens']} "
                f"| {s['seconds']:.1f} / {r['seconds']:.1f} / {p['seconds']:.1f} s "
                f"| {s['cpu_seconds']:.1f} / {r['cpu_seconds']:.1f} / {p['cpu_seconds']:.1f} s "
                f"| {_x(p['seconds'], r['seconds'])}, {_x(p['cpu_seconds'], r['cpu_seconds'])} "
                f"| {_x(r['seconds'], s['seconds'])}, {_x(r['cpu_seconds'], s['cpu_seconds'])} "
                f"| {_x(p['seconds'], s['seconds'])}, {_x(p['cpu_seconds'], s['cpu_seconds'])} "
                f"| {s['packed_batches']} / {s['steps']} "
                f"| {s['peak_rss_mb']:.0f} / {r['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f} |"
            )
        goal = next((row for row in rows if row["k"] == 4), None)
        if shape == "tldr" and goal is not None:
            s, r, p = goal["shared"], goal["ranked"], goal["pairs"]
            lines += [
                "",
                f"Goals at K = 4: shared vs ranked {_x(r['seconds'], s['seconds'])} wall, "
                f"{_x(r['cpu_seconds'], s['cpu_seconds'])} CPU (goal 2.5x: "
                f"{_met(min(r['seconds'] / s['seconds'], r['cpu_seconds'] / s['cpu_seconds']) >= 2.5)}); "
                f"shared vs pairs {_x(p['seconds'], s['seconds'])} wall, {_x(p['cpu_seconds'], s['cpu_seconds'])} CPU "
                f"(goal 7x: {_met(min(p['seconds'] / s['seconds'], p['cpu_seconds'] / s['cpu_seconds']) >= 7)}); "
                f"peak RSS shared {s['peak_rss_mb']:.0f} MB vs ranked {r['peak_rss_mb']:.0f} MB (goal: not more: "
                f"{_met(s['peak_rss_mb'] <= r['peak_rss_mb'])}).",
            ]
        blocks[f"speed-{shape}"] = "\n".join(lines)
    if results.get("learning"):
        learned = results["learning"]
        means = {name: statistics.mean(v) for name, v in learned["accuracy"].items()}
        blocks["learning"] = (
            f"Held-out pairwise accuracy after one epoch ({learned['prompts']} prompts x K = {learned['k']}, "
            f"{learned['comparisons']} comparisons, labeler noise sd {learned['noise']}, noise-free held-out set, "
            f"tiny Llama RM, {learned['seeds']} seeds): "
            + ", ".join(f"{name} {value:.3f}" for name, value in means.items())
            + "."
        )
    return blocks


def _diff(value) -> str:
    return f"{value:.1e}" if isinstance(value, float) else f"fails: `{value}`"


def render_designs_table(results: dict) -> str:
    """Markdown for the JSON of benchmarks/bench_shared_prompt_designs.py (packed vs KV cache vs unshared)."""
    setup = results["setup"]
    lines = [
        f"Measured {setup['date']} ({setup['machine']}; {setup['params_m']:.1f}M-parameter Llama, "
        f"{setup['batch']} elements of {setup['prompt_len']} + {setup['completion_len']} tokens per step, "
        f"{setup['threads']} thread, mean of {setup['steps']} steps after a warm-up, fastest of "
        f"{setup['repeats']} interleaved repeat(s)). Command: `{setup['command']}`.",
        "",
        "| K | design | CPU s / step | wall s / step | CPU vs unshared | peak RSS MB | max reward diff "
        "| max reward diff, gradient checkpointing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        base = row["unshared"]["cpu_seconds"]
        for design in ("unshared", "packed", "kv_cache"):
            x = row[design]
            lines.append(
                f"| {row['k']} | {design} | {x['cpu_seconds']:.2f} | {x['seconds']:.2f} | "
                f"{_x(base, x['cpu_seconds'])} | {x['peak_rss_mb']:.0f} | {x['max_reward_diff']:.1e} "
                f"| {_diff(row['checkpointing'][design])} |"
            )
    return "\n".join(lines)


def render_docs(json_paths: list[Path], page: Path = DOCS_PAGE) -> str:
    """``page``'s text with every ``<!-- bench_ranked_reward:NAME -->`` ... ``<!-- /bench_ranked_reward:NAME -->``
    block replaced by the table rendered from the JSON files (this benchmark's, and optionally the one of
    benchmarks/bench_shared_prompt_designs.py)."""
    text = page.read_text()
    blocks = {}
    for path in json_paths:
        results = json.loads(Path(path).read_text())
        blocks.update({"designs": render_designs_table(results)} if "rows" in results else render_tables(results))
    for name, body in blocks.items():
        start, end = f"<!-- bench_ranked_reward:{name} -->", f"<!-- /bench_ranked_reward:{name} -->"
        if start not in text or end not in text:
            raise ValueError(f"{page} has no {start} ... {end} block")
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = f"{before}{start}\n{body}\n{end}{after}"
    return text


def _without_machine(argv: list[str]) -> list[str]:
    """The command line minus ``--machine TEXT`` (a description for the docs, not a setting to re-run with)."""
    return [a for i, a in enumerate(argv) if not a.startswith("--machine") and (i == 0 or argv[i - 1] != "--machine")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 9])
    ap.add_argument("--prompts", type=int, default=4, help="prompts per K in the speed part")
    ap.add_argument("--batch", type=int, default=2, help="prompts per ranked batch")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=7, help="7 layers x 512 hidden ~ 20M parameters")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--acc-prompts", type=int, default=60)
    ap.add_argument("--acc-k", type=int, default=4)
    ap.add_argument("--acc-batch", type=int, default=4)
    ap.add_argument("--acc-lr", type=float, default=1.5e-4)
    ap.add_argument("--acc-seeds", type=int, default=3)
    ap.add_argument("--acc-noise", type=float, default=1.5, help="sd of Gaussian noise on the labeled scores")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--json", type=Path, help="write every measured number to this file")
    ap.add_argument("--machine", default=f"{os.cpu_count()} CPU cores", help="how to describe the machine in docs")
    ap.add_argument(
        "--render-docs",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="rewrite the tables of docs/ranked_reward.md from the JSON of this benchmark (and of "
        "bench_shared_prompt_designs.py)",
    )
    args = ap.parse_args()

    if args.child:
        print(json.dumps(_speed_child(json.loads(args.child))))
        return
    if args.render_docs:
        DOCS_PAGE.write_text(render_docs(args.render_docs))
        print(f"wrote the tables of {DOCS_PAGE} from {', '.join(map(str, args.render_docs))}")
        return

    from rlhf_ext.testing.tiny_models import build_tiny_models

    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    paths = build_tiny_models(os.path.join(tempfile.gettempdir(), "rlhf_ext-bench-tiny"))
    speed_results = [] if args.skip_speed else speed(args, str(paths.tokenizer))
    learned = None if args.skip_accuracy else learning(args, paths)
    if args.json:
        command = shlex.join(["python", "benchmarks/bench_ranked_reward.py", *_without_machine(sys.argv[1:])])
        results = {
            "setup": {
                "date": datetime.date.today().isoformat(),
                "machine": args.machine,
                "platform": platform.platform(),
                "command": command,
                "params_m": speed_results[0]["ranked"]["params"] / 1e6 if speed_results else 0.0,
                "prompts": args.prompts,
                "batch": args.batch,
                "threads": args.threads,
                "repeats": args.repeats,
                "load_before": load_before,
                "load_after": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
            },
            "speed": speed_results,
            "learning": learned,
        }
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
