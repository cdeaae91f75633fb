"""The evaluation's two costly passes per policy, before vs after, side by side (``evaluate_summaries.py``).

1. Sampling + KL(policy || SFT) on the samples. Before: ``sequence_kl`` ran the policy and the SFT model over every
   sample. After: ``sample_completions(logprobs=True)`` keeps the log-probs ``generate`` computed anyway and only
   the SFT model runs.
2. Reward-model scores of every system's summary of each article. Before: one ``score_texts`` call per system, each
   row with its article. After: one call with ``shared_prompt=True``, each article encoded once with all its
   summaries (rlhf_ext.shared_prompt).

Both ways run on the same articles and seed, interleaved per repeat so load from other processes hits both alike.
Prints the median CPU seconds of this process and wall seconds, their ratios, and the largest difference between
the two ways' numbers (float rounding only).

    python benchmarks/bench_evaluation.py --policy outputs/tldr/ppo --reference outputs/tldr/sft \\
        --reward_model outputs/tldr/reward --prompts 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(fn):
    start, start_cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - start_cpu, time.perf_counter() - start


def report(title: str, names: tuple[str, str], cpu: dict, wall: dict, repeats: int) -> None:
    med = {m: {k: statistics.median(v) for k, v in d.items()} for m, d in (("cpu", cpu), ("wall", wall))}
    after, before = names
    print(f"\n{title} (median of {repeats})")
    print(f"{'':34}{'CPU s':>8}{'wall s':>8}")
    for name in names:
        print(f"{name:34}{med['cpu'][name]:8.1f}{med['wall'][name]:8.1f}")
    ratios = [med[m][before] / med[m][after] for m in ("cpu", "wall")]
    print(f"{'ratio before / after':34}{ratios[0]:7.2f}x{ratios[1]:7.2f}x")


def main():
    from rlhf_ext.models import load_policy
    from rlhf_ext.sampling import reward_model_scores, sample_completions, sequence_kl
    from rlhf_ext.summarization import summarization_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="offline", help="The evaluated policy (folder or 'offline': SmolLM2-135M).")
    ap.add_argument("--reference", default="offline", help="The baseline the KL is measured to.")
    ap.add_argument("--reward_model", default=None, help="Reward-model folder (part 2 is skipped without one).")
    ap.add_argument("--systems", type=int, default=5, help="Summaries per article scored in part 2 (SFT, 3 policies, "
                    "the reference in make summarize).")  # fmt: skip
    ap.add_argument("--dataset", default="offline-tldr", help="Summarization stand-in whose articles are the prompts.")
    ap.add_argument("--max_article_words", type=int, default=80)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--max_new_tokens", type=int, default=24)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    policy, tok = load_policy(args.policy)
    reference, _ = load_policy(args.reference)
    prompts = summarization_dataset(args.dataset, "test", None, args.max_article_words)["prompt"][: args.prompts]
    print(f"{len(prompts)} articles, {args.max_new_tokens} new tokens, torch threads {torch.get_num_threads()}")

    # 1. sampling + KL
    settings = dict(k=1, max_new_tokens=args.max_new_tokens, temperature=args.temperature, batch_size=args.batch_size)
    names = ("log-probs carried from sampling", "second policy forward")
    cpu, wall, kls, texts = {n: [] for n in names}, {n: [] for n in names}, {}, []
    for repeat in range(args.repeats + 1):  # the first round warms up and is not counted
        for name in names:
            carried = name == names[0]

            def run(carried=carried, repeat=repeat):
                samples = sample_completions(policy, tok, prompts, seed=repeat, logprobs=carried, **settings)
                return samples, sequence_kl(policy, reference, samples, temperature=args.temperature)

            (samples, kls[name]), c, w = timed(run)
            if repeat:
                cpu[name].append(c)
                wall[name].append(w)
            texts.append([t[0] for t in samples.texts])
    report("1. sampling + KL to the reference", names, cpu, wall, args.repeats)
    diff = max(abs(a - b) for a, b in zip(kls[names[0]], kls[names[1]]))
    print(f"mean KL {statistics.fmean(kls[names[1]]):.4f} nats; largest per-sample difference {diff:.2e}")

    if not args.reward_model:
        return
    # 2. reward-model scores of `systems` summaries per article (the samples of the rounds above stand for them)
    systems = (texts * args.systems)[: args.systems]
    flat_prompts = [p for p in prompts for _ in systems]
    flat_texts = [s[i] for i in range(len(prompts)) for s in systems]
    names = ("articles shared (one call)", "one call per system")
    cpu, wall, scores = {n: [] for n in names}, {n: [] for n in names}, {}
    for repeat in range(args.repeats + 1):
        for name in names:
            if name == names[0]:
                run = lambda: reward_model_scores(args.reward_model, flat_prompts, flat_texts, shared_prompt=True)  # noqa: E731
            else:

                def run():
                    per_system = [reward_model_scores(args.reward_model, prompts, s) for s in systems]
                    return [per_system[j][i] for i in range(len(prompts)) for j in range(len(systems))]

            scores[name], c, w = timed(run)
            if repeat:
                cpu[name].append(c)
                wall[name].append(w)
    report(f"2. reward-model scores, {args.systems} summaries per article", names, cpu, wall, args.repeats)
    diff = max(abs(a - b) for a, b in zip(scores[names[0]], scores[names[1]]))
    print(f"largest difference between the two ways' scores {diff:.2e}")


if __name__ == "__main__":
    main()
