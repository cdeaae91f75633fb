"""2-process run for tests/test_nonfinite.py: rank 1 alone gets NaN rewards at step 2; both ranks must stop there.

Launched by ``run_distributed(this file, tokenizer, reward_model, out)``. Each rank writes the message of the
``NonFiniteLossError`` it raised (or ``"no error"``) to ``out/rank<r>.txt``. Without the all-reduce in
``check_finite``, rank 0 would train on into the gradient all-reduce that rank 1 never joins, and hang.
"""

from __future__ import annotations

import sys
from pathlib import Path

from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback

from rlhf_ext import NonFiniteLossError, RankedRewardConfig, RankedRewardTrainer
from rlhf_ext.testing.distributed import teardown


def main(tokenizer: str, reward_model: str, out: Path) -> None:
    rows = [{"prompt": "The movie", "completions": [" was great", " was bad", " was fine"], "ranks": [0, 2, 1]}] * 8
    args = RankedRewardConfig(
        output_dir=str(out / "run"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=2,
        max_steps=4,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    flag = {"on": False}

    class PoisonRank1(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            flag["on"] = state.global_step == 1 and trainer.accelerator.process_index == 1

    trainer = RankedRewardTrainer(
        model=reward_model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(tokenizer),
        callbacks=[PoisonRank1()],
    )

    def hook(module, inputs, output):  # on the score head: rewards come from it, packed (shared prompts) or not
        return output * float("nan") if flag["on"] else output

    trainer.model.score.register_forward_hook(hook)
    try:
        trainer.train()
        message = "no error"
    except NonFiniteLossError as err:
        message = str(err)
    (out / f"rank{trainer.accelerator.process_index}.txt").write_text(message)
    teardown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
