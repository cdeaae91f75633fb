"""Training runs compared by tests/test_distributed.py: the same global batch on 1 process and on 2 DDP processes.

Run as a script under ``accelerate launch`` (2 CPU processes: ``per_device = B``) and imported by the test for the
1-process reference (``per_device = 2B``). Every case returns what it saw and produced: the step logs, the batches each
rank received (to check the rank assignment instead of assuming it), the final weights and, for PPO, every call of the
KL controller's ``update``.

Data order: the ranked and ORPO cases use ``train_sampling_strategy="sequential"``. accelerate shards the batch
sampler (``BatchSamplerShard``, ``split_batches=False``): with B rows per device, rows [2sB, 2sB+B) go to rank 0 and
[2sB+B, 2sB+2B) to rank 1 at step s, and the 1-process run with 2B rows gets rows [2sB, 2sB+2B) at step s. The rows
are laid out so rank 0 holds the K=4 rows and rank 1 the K=2/3 rows. PPO keeps GRPO's shuffled, seeded prompt sampler
(the same permutation whatever the world size, sharded by batches); the test checks the union of the prompts of both
ranks against the 1-process run.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

B = 2  # rows (prompts) per device in the 2-process run; the 1-process reference uses 2 * B
STEPS = 2
# `*_shared` cases: the same rows behind a long common prompt, so the collators pack them (rlhf_ext.shared_prompt);
# `*_unshared` runs them with shared_prompt=False (1-process reference only).
CASES = ("ranked_prompt", "ranked_pair", "ranked_shared", "orpo", "orpo_shared", "ppo", "ppo_critic")
LONG_PROMPT = (
    "Summarize the article. The council voted on Tuesday to approve the new budget for schools and roads, "
    "and scientists said the storm would reach the coast by the weekend. TL;DR:"
)
# Step-log keys that legitimately differ between runs (wall clock, per-device throughput, flops).
NOT_COMPARED = ("runtime", "step_time", "per_second", "flos")


def _common(out: Path, per_device: int, grad_accum: int = 1) -> dict:
    return dict(
        gradient_accumulation_steps=grad_accum,
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        per_device_train_batch_size=per_device,
        max_steps=STEPS,
        learning_rate=1e-3,
    )


def _with_prompt(rows: list[dict], prompt: str | None) -> list[dict]:
    return rows if prompt is None else [dict(row, prompt=prompt) for row in rows]


def _ranked_rows() -> list[dict]:
    """Rows for 2 steps x 2 ranks x B: rank 0's slots get K = 4 rows, rank 1's get K = 2 and K = 3 rows."""
    from rlhf_ext.testing.synthetic import count_ranked

    k4 = count_ranked(2 * B, seed=1, k=4)
    k2 = count_ranked(B, seed=2, k=2)
    k3 = count_ranked(B, seed=3, k=3)
    small = [k2[0], k3[0], k3[1], k2[1]]
    rows = []
    for step in range(STEPS):
        rows += k4[step * B : (step + 1) * B] + small[step * B : (step + 1) * B]
    return rows


def _row_key(token_lists) -> list:
    """What identifies a row in the batch records: its K and its first completion's token ids."""
    return [len(token_lists), list(token_lists[0])]


def ranked_case(
    models, out: Path, per_device: int, pair_weighting: str, grad_accum: int = 1, prompt=None, shared=True
) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer
    from rlhf_ext.ranked_reward import DataCollatorForRanking
    from rlhf_ext.shared_prompt import SHARED_KEYS

    seen, packed = [], []

    class Recording(DataCollatorForRanking):
        def torch_call(self, examples):
            seen.append([_row_key(e["completions_ids"]) for e in examples])
            batch = super().torch_call(examples)
            packed.append(SHARED_KEYS[0] in batch)
            return batch

    tok = AutoTokenizer.from_pretrained(models.tokenizer)
    args = RankedRewardConfig(
        **_common(out, per_device, grad_accum),
        train_sampling_strategy="sequential",
        pair_weighting=pair_weighting,
        shared_prompt=shared,
    )
    trainer = RankedRewardTrainer(
        model=str(models.reward_model),
        args=args,
        train_dataset=Dataset.from_list(_with_prompt(_ranked_rows(), prompt)),
        processing_class=tok,
        data_collator=Recording(pad_token_id=tok.pad_token_id, shared_prompt=shared),
    )
    trainer.train()
    return _result(trainer, seen[: STEPS * grad_accum], packed[: STEPS * grad_accum])


def _orpo_rows() -> list[dict]:
    """Ranked rows whose completions all have the same number of tokens (see the ORPO test for why).

    Each of these words is 2 tokens of the tiny tokenizer; a completion is a rotation of the 4 words.
    """
    words = ("bad", "sad", "ugly", "bright")

    def completions(k, shift):
        return [" " + " ".join(words[(shift + i + j) % len(words)] for j in range(4)) + "." for i in range(k)]

    k4 = [{"prompt": "Review:", "completions": completions(4, s), "ranks": [0, 1, 2, 1]} for s in range(2 * B)]
    k2 = [{"prompt": "Review:", "completions": completions(2, s), "ranks": [1, 0]} for s in (4, 5)]
    k3 = [{"prompt": "Review:", "completions": completions(3, s), "ranks": [2, 0, 1]} for s in (6, 7)]
    small = [k2[0], k3[0], k3[1], k2[1]]
    rows = []
    for step in range(STEPS):
        rows += k4[step * B : (step + 1) * B] + small[step * B : (step + 1) * B]
    return rows


def orpo_case(models, out: Path, per_device: int, grad_accum: int = 1, prompt=None, shared=True) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhf_ext import ORPOConfig, ORPOTrainer
    from rlhf_ext.orpo import DataCollatorForRankedORPO
    from rlhf_ext.shared_prompt import SHARED_KEYS

    seen, packed = [], []

    class Recording(DataCollatorForRankedORPO):
        def __call__(self, examples):
            batch = super().__call__(examples)
            packed.append(SHARED_KEYS[0] in batch)
            # Row identity plus the SFT token count of each row (best-ranked sequence, prompt included).
            seen.append(
                [
                    _row_key(e["completions_input_ids"])
                    + [sum(e["completions_attention_mask"][e["ranks"].index(min(e["ranks"]))])]
                    for e in examples
                ]
            )
            return batch

    tok = AutoTokenizer.from_pretrained(models.tokenizer)
    args = ORPOConfig(
        **_common(out, per_device, grad_accum),
        train_sampling_strategy="sequential",
        max_length=128,
        shared_prompt=shared,
    )
    trainer = ORPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(models.causal_lm),
        args=args,
        train_dataset=Dataset.from_list(_with_prompt(_orpo_rows(), prompt)),
        processing_class=tok,
        data_collator=Recording(pad_token_id=tok.pad_token_id, shared_prompt=shared),
    )
    trainer.train()
    return _result(trainer, seen[: STEPS * grad_accum], packed[: STEPS * grad_accum])


PPO_PROMPTS = [f"Prompt number {i}: the movie was" for i in range(8)]
PPO_STEPS = 4  # 2 rollouts x num_ppo_epochs = 2 optimizer steps each
COMPLETION_TOKENS = 5


def ppo_case(models, out: Path, per_device: int, critic: bool = False, ptx: bool = True, warmup: int = 1) -> dict:
    """PPO on fixed rollouts: the completion of a prompt is a fixed function of its tokens (no sampling).

    Sampling cannot match across world sizes (each rank draws from its own generator over its own prompts, one
    process draws over all of them), so generation is replaced and everything after it is compared: log-probs,
    reference log-probs, values, rewards, GAE, the clipped losses, the optimizer steps and the KL controller.
    With ``critic``: a separate critic copied from the reward model (which joins the reward function), one critic
    warm-up step, and rewards normalised on a 5-row reference set (scored in shards of unequal size).
    """
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback

    from rlhf_ext import PPOConfig, PPOTrainer

    tok = AutoTokenizer.from_pretrained(models.tokenizer)
    prompts_seen = []

    class FixedRollouts(PPOTrainer):
        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            prompts_seen.append([list(p) for p in prompt_ids])
            completions = []
            for ids in prompt_ids:
                seed = sum(ids) * 31 + len(ids)
                completions.append([4 + (seed + 37 * j) % 300 for j in range(COMPLETION_TOKENS)] + [tok.eos_token_id])
            return completions, None

    def reward(completion_ids, **kwargs):
        return [sum(t < 150 for t in ids) / len(ids) for ids in completion_ids]

    critic_options = {}
    reference = None
    if critic:
        critic_options = dict(
            critic_from_reward_model=True, critic_warmup_steps=warmup, reward_normalization="reference"
        )
        reference = Dataset.from_dict({"prompt": PPO_PROMPTS[:5], "completion": [" wonderful.", " bad.", " a", " b", " c"]})  # fmt: skip
    args = PPOConfig(
        **{**_common(out, per_device), "max_steps": PPO_STEPS},
        max_completion_length=COMPLETION_TOKENS + 1,
        num_ppo_epochs=2,
        kl_coef=0.1,
        kl_target=0.01,
        kl_horizon=16,
        # Whitening uses the statistics of each process's own episodes (as Ziegler et al.'s code did), so it is
        # off here: with it, 1 and 2 processes legitimately differ.
        whiten_advantages=False,
        ptx_coef=0.5 if ptx else 0.0,
        ptx_batch_size=per_device,  # the 1-process batch is the union of the 2 ranks' (PPOTrainer._ptx_indices)
        **critic_options,
    )
    ptx_rows = [f"Text number {i}: once upon a time there was a village." for i in range(10)]
    trainer = FixedRollouts(
        model=str(models.causal_lm),
        reward_funcs=[reward, str(models.reward_model)] if critic else reward,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PPO_PROMPTS}),
        ptx_dataset=Dataset.from_dict({"text": ptx_rows}) if ptx else None,
        processing_class=tok,
        reward_reference_dataset=reference,
    )
    start = {k: v.detach().clone() for k, v in trainer.model.named_parameters() if "value_model" not in k}
    warmup_change = []

    class AfterWarmup(TrainerCallback):  # how far the policy moved during the critic warm-up (must be 0)
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == args.critic_warmup_steps:
                params = dict(trainer.accelerator.unwrap_model(trainer.model).named_parameters())
                # ZeRO-3 keeps only this rank's shard in `.data` (empty outside a forward): compare what is there
                diffs = [(params[k].detach() - v).abs().max().item() for k, v in start.items() if v.numel()]
                warmup_change.append(max(diffs) if diffs else None)

    if critic:
        trainer.add_callback(AfterWarmup())
    local_kl = []  # this process's own mean summed KL per rollout, before any gathering
    original_score = trainer._generate_and_score_completions

    def recording_score(inputs):
        out = original_score(inputs)
        if trainer.model.training:
            local_kl.append(out["kl"].sum(dim=1).mean().item())
        return out

    trainer._generate_and_score_completions = recording_score
    updates = []
    original_update = trainer.kl_ctl.update

    def recording_update(current, n_steps):
        updates.append([float(current), int(n_steps)])
        return original_update(current, n_steps)

    trainer.kl_ctl.update = recording_update
    trainer.train()
    result = _result(trainer, prompts_seen)
    result["kl_updates"] = updates
    result["local_kl"] = local_kl
    result["kl_coef"] = trainer.kl_ctl.value
    result["ptx_token_counts"] = [
        int(trainer._ptx_rows[i].__len__()) for p in range(trainer.ptx_position) for i in trainer._ptx_indices(p)
    ]
    result["policy_change_in_warmup"] = warmup_change
    result["reward_normalizer"] = trainer.reward_normalizer.state_dict()
    return result


def _result(trainer, batches, packed=()) -> dict:
    logs = [
        {k: v for k, v in entry.items() if not any(s in k for s in NOT_COMPARED)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    model = trainer.accelerator.unwrap_model(trainer.model)
    weights = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    return {
        "rank": trainer.accelerator.process_index,
        "world": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type.value),
        "logs": logs,
        "batches": batches,
        "packed": list(packed),  # per batch: did the collator pack it (shared prompts)?
        "shared_prompt_off": getattr(getattr(trainer, "_shared_prompt", None), "reason", None),
        "weights": weights,
    }


def run(case: str, models, out: Path, per_device: int, grad_accum: int = 1) -> dict:
    torch.set_num_threads(1)
    shared = not case.endswith("_unshared")
    if case in ("ranked_shared", "ranked_unshared"):  # pair weighting: the harder normalisation across ranks
        return ranked_case(models, out, per_device, "pair", grad_accum, prompt=LONG_PROMPT, shared=shared)
    if case.startswith("ranked_"):
        return ranked_case(models, out, per_device, case.removeprefix("ranked_"), grad_accum)
    if case in ("orpo_shared", "orpo_unshared"):
        return orpo_case(models, out, per_device, grad_accum, prompt=LONG_PROMPT, shared=shared)
    if case == "orpo":
        return orpo_case(models, out, per_device, grad_accum)
    if case == "ppo":
        return ppo_case(models, out, per_device)
    if case == "ppo_critic":
        return ppo_case(models, out, per_device, critic=True)
    # DeepSpeed: no ptx (its gradient accumulation counts backward calls). Its flat optimizer partitions give the
    # frozen policy zero gradients during a warm-up, which advances Adam's step counter (one process: no state at
    # all), so runs with a warm-up agree only up to it: parity is checked without one.
    if case == "ppo_critic_noptx":
        return ppo_case(models, out, per_device, critic=True, ptx=False, warmup=0)
    if case == "ppo_critic_warmup_noptx":
        return ppo_case(models, out, per_device, critic=True, ptx=False, warmup=1)
    raise ValueError(f"unknown case {case!r}")


def save(result: dict, path: Path) -> None:
    torch.save(result["weights"], path.with_suffix(".pt"))
    path.with_suffix(".json").write_text(json.dumps({k: v for k, v in result.items() if k != "weights"}))


def load(path: Path) -> dict:
    result = json.loads(path.with_suffix(".json").read_text())
    result["weights"] = torch.load(path.with_suffix(".pt"))
    return result


def main() -> None:
    from rlhf_ext.testing.distributed import teardown
    from rlhf_ext.testing.tiny_models import TinyModels

    models = TinyModels(*map(Path, sys.argv[1:4]))
    out = Path(sys.argv[4])
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        import deepspeed  # on this CPU box ZeRO-3 model loading needs the gloo group up first (docs/scaling.md)

        deepspeed.init_distributed("gloo")
    for case in sys.argv[5].split(","):
        result = run(case, models, out / case, B)
        save(result, out / f"{case}-rank{result['rank']}")
    teardown()  # destroys the gloo group and ends the process


if __name__ == "__main__":
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    main()
