"""Which offline reward-model backbone is cheap enough on CPU? MiniLM-L6 vs SmolLM2-135M, side by side.

Measures, for each backbone with a fresh scalar head: parameters, forward+backward time of one training
batch, and forward-only (scoring) time, interleaving the two models over several repeats so load from
other processes hits both alike. Prints the ratio SmolLM2 / MiniLM.

    python benchmarks/bench_reward_backbone.py --batch 16 --tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def load(name):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_ext.offline import minilm_path, smollm2_path

    path = minilm_path() if name == "MiniLM-L6" else smollm2_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def batch_for(tok, batch, tokens):
    text = "The film was a wonderful, moving story about a small village by the sea and its people. " * 8
    enc = tok([text] * batch, truncation=True, max_length=tokens, padding="max_length", return_tensors="pt")
    return enc


def time_train(model, enc):
    model.train()
    t = time.perf_counter()
    out = model(**enc).logits.sum()
    out.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t


@torch.no_grad()
def time_score(model, enc):
    model.eval()
    t = time.perf_counter()
    model(**enc)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    models = {n: load(n) for n in ("MiniLM-L6", "SmolLM2-135M")}
    encs = {n: batch_for(tok, args.batch, args.tokens) for n, (_, tok) in models.items()}
    train = {n: [] for n in models}
    score = {n: [] for n in models}
    for n, (m, _) in models.items():  # warm-up
        time_train(m, encs[n])
    for _ in range(args.repeats):
        for n, (m, _) in models.items():
            train[n].append(time_train(m, encs[n]))
            score[n].append(time_score(m, encs[n]))
    print(
        f"batch {args.batch} x {args.tokens} tokens, median of {args.repeats}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'backbone':<14}{'params (M)':>12}{'train step (s)':>16}{'scoring (s)':>13}")
    for n, (m, _) in models.items():
        params = sum(p.numel() for p in m.parameters()) / 1e6
        print(f"{n:<14}{params:>12.1f}{statistics.median(train[n]):>16.3f}{statistics.median(score[n]):>13.3f}")
    r_train = statistics.median(train["SmolLM2-135M"]) / statistics.median(train["MiniLM-L6"])
    r_score = statistics.median(score["SmolLM2-135M"]) / statistics.median(score["MiniLM-L6"])
    print(f"SmolLM2 / MiniLM time ratio: train step {r_train:.1f}x, scoring {r_score:.1f}x")


if __name__ == "__main__":
    main()
