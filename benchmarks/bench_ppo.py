"""How much does rlhf_ext's PPO cost over plain GRPO, and what does the pretraining mixture (ptx) add?

Runs, each in a fresh subprocess (so peak RSS is per configuration), on the same policy, prompts, reward function and
batch settings (episodes per batch, response length, epochs, reference model):

- ``grpo``: ``trl.GRPOTrainer`` (the parent class; no value head, group-relative advantages);
- ``ppo``: ``rlhf_ext.PPOTrainer`` with ``ptx_coef=0``;
- ``ppo+ptx``: ``rlhf_ext.PPOTrainer`` with ``ptx_coef=1`` and ``--ptx-batch`` pretraining rows per optimizer step;
- ``ppo+critic``: ``rlhf_ext.PPOTrainer`` with a separate critic (``value_model_path`` = the policy's own folder, a
  sequence classifier of the same size with a zero-initialised head) instead of the value head on the policy trunk;
- ``trl112`` (with ``--trl112``): TRL 1.12's own ``PPOTrainer`` in a separate venv (``$TRL112_VENV``, default
  ``<tmp>/rlhf_ext-venv-trl112``, created on first use with ``python -m venv`` and pip: torch 2.13, ``trl==1.12.0``
  and a transformers it accepts).

Configurations are interleaved over ``--repeats`` rounds so load from other processes hits all alike; the median
episodes/s is reported. Default model: a random Llama (hidden 256, 4 layers) on the tiny test tokenizer;
``--model smollm2`` uses the offline SmolLM2-135M.

    python benchmarks/bench_ppo.py --steps 8 --repeats 3
    python benchmarks/bench_ppo.py --model smollm2 --configs ppo,ppo+critic --repeats 3   # trunk head vs critic
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = ["The movie was", "A story about", "The team won", "Scientists said", "Once upon a time", "The council"]
PTX_TEXT = (
    "The council voted on Tuesday to approve the new budget for schools and roads. Scientists said the storm would "
    "reach the coast by the weekend, bringing heavy rain. Once upon a time there was a small village by the sea. "
)


def build_model(folder: Path, kind: str) -> tuple[str, str]:
    """Return (model path, tokenizer path), building the random model once."""
    if kind == "smollm2":
        from rlhf_ext.offline import smollm2_path

        path = str(smollm2_path())
        return path, path
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlhf_ext.testing.tiny_models import build_tokenizer

    path = folder / "bench-llama"
    if not (path / "config.json").exists():
        tok = build_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=256,
            intermediate_size=512,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=4,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=False,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return str(path), str(path)


def low_half_reward(completion_ids, **kwargs):
    return [sum(t < 192 for t in ids) / max(1, len(ids)) for ids in completion_ids]


def common_kwargs(opts, out: str) -> dict:
    return dict(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=opts.batch,
        steps_per_generation=opts.minibatches,
        num_generations=2,
        max_completion_length=opts.tokens,
        learning_rate=1e-5,
        max_steps=opts.steps,
        logging_steps=1,
        gradient_checkpointing=False,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        temperature=1.0,
    )


def run_one(name: str, opts) -> dict:
    """Train one configuration in this process; return its figures."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import transformers

    torch.set_num_threads(opts.threads)
    from datasets import Dataset
    from transformers import AutoTokenizer

    transformers.logging.set_verbosity_error()
    model_path, tok_path = build_model(Path(opts.workdir), opts.model)
    tok = AutoTokenizer.from_pretrained(tok_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompts = Dataset.from_dict({"prompt": PROMPTS * 64})
    out = tempfile.mkdtemp(prefix=f"bench-{name}-")
    kwargs = common_kwargs(opts, out)
    if name == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        args = GRPOConfig(**kwargs, beta=opts.kl_coef, num_iterations=opts.epochs)
        trainer = GRPOTrainer(
            model=model_path, reward_funcs=low_half_reward, args=args, train_dataset=prompts, processing_class=tok
        )
    else:
        from rlhf_ext import PPOConfig, PPOTrainer

        ptx = name == "ppo+ptx"
        args = PPOConfig(
            **kwargs,
            kl_coef=opts.kl_coef,
            num_ppo_epochs=opts.epochs,
            ptx_coef=1.0 if ptx else 0.0,
            ptx_batch_size=opts.ptx_batch,
            ptx_max_length=opts.ptx_tokens,
            value_model_path=model_path if name == "ppo+critic" else None,
        )
        ptx_data = Dataset.from_dict({"text": [PTX_TEXT * 4] * 64}) if ptx else None
        trainer = PPOTrainer(
            model=model_path,
            reward_funcs=low_half_reward,
            args=args,
            train_dataset=prompts,
            processing_class=tok,
            ptx_dataset=ptx_data,
        )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    episodes = opts.steps * opts.batch // opts.epochs  # episodes generated in the run
    ptx_tokens = 0
    if name == "ppo+ptx":
        batch = trainer.draw_ptx_batch()
        ptx_tokens = int(batch["attention_mask"].sum())
    return {
        "config": name,
        "seconds": seconds,
        "episodes": episodes,
        "episodes_per_s": episodes / seconds,
        "ptx_tokens_per_step": ptx_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------------------------------------------------------
# TRL 1.12 in its own venv
# ------------------------------------------------------------------------------------------------------------------

TRL112_VENV = Path(os.environ.get("TRL112_VENV", Path(tempfile.gettempdir()) / "rlhf_ext-venv-trl112"))
TRL112_PINS = ["torch==2.13.0", "trl==1.12.0", "transformers>=4.56,<5.24", "accelerate", "datasets", "peft"]


def ensure_trl112_venv() -> Path:
    python = TRL112_VENV / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(TRL112_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)  # first, so the HF packages do not pull another build
    subprocess.run(pip + TRL112_PINS, check=True)
    return python


TRL112_SCRIPT = r"""
import json, os, resource, sys, tempfile, time
os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
import torch, transformers
transformers.logging.set_verbosity_error()
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
try:
    from trl.experimental.ppo import PPOConfig, PPOTrainer
except ImportError:
    from trl import PPOConfig, PPOTrainer
opts = json.loads(sys.argv[1])
tok = AutoTokenizer.from_pretrained(opts["model"])
policy = AutoModelForCausalLM.from_pretrained(opts["model"])
ref = AutoModelForCausalLM.from_pretrained(opts["model"])
value = AutoModelForSequenceClassification.from_pretrained(opts["model"], num_labels=1)
reward = AutoModelForSequenceClassification.from_pretrained(opts["model"], num_labels=1)
prompts = [p for p in opts["prompts"] for _ in range(2)] * 64
ds = Dataset.from_dict({"input_ids": [tok(p)["input_ids"] for p in prompts]})
args = PPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, report_to="none",
    per_device_train_batch_size=opts["batch"], num_mini_batches=opts["minibatches"],
    gradient_accumulation_steps=1, num_ppo_epochs=opts["epochs"], response_length=opts["tokens"],
    total_episodes=opts["episodes"], learning_rate=1e-5, kl_coef=opts["kl_coef"], num_sample_generations=0,
    save_strategy="no", logging_steps=1, temperature=1.0, stop_token="eos", seed=0)
trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
    value_model=value, train_dataset=ds)
start = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - start
print("RESULT " + json.dumps({"config": "trl112", "seconds": seconds, "episodes": opts["episodes"],
    "episodes_per_s": opts["episodes"] / seconds, "ptx_tokens_per_step": 0,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_trl112(opts) -> dict:
    python = ensure_trl112_venv()
    model_path, _ = build_model(Path(opts.workdir), opts.model)
    episodes = opts.steps * opts.batch // opts.epochs
    payload = dict(
        model=model_path,
        prompts=PROMPTS,
        batch=opts.batch,
        minibatches=opts.minibatches,
        epochs=opts.epochs,
        tokens=opts.tokens,
        episodes=episodes,
        kl_coef=opts.kl_coef,
    )
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS=str(opts.threads), OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run(
        [str(python), "-c", TRL112_SCRIPT, json.dumps(payload)], capture_output=True, text=True, env=env
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"TRL 1.12 run failed:\n{proc.stderr[-3000:]}")


# ------------------------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["small", "smollm2"], default="small")
    ap.add_argument("--batch", type=int, default=8, help="episodes per minibatch (per_device_train_batch_size)")
    ap.add_argument("--minibatches", type=int, default=2, help="minibatches per batch (steps_per_generation)")
    ap.add_argument("--epochs", type=int, default=2, help="PPO epochs (num_iterations for GRPO)")
    ap.add_argument("--tokens", type=int, default=24, help="response tokens")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    ap.add_argument("--kl-coef", type=float, default=0.05)
    ap.add_argument("--ptx-batch", type=int, default=2, help="pretraining rows per optimizer step")
    ap.add_argument("--ptx-tokens", type=int, default=64, help="pretraining tokens per row")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 degrades least under contention)")
    ap.add_argument("--configs", default="grpo,ppo,ppo+ptx,ppo+critic", help="comma-separated configurations to run")
    ap.add_argument("--trl112", action="store_true", help="also run TRL 1.12's PPOTrainer in a separate venv")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "rlhf_ext_bench_ppo"))
    ap.add_argument("--json", help="also write every run's figures to this JSON file")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one configuration and print JSON
    opts = ap.parse_args()
    Path(opts.workdir).mkdir(parents=True, exist_ok=True)

    if opts.only:
        print("RESULT " + json.dumps(run_one(opts.only, opts)))
        return

    build_model(Path(opts.workdir), opts.model)
    configs = opts.configs.split(",")
    unknown = set(configs) - {"grpo", "ppo", "ppo+ptx", "ppo+critic"}
    if unknown:
        ap.error(f"unknown configurations {sorted(unknown)}")
    results: dict[str, list[dict]] = {c: [] for c in configs}
    forwarded = [a for a in sys.argv[1:] if a != "--trl112"]
    for round_ in range(opts.repeats):
        for config in configs:
            proc = subprocess.run(
                [sys.executable, __file__, *forwarded, "--only", config],
                capture_output=True,
                text=True,
                env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"),
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
            results[config].append(json.loads(line[len("RESULT ") :]))
            r = results[config][-1]
            print(f"round {round_ + 1} {config:8s} {r['episodes_per_s']:7.2f} episodes/s  {r['seconds']:6.2f} s")
    if opts.trl112:
        results["trl112"] = []
        for round_ in range(opts.repeats):
            results["trl112"].append(run_trl112(opts))
            print(f"round {round_ + 1} trl112   {results['trl112'][-1]['episodes_per_s']:7.2f} episodes/s")

    # PPO tokens per optimizer step in the policy forward/backward: minibatch rows x (prompt + response) tokens
    ppo_tokens = opts.batch * (4 + opts.tokens)
    print()
    print(
        f"model={opts.model} episodes/batch={opts.batch * opts.minibatches} minibatches={opts.minibatches} "
        f"epochs={opts.epochs} response_tokens={opts.tokens} steps={opts.steps} repeats={opts.repeats}"
    )
    baseline = "grpo" if "grpo" in results else configs[0]
    print(f"{'config':10s} {'episodes/s':>11s} {'time vs ' + baseline:>13s} {'peak RSS MB':>12s}")
    base = statistics.median(r["episodes_per_s"] for r in results[baseline])
    eps, rss = {}, {}
    for config, rows in results.items():
        eps[config] = statistics.median(r["episodes_per_s"] for r in rows)
        rss[config] = max(r["peak_rss_mb"] for r in rows)
        print(f"{config:10s} {eps[config]:11.2f} {base / eps[config] - 1:+13.1%} {rss[config]:12.0f}")
    if "ppo" in eps and "ppo+ptx" in eps:
        ptx_tokens = results["ppo+ptx"][0]["ptx_tokens_per_step"]
        print(
            f"ptx: +{ptx_tokens} tokens per optimizer step = {ptx_tokens / ppo_tokens:.0%} of the ~{ppo_tokens} "
            f"policy tokens per step; time overhead of ptx on vs off: {eps['ppo'] / eps['ppo+ptx'] - 1:+.1%}"
        )
    if "ppo" in eps and "ppo+critic" in eps:
        print(
            f"separate critic vs trunk head: episodes/s x{eps['ppo+critic'] / eps['ppo']:.2f}, "
            f"peak RSS x{rss['ppo+critic'] / rss['ppo']:.2f} (+{rss['ppo+critic'] - rss['ppo']:.0f} MB)"
        )
    if opts.json:
        Path(opts.json).write_text(json.dumps({"options": vars(opts), "results": results}, indent=2))


if __name__ == "__main__":
    main()
