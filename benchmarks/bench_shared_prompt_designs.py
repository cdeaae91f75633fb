"""Two ways to encode a ranked element's prompt once, measured against one row per completion.

The element is one prompt (P tokens) with K completions (C tokens); a training step scores B such elements with a
random-init Llama scalar reward model (~20M parameters, as benchmarks/bench_ranked_reward.py) and back-propagates.

- ``unshared``: K rows of prompt + completion (K(P + C) tokens), today's path with ``shared_prompt=False``;
- ``packed`` (what rlhf_ext.shared_prompt does): one row [prompt, y_1..y_K] per element with a block attention mask
  and restarted position ids, one forward (P + KC tokens);
- ``kv_cache``: a forward of the B prompts with a KV cache, the cache repeated K times, a forward of the B*K
  completions on it (two model calls; gradients flow into the prompt through the cache tensors).

Each design runs in a fresh subprocess (its own peak RSS); the designs are interleaved per repeat. Reported: CPU
seconds per step (the least sensitive to other load on the machine), wall seconds, peak RSS, and the largest
difference of the rewards from the unshared ones, without and with gradient checkpointing (TRL's default): in
transformers 5 checkpointed decoder layers drop the cache argument, so the cached design gets no prompt keys and
values (here it fails on the attention mask's length; without an explicit mask it would score the completions
without their prompt).

    python benchmarks/bench_shared_prompt_designs.py --json docs/bench_shared_prompt_designs.json   # ~10 min
    # its table in docs/ranked_reward.md: python benchmarks/bench_ranked_reward.py --render-docs <both JSON files>
    python benchmarks/bench_shared_prompt_designs.py --ks 4 --layers 2 --steps 1   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time

DESIGNS = ("unshared", "packed", "kv_cache")


def _child(spec: dict) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from rlhf_ext.shared_prompt import SharedPrompt, pack

    torch.set_num_threads(spec["threads"])
    B, K, P, C, V = spec["batch"], spec["k"], spec["prompt_len"], spec["completion_len"], 384
    config = LlamaConfig(
        vocab_size=V,
        hidden_size=spec["hidden"],
        intermediate_size=spec["hidden"] * 8 // 3,
        num_hidden_layers=spec["layers"],
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        pad_token_id=0,
        num_labels=1,
    )
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config).train()
    if spec["checkpointing"]:
        model.gradient_checkpointing_enable({"use_reentrant": False})
    generator = torch.Generator().manual_seed(0)
    prompts = torch.randint(4, V, (B, P), generator=generator)
    completions = torch.randint(4, V, (B, K, C), generator=generator)
    full = torch.cat([prompts[:, None].expand(B, K, P), completions], -1).reshape(B * K, P + C)
    groups = [[row.tolist() for row in full[b * K : (b + 1) * K]] for b in range(B)]
    shared = pack(groups, 0, width=P + C, force=True)
    sharer = SharedPrompt(True, "reward")

    def rewards():
        if spec["design"] == "unshared":
            return model(full, attention_mask=torch.ones_like(full), use_cache=False).logits.squeeze(-1)
        if spec["design"] == "packed":
            return sharer.rewards(model, full, shared)
        out = model.model(prompts, use_cache=True)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        if cache is not None:
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.repeat_interleave(K, 0), layer.values.repeat_interleave(K, 0)
        ids = completions.reshape(B * K, C)
        positions = (P + torch.arange(C))[None].expand(B * K, C)
        mask = torch.ones(B * K, P + C, dtype=torch.long)
        return model(ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True).logits.squeeze(-1)

    with torch.no_grad():
        model.eval()
        reference = model(full, attention_mask=torch.ones_like(full), use_cache=False).logits.squeeze(-1)
        model.train()
    values = rewards()
    values.square().sum().backward()  # warm-up step
    model.zero_grad()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(spec["steps"]):
        rewards().square().sum().backward()
        model.zero_grad()
    return {
        "seconds": (time.perf_counter() - start) / spec["steps"],
        "cpu_seconds": (time.process_time() - cpu_start) / spec["steps"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "max_reward_diff": (values.detach() - reference).abs().max().item(),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def _run(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _without_machine(argv: list[str]) -> list[str]:
    """The command line minus ``--machine TEXT`` (a description for the docs, not a setting to re-run with)."""
    return [a for i, a in enumerate(argv) if not a.startswith("--machine") and (i == 0 or argv[i - 1] != "--machine")]


def _checkpointed_diff(spec: dict) -> float | str:
    try:
        return _run(dict(spec, checkpointing=True))["max_reward_diff"]
    except RuntimeError as error:
        return str(error).strip().splitlines()[-1][:160]


def _shown(value) -> str:
    return f"{value:.1e}" if isinstance(value, float) else value


def main():
    import datetime

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 9])
    ap.add_argument("--batch", type=int, default=2, help="ranked elements (prompts) per step")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--completion-len", type=int, default=49, help="48 tokens + EOS")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--machine", default=f"{os.cpu_count()} CPU cores")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    common = dict(
        batch=args.batch,
        prompt_len=args.prompt_len,
        completion_len=args.completion_len,
        hidden=args.hidden,
        layers=args.layers,
        threads=args.threads,
    )
    rows = []
    for k in args.ks:
        runs = {d: [] for d in DESIGNS}
        for repeat in range(args.repeats):
            for design in DESIGNS[repeat % 3 :] + DESIGNS[: repeat % 3]:
                runs[design].append(_run(dict(common, k=k, design=design, steps=args.steps, checkpointing=False)))
        row = {"k": k}
        for design in DESIGNS:
            best = min(runs[design], key=lambda x: x["cpu_seconds"])
            row[design] = {**best, "peak_rss_mb": max(x["peak_rss_mb"] for x in runs[design])}
        # Values only: one step with gradient checkpointing, per design (a number, or the error it raised).
        row["checkpointing"] = {d: _checkpointed_diff(dict(common, k=k, design=d, steps=1)) for d in DESIGNS}
        rows.append(row)
        print(
            f"K={k}: "
            + " | ".join(
                f"{d} CPU {row[d]['cpu_seconds']:.2f}s wall {row[d]['seconds']:.2f}s RSS {row[d]['peak_rss_mb']:.0f}MB "
                f"diff {row[d]['max_reward_diff']:.1e} (checkpointing {_shown(row['checkpointing'][d])})"
                for d in DESIGNS
            ),
            flush=True,
        )
    results = {
        "setup": dict(
            common,
            date=datetime.date.today().isoformat(),
            machine=args.machine,
            steps=args.steps,
            repeats=args.repeats,
            params_m=rows[0]["unshared"]["params_m"],
            command=shlex.join(
                ["python", "benchmarks/bench_shared_prompt_designs.py", *_without_machine(sys.argv[1:])]
            ),
        ),
        "rows": rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
