"""DDP parity on 2 CPU processes: RankedRewardTrainer, ORPOTrainer and PPOTrainer give, under
``accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml`` with B rows per device, the same logged
metrics and final weights as one process with 2B rows per device (the same global batch).

Tolerance: 1e-5 absolute on every logged metric and every weight (1e-5 relative on metrics far from 0). Both runs do
the same float32 arithmetic in a different order: the per-device batches are padded and multiplied in halves, and
DDP sums the two half-batch gradients (then divides by 2) where one process sums all rows at once. That reorders
float32 additions (unit roundoff 6e-8); over these 2-4 Adam steps the largest differences observed were 1e-6 on
metrics and 6e-7 on weights. A real normalisation error is far larger: normalising each rank's ``pair_weighting="pair"``
loss by its own pair count moves the ranked loss by 1e-2 and the weights by 3e-3; ORPO with one SFT token more on one
rank than on the other differs by 1.5e-4 on metrics and 2e-3 on weights.

All cases run in ONE ``accelerate launch`` (a module-scoped fixture: the launch and its imports cost most of the
time); the 1-process references run in the test process from the same code (tests/ddp_parity_worker.py).
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_parity_worker as worker  # noqa: E402

from rlhf_ext.testing.distributed import CPU_2PROC_CONFIG, run_distributed  # noqa: E402

TOL = 1e-5


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def two_process_runs(tiny_models, tmp_path_factory):
    """Every case of the worker, once, on 2 processes; returns a loader of (rank 0 result, rank 1 result)."""
    out = tmp_path_factory.mktemp("ddp-parity")
    run_distributed(
        Path(worker.__file__),
        tiny_models.tokenizer,
        tiny_models.causal_lm,
        tiny_models.reward_model,
        out,
        ",".join(worker.CASES),
    )
    return lambda case: tuple(worker.load(out / f"{case}-rank{rank}") for rank in (0, 1))


def _one_process(case, tiny_models, tmp_path):
    return worker.run(case, tiny_models, tmp_path / case, 2 * worker.B)


def _assert_same_metrics(reference: list[dict], ddp: list[dict]) -> None:
    assert len(reference) == len(ddp) > 0
    for step, (one, two) in enumerate(zip(reference, ddp, strict=True)):
        assert set(one) == set(two), step
        for key, value in one.items():
            assert two[key] == pytest.approx(value, rel=TOL, abs=TOL), f"step {step + 1}: {key}"


def _assert_same_weights(reference: dict, ddp: dict) -> float:
    assert reference.keys() == ddp.keys()
    diff = max((reference[k] - ddp[k]).abs().max().item() for k in reference)
    assert diff <= TOL, f"max abs weight difference {diff:.2e}"
    return diff


def _assert_both_ranks_in_sync(rank0: dict, rank1: dict) -> None:
    assert rank0["world"] == rank1["world"] == 2  # the config really started 2 processes
    assert rank0["logs"] == rank1["logs"]
    for key, value in rank0["weights"].items():
        assert torch.equal(value, rank1["weights"][key]), key


def _assert_ranks_share_the_global_batches(rank0, rank1, reference, rank0_k, rank1_k):
    """Each step, rank 0 got the K=4 rows, rank 1 the K=2/3 rows, and together the rows of the 1-process step."""
    assert len(rank0["batches"]) == len(rank1["batches"]) == len(reference["batches"]) == worker.STEPS
    for step, (r0, r1, one) in enumerate(zip(rank0["batches"], rank1["batches"], reference["batches"])):
        assert [row[0] for row in r0] == rank0_k[step] and [row[0] for row in r1] == rank1_k[step]
        assert sorted(map(str, r0 + r1)) == sorted(map(str, one)), step


@pytest.mark.parametrize("pair_weighting", ["prompt", "pair"])
def test_ranked_reward_ddp_matches_one_process(two_process_runs, tiny_models, tmp_path, pair_weighting):
    """Ranked reward training with K=4 on rank 0 and K=2/3 on rank 1: metrics (loss, accuracy, margin, rewards,
    num_pairs...) and weights match one process. K differs between ranks, so the trainer must gather fixed-size sums
    (a gather of reward tensors of different lengths aborts gloo), pool the pairs of all ranks for accuracy and margin
    (not average per-rank values), and with pair_weighting="pair" weigh every pair of the global batch alike (not
    divide each rank's loss by its own pair count)."""
    rank0, rank1 = two_process_runs(f"ranked_{pair_weighting}")
    reference = _one_process(f"ranked_{pair_weighting}", tiny_models, tmp_path)
    _assert_both_ranks_in_sync(rank0, rank1)
    _assert_ranks_share_the_global_batches(rank0, rank1, reference, [[4, 4], [4, 4]], [[2, 3], [3, 2]])
    # Counts pool both ranks: 8 completions (K=4+4) on rank 0 and 5 (K=2+3) on rank 1 at each step.
    assert [log["num_completions"] for log in rank0["logs"]] == [13, 13]
    _assert_same_metrics(reference["logs"], rank0["logs"])
    _assert_same_weights(reference["weights"], rank0["weights"])


@pytest.mark.parametrize("case", ["ranked_shared", "orpo_shared"])
def test_shared_prompt_ddp_matches_one_process_and_the_unshared_path(two_process_runs, tiny_models, tmp_path, case):
    """The ranked (pair weighting) and ORPO cases behind a long common prompt, so every batch is packed
    (rlhf_ext.shared_prompt) on both ranks: metrics and weights match one process with packing, and one process
    without it (shared_prompt=False), within the DDP tolerance. ORPO's logits/* metrics are left out of the second
    comparison: packed, they average each sequence's own tokens, unshared the batch's padded width (TRL's)."""
    rank0, rank1 = two_process_runs(case)
    reference = _one_process(case, tiny_models, tmp_path)
    unshared = _one_process(case.replace("_shared", "_unshared"), tiny_models, tmp_path)
    _assert_both_ranks_in_sync(rank0, rank1)
    _assert_ranks_share_the_global_batches(rank0, rank1, reference, [[4, 4], [4, 4]], [[2, 3], [3, 2]])
    assert rank0["packed"] == rank1["packed"] == reference["packed"] == [True] * worker.STEPS
    assert rank0["shared_prompt_off"] is rank1["shared_prompt_off"] is reference["shared_prompt_off"] is None
    assert unshared["packed"] == [False] * worker.STEPS
    _assert_same_metrics(reference["logs"], rank0["logs"])
    _assert_same_weights(reference["weights"], rank0["weights"])
    padded_width = ("logits/chosen", "logits/rejected")
    _assert_same_metrics(
        [{k: v for k, v in log.items() if k not in padded_width} for log in unshared["logs"]],
        [{k: v for k, v in log.items() if k not in padded_width} for log in rank0["logs"]],
    )
    _assert_same_weights(unshared["weights"], rank0["weights"])


def test_orpo_ddp_matches_one_process(two_process_runs, tiny_models, tmp_path):
    """ORPO on ranked rows, K=4 on rank 0 and K=2/3 on rank 1: loss, nll_loss, odds-ratio and reward metrics and the
    weights match one process.

    The SFT term is a token mean over each process's best-ranked sequences (TRL's ORPO does the same), so DDP
    averages two per-rank means where one process takes one mean: they agree only when both ranks hold the same
    number of SFT tokens, which these rows do by construction (checked below). With unequal token counts the
    difference is real and expected; docs/scaling.md gives its size.
    """
    rank0, rank1 = two_process_runs("orpo")
    reference = _one_process("orpo", tiny_models, tmp_path)
    _assert_both_ranks_in_sync(rank0, rank1)
    _assert_ranks_share_the_global_batches(rank0, rank1, reference, [[4, 4], [4, 4]], [[2, 3], [3, 2]])
    for step in range(worker.STEPS):  # SFT tokens per rank (the premise of exact parity)
        assert sum(row[2] for row in rank0["batches"][step]) == sum(row[2] for row in rank1["batches"][step])
    _assert_same_metrics(reference["logs"], rank0["logs"])
    _assert_same_weights(reference["weights"], rank0["weights"])


def test_ppo_ddp_matches_one_process_and_kl_controller_sees_all_ranks(two_process_runs, tiny_models, tmp_path):
    """PPO (value head, ptx, adaptive KL) on fixed rollouts: metrics, weights and the KL coefficient match one
    process, and the adaptive controller is updated with the episode count and mean KL of BOTH ranks.

    What is compared: sampled tokens cannot match across world sizes (each rank samples its own prompts from its own
    generator), so the completion of a prompt is a fixed function of it and everything downstream is compared
    (log-probs, reference log-probs, values, rewards, GAE, clipped losses, ptx, optimizer steps, KL control).
    Advantage whitening is per process (as in Ziegler et al.'s code) and is turned off here; the ptx rows have equal
    token counts, because the ptx loss is a token mean per process.
    """
    rank0, rank1 = two_process_runs("ppo")
    reference = _one_process("ppo", tiny_models, tmp_path)
    _assert_both_ranks_in_sync(rank0, rank1)
    # GRPO's seeded, shuffled prompt sampler: each rollout, the two ranks' prompts are the 1-process prompts.
    assert len(rank0["batches"]) == len(reference["batches"]) == 2
    for r0, r1, one in zip(rank0["batches"], rank1["batches"], reference["batches"], strict=True):
        assert len(r0) == len(r1) == worker.B and sorted(r0 + r1) == sorted(one)
    assert len(set(rank0["ptx_token_counts"] + reference["ptx_token_counts"])) == 1

    # The controller: per rollout, n_steps = episodes of both ranks, and the KL = the mean over both ranks' episodes.
    episodes = 2 * worker.B
    assert [n for _, n in rank0["kl_updates"]] == [n for _, n in reference["kl_updates"]] == [episodes, episodes]
    assert rank0["kl_updates"] == rank1["kl_updates"]
    local0, local1 = rank0["local_kl"][1], rank1["local_kl"][1]  # 2nd rollout: the policy has moved, KL > 0
    assert local0 != pytest.approx(local1, rel=1e-3)  # the ranks measure different KLs ...
    global_kl = rank0["kl_updates"][1][0]
    assert global_kl == pytest.approx((local0 + local1) / 2, rel=1e-6, abs=1e-9)  # ... and the controller averages
    assert global_kl == pytest.approx(reference["kl_updates"][1][0], rel=TOL, abs=TOL)
    assert global_kl > 0
    assert rank0["kl_coef"] == pytest.approx(reference["kl_coef"], rel=TOL) and rank0["kl_coef"] != 0.1

    _assert_same_metrics(reference["logs"], rank0["logs"])
    _assert_same_weights(reference["weights"], rank0["weights"])
    assert any(not math.isclose(log["loss/ptx"], 0.0) for log in rank0["logs"])


def test_ppo_critic_ddp_matches_one_process_and_warmup_freezes_the_policy(two_process_runs, tiny_models, tmp_path):
    """The separate critic under DDP: PPO with a critic copied from the reward model, one critic warm-up step (the
    policy gets no gradient: DDP must allow unused parameters), rewards normalised on a 5-row reference set (scored
    3 + 2 rows by the two ranks) and ptx: metrics, weights (the critic's included) and the normalisation statistics
    match one process, and neither rank's policy moved during the warm-up."""
    rank0, rank1 = two_process_runs("ppo_critic")
    reference = _one_process("ppo_critic", tiny_models, tmp_path)
    _assert_both_ranks_in_sync(rank0, rank1)
    assert any(k.startswith("value_model.") for k in rank0["weights"])
    assert rank0["policy_change_in_warmup"] == rank1["policy_change_in_warmup"] == [0.0]
    assert reference["policy_change_in_warmup"] == [0.0]
    assert rank0["reward_normalizer"]["count"] == reference["reward_normalizer"]["count"] == 5
    for key in ("mean", "std"):
        assert rank0["reward_normalizer"][key] == pytest.approx(reference["reward_normalizer"][key], rel=1e-6)
    assert [("loss/policy_avg" in log) for log in rank0["logs"]] == [False, True, True, True]
    _assert_same_metrics(reference["logs"], rank0["logs"])
    _assert_same_weights(reference["weights"], rank0["weights"])


def _run_deepspeed(tiny_models, tmp_path, stage: str, *cases: str) -> Path:
    """The worker's ``cases`` in one launch with recipes/accelerate_configs/deepspeed_<stage>.yaml, overridden to 2
    CPU processes and fp32; returns the output folder (skips without deepspeed)."""
    pytest.importorskip("deepspeed")
    out = tmp_path / stage
    run_distributed(
        Path(worker.__file__),
        tiny_models.tokenizer,
        tiny_models.causal_lm,
        tiny_models.reward_model,
        out,
        ",".join(cases),
        config_file=CPU_2PROC_CONFIG.parent / f"deepspeed_{stage}.yaml",
        launch_args=("--num_processes", "2", "--mixed_precision", "no"),
    )
    return out


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_ppo_critic_deepspeed_matches_one_process(tiny_models, tmp_path, stage):
    """The separate critic (copied from the reward model, normalised rewards; no ptx, which DeepSpeed does not
    support yet) under ZeRO-2 / ZeRO-3 on 2 CPU processes: same metrics and weights, the critic's included, as one
    process. ZeRO-2 also runs a critic warm-up step, during which the policy must not move (DeepSpeed gives it zero
    gradients; see the worker for why that run is not compared with one process)."""
    out = _run_deepspeed(
        tiny_models, tmp_path, stage, "ppo_critic_noptx", *(["ppo_critic_warmup_noptx"] * (stage == "zero2"))
    )
    rank0, rank1 = (worker.load(out / f"ppo_critic_noptx-rank{rank}") for rank in (0, 1))
    assert rank0["distributed_type"] == rank1["distributed_type"] == "DEEPSPEED"
    reference = _one_process("ppo_critic_noptx", tiny_models, tmp_path)
    _assert_both_ranks_in_sync(rank0, rank1)
    assert any(k.startswith("value_model.") for k in rank0["weights"])
    _assert_same_metrics(reference["logs"], rank0["logs"])
    _assert_same_weights(reference["weights"], rank0["weights"])
    if stage == "zero2":
        warm0, warm1 = (worker.load(out / f"ppo_critic_warmup_noptx-rank{rank}") for rank in (0, 1))
        _assert_both_ranks_in_sync(warm0, warm1)
        assert warm0["policy_change_in_warmup"] == warm1["policy_change_in_warmup"] == [0.0]
        assert [("loss/policy_avg" in log) for log in warm0["logs"]] == [False, True, True, True]


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_ranked_reward_deepspeed_matches_one_process(tiny_models, tmp_path, stage):
    """The ranked case with pair_weighting="pair" (K=4 on rank 0, K=2/3 on rank 1) under DeepSpeed ZeRO-2 / ZeRO-3 on
    2 CPU processes, launched with recipes/accelerate_configs/deepspeed_<stage>.yaml overridden to 2 processes and
    fp32: same metrics and weights as one process, within the DDP tolerance; in the same launch, the same rows behind
    a long prompt, packed (shared prompts). Needs deepspeed (the `deepspeed` extra), whose first run on a machine
    JIT-builds a C++ op (measured 30-65 s; cached in ~/.cache/torch_extensions)."""
    cases = ("ranked_pair", "ranked_shared")
    out = _run_deepspeed(tiny_models, tmp_path, stage, *cases)
    for case in cases:
        rank0, rank1 = (worker.load(out / f"{case}-rank{rank}") for rank in (0, 1))
        assert rank0["distributed_type"] == rank1["distributed_type"] == "DEEPSPEED"
        reference = _one_process(case, tiny_models, tmp_path)
        _assert_both_ranks_in_sync(rank0, rank1)
        _assert_ranks_share_the_global_batches(rank0, rank1, reference, [[4, 4], [4, 4]], [[2, 3], [3, 2]])
        assert rank0["packed"] == reference["packed"] == [case == "ranked_shared"] * worker.STEPS, case
        assert rank0["shared_prompt_off"] is None
        _assert_same_metrics(reference["logs"], rank0["logs"])
        _assert_same_weights(reference["weights"], rank0["weights"])


@pytest.mark.parametrize("case", ["ranked_prompt", "ranked_pair", "orpo"])
def test_gradient_accumulation_matches_one_big_batch(tiny_models, tmp_path, case):
    """One process, B rows x 2 accumulation steps vs 2B rows x 1 (the K=4 rows in the first micro-batch, the K=2/3
    rows in the second): same loss, grad norm and weights, within the DDP tolerance. With pair_weighting="pair"
    each micro-batch is normalised by the pairs of the whole optimizer step (normalising it by its own pair count
    moves the weights by 3e-3). Batch-statistic metrics (accuracy, rewards, num_pairs...) are, as in TRL,
    averaged over the micro-batches of a logging step, so they are not compared."""
    accumulated = worker.run(case, tiny_models, tmp_path / "ga", worker.B, grad_accum=2)
    reference = _one_process(case, tiny_models, tmp_path)
    assert [[row[0] for row in batch] for batch in accumulated["batches"]] == [[4, 4], [2, 3], [4, 4], [3, 2]]
    keys = ("loss", "grad_norm", "learning_rate", "epoch")
    _assert_same_metrics(
        [{k: log[k] for k in keys} for log in reference["logs"]],
        [{k: log[k] for k in keys} for log in accumulated["logs"]],
    )
    _assert_same_weights(reference["weights"], accumulated["weights"])


def test_run_distributed_reports_the_tail_of_stderr(tmp_path):
    """A failing script fails with its exit code, its first error lines and the end of its stderr; a script that
    never tears the process group down is refused before launching. Both ranks raise at once: their lines arrive
    whole, tagged by rank, and the error lines name the shared error once."""
    bad = tmp_path / "bad.py"
    bad.write_text("raise ValueError('distinctive failure 1234')  # no process group, no teardown() needed\n")
    with pytest.raises(AssertionError) as failure:
        run_distributed(bad, timeout=120)
    message = str(failure.value)
    assert re.match(r"exit code [1-9]: ", message), message[:300]
    error_lines = message.split("--- error lines (first) ---\n")[1].split("\n--- stderr (tail) ---")[0]
    distinct = [line for line in error_lines.splitlines() if "distinctive" in line]
    assert len(distinct) == 1, error_lines
    assert re.fullmatch(r"\[default[01]\]:ValueError: distinctive failure 1234", distinct[0]), error_lines
    assert error_lines.splitlines()[0] == distinct[0], error_lines
    for rank in (0, 1):
        assert f"\n[default{rank}]:ValueError: distinctive failure 1234\n" in message, message
    no_teardown = tmp_path / "no_teardown.py"
    no_teardown.write_text("print('hello')\n")
    with pytest.raises(ValueError, match="tears the process group down"):
        run_distributed(no_teardown)
    assert CPU_2PROC_CONFIG.exists()
