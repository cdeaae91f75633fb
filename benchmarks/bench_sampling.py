"""K samples per prompt: one prompt pass with its cache copied K times vs generate(num_return_sequences=K).

Times ``rlhf_ext.sampling.sample_completions`` with ``share_prompt=True`` and ``False`` on the same prompts and
seed, interleaved per repeat so load from other processes hits both alike. Prints the median CPU seconds of this
process (the figure least moved by other processes on a shared machine) and wall seconds, their ratios, and how
many sampled completions are the same both ways (all of them, up to a float rounding that flips a rare draw).

    python benchmarks/bench_sampling.py --model outputs/tldr/sft --k 8 --prompts 16   # the summarization label shape
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main():
    from rlhf_ext.models import load_policy
    from rlhf_ext.sampling import sample_completions
    from rlhf_ext.summarization import summarization_dataset

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="offline", help="Policy folder or 'offline' (SmolLM2-135M-Instruct).")
    ap.add_argument("--dataset", default="offline-tldr", help="Summarization stand-in whose articles are the prompts.")
    ap.add_argument("--max_article_words", type=int, default=80)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=16, help="Prompts (one generate() batch by default).")
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--max_new_tokens", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    model, tok = load_policy(args.model)
    prompts = summarization_dataset(args.dataset, "train", None, args.max_article_words)["prompt"][: args.prompts]
    seconds = {True: [], False: []}
    cpu = {True: [], False: []}
    texts = {}
    for repeat in range(args.repeats + 1):  # the first round warms up and is not counted
        for shared in (True, False):
            start, start_cpu = time.perf_counter(), time.process_time()
            s = sample_completions(
                model, tok, prompts, k=args.k, max_new_tokens=args.max_new_tokens, temperature=0.7,
                batch_size=args.batch_size, seed=repeat, share_prompt=shared,
            )  # fmt: skip
            if repeat:
                seconds[shared].append(time.perf_counter() - start)
                cpu[shared].append(time.process_time() - start_cpu)
            texts[shared] = s.completion_ids
    same = sum(a == b for x, y in zip(texts[True], texts[False]) for a, b in zip(x, y))
    total = sum(len(x) for x in texts[True])
    med = {name: {s: statistics.median(d[s]) for s in d} for name, d in (("cpu", cpu), ("wall", seconds))}
    print(
        f"{args.prompts} prompts x K = {args.k}, {args.max_new_tokens} new tokens, batch {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"{'':26}{'CPU s':>8}{'wall s':>8}")
    print(f"{'shared prompt pass':26}{med['cpu'][True]:8.1f}{med['wall'][True]:8.1f}")
    print(f"{'num_return_sequences = K':26}{med['cpu'][False]:8.1f}{med['wall'][False]:8.1f}")
    ratios = [med[m][False] / med[m][True] for m in ("cpu", "wall")]
    print(f"{'ratio unshared / shared':26}{ratios[0]:7.2f}x{ratios[1]:7.2f}x")
    print(f"identical completions:     {same} / {total}")


if __name__ == "__main__":
    main()
