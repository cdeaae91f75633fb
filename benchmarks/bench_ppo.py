"""How much does rlhf_ext's PPO cost over plain GRPO, what does the pretraining mixture (ptx) add, and how much faster
is it than an earlier commit of rlhf_ext?

Runs, each in a fresh subprocess (so peak RSS is per configuration), on the same policy, prompts, reward and batch
settings (episodes per batch, response length, epochs, reference model):

- ``grpo``: ``trl.GRPOTrainer`` (the parent class; no value head, group-relative advantages);
- ``ppo``: ``rlhf_ext.PPOTrainer`` with ``ptx_coef=0``;
- ``ppo+ptx``: ``rlhf_ext.PPOTrainer`` with ``ptx_coef=1`` and ``--ptx-batch`` pretraining rows per optimizer step;
- ``ppo+critic``: ``rlhf_ext.PPOTrainer`` with a separate critic (``value_model_path`` = the policy's own folder, a
  sequence classifier of the same size with a zero-initialised head) instead of the value head on the policy trunk;
- ``<config>@<rev>``: that configuration with rlhf_ext as it was at git revision ``<rev>`` (a branch, tag or commit):
  the revision is checked out into a temporary ``git worktree`` and the configuration's subprocess imports rlhf_ext
  from there (``PYTHONPATH``; the subprocess checks where it imported it from), with everything else, this script
  included, unchanged. ``--baseline-rev REV`` adds ``<config>@REV`` for every configuration (``ppo:-<switch>``
  becomes ``ppo@REV:-<switch>``);
- ``<config>:-<switch>``: that configuration with one of ``PPOConfig``'s speed-up switches off
  (``rlhf_ext.fast_rollouts``: ``logprobs_from_sampler``, ``merge_adapters_for_generation``, ``compact_lm_head``,
  ``trim_prompt_padding``);
  ``--ablate`` adds ``ppo:-<switch>`` for each;
- ``trl112`` (with ``--trl112``): TRL 1.12's own ``PPOTrainer`` in a separate venv (``$TRL112_VENV``, default
  ``<tmp>/rlhf_ext-venv-trl112``, created on first use with ``python -m venv`` and pip: torch 2.13, ``trl==1.12.0``
  and a transformers it accepts).

Configurations are interleaved over ``--repeats`` rounds so load from other processes hits all alike; the median
episodes/s is reported, with each configuration's speed relative to the first one. Default model: a random Llama
(hidden 256, 4 layers) on the tiny test tokenizer, a length reward function and 2 responses per prompt;
``--model smollm2`` uses the offline SmolLM2-135M. ``--setting sentiment-offline`` (with ``--model smollm2``) takes
every PPO and LoRA setting from ``recipes/configs/ppo_sentiment_offline.yaml`` (the demo's PPO stage: LoRA r=16 on
every linear layer, 64 episodes per batch in 2 minibatches, 2 epochs, 24 tokens at temperature 0.7, adaptive KL),
the Rotten Tomatoes review openings as prompts and a MiniLM reward model (all-MiniLM-L6-v2 with a seeded head, the
demo's reward-model architecture); ``--steps`` and ``--threads`` stay the script's.

    python benchmarks/bench_ppo.py --steps 8 --repeats 3
    python benchmarks/bench_ppo.py --model smollm2 --configs ppo,ppo+critic --repeats 3   # trunk head vs critic
    # the PPO speed-up on the demo's settings, against the commit before it, and each switch's share:
    python benchmarks/bench_ppo.py --model smollm2 --setting sentiment-offline --configs ppo --baseline-rev b5eec20 \
        --ablate --steps 8 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SWITCHES = ("logprobs_from_sampler", "merge_adapters_for_generation", "compact_lm_head", "trim_prompt_padding")
# The demo's PPO config: recipe-only keys (and those the benchmark sets itself) are not PPOConfig arguments.
SENTIMENT_CONFIG = ROOT / "recipes" / "configs" / "ppo_sentiment_offline.yaml"
NOT_TRAINER_ARGS = {"model_name_or_path", "reward_model", "output_dir", "num_prompts", "max_steps", "logging_steps",
                    "save_strategy", "report_to"}  # fmt: skip
LORA_KEYS = {"use_peft", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"}
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


def sentiment_setting() -> tuple[dict, dict]:
    """(PPOConfig arguments, LoRA arguments) of the demo's PPO stage, from its YAML config."""
    import yaml

    config = yaml.safe_load(SENTIMENT_CONFIG.read_text())
    lora = {k: config.pop(k) for k in LORA_KEYS if k in config}
    return {k: v for k, v in config.items() if k not in NOT_TRAINER_ARGS}, lora


def build_reward_model(folder: Path) -> str:
    """all-MiniLM-L6-v2 with a seeded scalar head, saved once: the demo's reward-model architecture."""
    path = folder / "bench-minilm-reward"
    if not (path / "config.json").exists():
        import torch

        from rlhf_ext.models import load_reward_model

        torch.manual_seed(0)
        model, tok = load_reward_model("offline")
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return str(path)


def parse_config(config: str) -> tuple[str, str | None, list[str]]:
    """``base[@rev][:-switch...]`` -> (base, rev, switches turned off)."""
    base, *offs = config.split(":")
    base, _, rev = base.partition("@")
    switches = [o[1:] for o in offs]
    if any(not o.startswith("-") for o in offs) or set(switches) - set(SWITCHES):
        raise ValueError(f"{config}: a switch is written :-name, with name one of {SWITCHES}")
    return base, rev or None, switches


def at_rev(config: str, rev: str) -> str:
    """``base[:-switch...]`` at git revision ``rev``: ``ppo:-trim_prompt_padding`` -> ``ppo@REV:-trim_prompt_padding``."""
    base, *offs = config.split(":")
    return ":".join([f"{base}@{rev}", *offs])


def common_kwargs(opts, out: str) -> dict:
    kwargs = dict(
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
    if opts.setting == "sentiment-offline":
        setting, _ = sentiment_setting()
        kwargs.update(setting, num_generations=1, max_steps=opts.steps, logging_steps=opts.steps)
        for key in ("num_ppo_epochs", "ptx_coef"):  # set per configuration below
            kwargs.pop(key, None)
    return kwargs


def episodes_per_run(opts) -> int:
    if opts.setting == "sentiment-offline":
        setting, _ = sentiment_setting()
        minibatch = setting["per_device_train_batch_size"] * setting.get("gradient_accumulation_steps", 1)
        return opts.steps * minibatch // setting["num_ppo_epochs"]
    return opts.steps * opts.batch // opts.epochs  # episodes generated in the run


def run_one(config: str, opts) -> dict:
    """Train one configuration in this process; return its figures."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import transformers

    import rlhf_ext

    torch.set_num_threads(opts.threads)
    from datasets import Dataset
    from transformers import AutoTokenizer

    name, rev, switches_off = parse_config(config)
    expected_root = Path(os.environ.get("BENCH_RLHF_EXT_ROOT", ROOT)).resolve()
    imported_from = Path(rlhf_ext.__file__).resolve().parent.parent
    if imported_from != expected_root:
        raise RuntimeError(f"{config}: rlhf_ext was imported from {imported_from}, expected {expected_root}")
    transformers.logging.set_verbosity_error()
    model_path, tok_path = build_model(Path(opts.workdir), opts.model)
    tok = AutoTokenizer.from_pretrained(tok_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out = tempfile.mkdtemp(prefix=f"bench-{name}-")
    kwargs = common_kwargs(opts, out)
    epochs = opts.epochs
    peft_config, reward = None, low_half_reward
    prompts = Dataset.from_dict({"prompt": PROMPTS * 64})
    if opts.setting == "sentiment-offline":
        from peft import LoraConfig

        from rlhf_ext.continuation import prompt_dataset

        setting, lora = sentiment_setting()
        epochs = setting["num_ppo_epochs"]
        if lora.get("use_peft"):
            peft_config = LoraConfig(
                r=lora["lora_r"],
                lora_alpha=lora["lora_alpha"],
                lora_dropout=lora["lora_dropout"],
                target_modules=lora["lora_target_modules"],
                task_type="CAUSAL_LM",
            )
        reward = build_reward_model(Path(opts.workdir))
        prompts = prompt_dataset("offline", "train").shuffle(seed=0).select(range(512)).select_columns(["prompt"])
    if name == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        kwargs = {k: v for k, v in kwargs.items() if k in GRPOConfig.__dataclass_fields__}
        args = GRPOConfig(**kwargs, beta=opts.kl_coef, num_iterations=epochs)
        trainer = GRPOTrainer(
            model=model_path,
            reward_funcs=reward,
            args=args,
            train_dataset=prompts,
            processing_class=tok,
            peft_config=peft_config,
        )
    else:
        from rlhf_ext import PPOConfig, PPOTrainer

        ptx = name == "ppo+ptx"
        if opts.setting != "sentiment-offline":
            kwargs["kl_coef"] = opts.kl_coef
        args = PPOConfig(
            **kwargs,
            num_ppo_epochs=epochs,
            ptx_coef=1.0 if ptx else 0.0,
            ptx_batch_size=opts.ptx_batch,
            ptx_max_length=opts.ptx_tokens,
            value_model_path=model_path if name == "ppo+critic" else None,
            **{switch: False for switch in switches_off},
        )
        ptx_data = Dataset.from_dict({"text": [PTX_TEXT * 4] * 64}) if ptx else None
        trainer = PPOTrainer(
            model=model_path,
            reward_funcs=reward,
            args=args,
            train_dataset=prompts,
            processing_class=tok,
            ptx_dataset=ptx_data,
            peft_config=peft_config,
        )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    episodes = episodes_per_run(opts)
    ptx_tokens = 0
    if name == "ppo+ptx":
        batch = trainer.draw_ptx_batch()
        ptx_tokens = int(batch["attention_mask"].sum())
    shutil.rmtree(out, ignore_errors=True)
    return {
        "config": config,
        "seconds": seconds,
        "episodes": episodes,
        "episodes_per_s": episodes / seconds,
        "ptx_tokens_per_step": ptx_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


class Worktrees:
    """``git worktree``s of the revisions the configurations name, removed on exit."""

    def __init__(self):
        self.paths: dict[str, Path] = {}
        self.parent = Path(tempfile.mkdtemp(prefix="bench-ppo-rev-"))

    def path(self, rev: str) -> Path:
        if rev not in self.paths:
            commit = subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            path = self.parent / commit[:12]
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
                capture_output=True,
                check=True,
            )
            self.paths[rev] = path
            print(f"{rev} = {commit[:12]}, checked out in {path}")
        return self.paths[rev]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for path in self.paths.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(self.parent, ignore_errors=True)
        return False


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
    ap.add_argument("--setting", choices=["default", "sentiment-offline"], default="default",
                    help="sentiment-offline: every PPO/LoRA setting from recipes/configs/ppo_sentiment_offline.yaml")  # fmt: skip
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
    ap.add_argument("--configs", default="grpo,ppo,ppo+ptx,ppo+critic",
                    help="comma-separated configurations: grpo, ppo, ppo+ptx, ppo+critic, each optionally @<git rev> "
                    "and :-<switch>")  # fmt: skip
    ap.add_argument("--baseline-rev", help="also run every configuration with rlhf_ext at this git revision")
    ap.add_argument("--ablate", action="store_true", help="also run ppo with each speed-up switch off in turn")
    ap.add_argument("--trl112", action="store_true", help="also run TRL 1.12's PPOTrainer in a separate venv")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "rlhf_ext_bench_ppo"))
    ap.add_argument("--json", help="also write every run's figures to this JSON file")
    ap.add_argument("--machine", default=None,
                    help="how to describe the machine in the JSON (default: N CPU cores, no GPU)")  # fmt: skip
    ap.add_argument("--only", help=argparse.SUPPRESS)  # internal: run one configuration and print JSON
    opts = ap.parse_args()
    Path(opts.workdir).mkdir(parents=True, exist_ok=True)
    if opts.setting != "default" and opts.model != "smollm2":
        ap.error("--setting sentiment-offline needs --model smollm2")

    if opts.only:
        print("RESULT " + json.dumps(run_one(opts.only, opts)))
        return

    build_model(Path(opts.workdir), opts.model)
    if opts.setting == "sentiment-offline":
        build_reward_model(Path(opts.workdir))
    configs = opts.configs.split(",")
    if opts.baseline_rev:
        configs += [at_rev(c, opts.baseline_rev) for c in configs if "@" not in c]
    if opts.ablate:
        configs += [f"ppo:-{switch}" for switch in SWITCHES]
    for config in configs:
        try:
            base, _, _ = parse_config(config)
        except ValueError as err:
            ap.error(str(err))
        if base not in {"grpo", "ppo", "ppo+ptx", "ppo+critic"}:
            ap.error(f"unknown configuration {config!r}")
    results: dict[str, list[dict]] = {c: [] for c in configs}
    forwarded = [a for a in sys.argv[1:] if a not in ("--trl112", "--ablate")]
    skip = {"--baseline-rev", "--configs"}
    forwarded = [a for i, a in enumerate(forwarded) if a not in skip and (i == 0 or forwarded[i - 1] not in skip)]
    with Worktrees() as worktrees:
        for round_ in range(opts.repeats):
            for config in configs:
                _, rev, _ = parse_config(config)
                env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", BENCH_RLHF_EXT_ROOT=str(ROOT))
                if rev is not None:
                    tree = worktrees.path(rev)
                    env.update(PYTHONPATH=str(tree), BENCH_RLHF_EXT_ROOT=str(tree))
                proc = subprocess.run(
                    [sys.executable, __file__, *forwarded, "--only", config],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise RuntimeError(f"{config} failed:\n{proc.stderr[-3000:]}")
                results[config].append(json.loads(line[len("RESULT ") :]))
                r = results[config][-1]
                print(
                    f"round {round_ + 1} {config:12s} {r['episodes_per_s']:7.3f} episodes/s  {r['seconds']:7.2f} s",
                    flush=True,
                )
    if opts.trl112:
        results["trl112"] = []
        for round_ in range(opts.repeats):
            results["trl112"].append(run_trl112(opts))
            print(f"round {round_ + 1} trl112   {results['trl112'][-1]['episodes_per_s']:7.2f} episodes/s")

    # PPO tokens per optimizer step in the policy forward/backward: minibatch rows x (prompt + response) tokens
    ppo_tokens = opts.batch * (4 + opts.tokens)
    print()
    if opts.setting == "sentiment-offline":
        setting, lora = sentiment_setting()
        print(
            f"model={opts.model} setting={opts.setting} ({SENTIMENT_CONFIG.relative_to(ROOT)}: LoRA r={lora.get('lora_r')}, "
            f"{setting['per_device_train_batch_size']} episodes x {setting['steps_per_generation']} minibatches, "
            f"{setting['num_ppo_epochs']} epochs, {setting['max_completion_length']} tokens) steps={opts.steps} "
            f"episodes/run={episodes_per_run(opts)} repeats={opts.repeats} threads={opts.threads}"
        )
    else:
        print(
            f"model={opts.model} episodes/batch={opts.batch * opts.minibatches} minibatches={opts.minibatches} "
            f"epochs={opts.epochs} response_tokens={opts.tokens} steps={opts.steps} repeats={opts.repeats} "
            f"threads={opts.threads}"
        )
    baseline = "grpo" if "grpo" in results else configs[0]
    base = statistics.median(r["episodes_per_s"] for r in results[baseline])
    print(
        f"{'config':16s} {'episodes/s':>11s} {'time vs ' + baseline:>16s} {'speed vs ' + baseline:>17s} {'peak RSS MB':>12s}"
    )
    eps, rss = {}, {}
    for config, rows in results.items():
        eps[config] = statistics.median(r["episodes_per_s"] for r in rows)
        rss[config] = max(r["peak_rss_mb"] for r in rows)
        print(
            f"{config:16s} {eps[config]:11.3f} {base / eps[config] - 1:+16.1%} {eps[config] / base:16.2f}x "
            f"{rss[config]:12.0f}"
        )
    if opts.baseline_rev:
        for config in configs:
            before = at_rev(config, opts.baseline_rev)
            if before in eps:
                print(f"speed-up of {config} over {before}: x{eps[config] / eps[before]:.2f} episodes/s")
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
        record = {
            "options": vars(opts),
            "configs": configs,
            "results": results,
            "command": "python benchmarks/bench_ppo.py " + shlex.join(sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "machine": opts.machine or f"{os.cpu_count()} CPU cores, no GPU",
        }
        Path(opts.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
