"""rlhf_ext.base_trainer.TrainerMixin: default run names, data checks before loading, cards and Hub pushes.

Token-free ``training_args.bin`` and retried pushes of a trainer are pinned in ``test_hub.py``.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from datasets import Dataset, IterableDataset
from tiny_args import CPU

from rlhf_ext.base_trainer import TrainerMixin


def test_default_run_name_is_the_model_name_and_method():
    assert TrainerMixin.default_run_name("EleutherAI/pythia-1b-deduped/", "PPO") == "pythia-1b-deduped-PPO"
    model = SimpleNamespace(config=SimpleNamespace(_name_or_path="/data/models/SmolLM2-135M"))
    assert TrainerMixin.default_run_name(model, "RankedReward") == "SmolLM2-135M-RankedReward"
    from_config = SimpleNamespace(config=SimpleNamespace(_name_or_path=""))  # built with from_config: no name
    assert TrainerMixin.default_run_name(from_config, "ORPO") == "model-ORPO"


def test_datasets_are_checked_by_name_and_streams_on_their_first_rows():
    rows = [{"prompt": f"p{i}"} for i in range(250)]
    table = Dataset.from_list(rows)
    stream = IterableDataset.from_generator(lambda: iter(rows))
    seen = []
    TrainerMixin._validate_datasets(
        lambda dataset, name, limit: seen.append((name, limit)), table, {"held_out": stream, "more": table}
    )
    assert seen == [
        ("train_dataset", None),
        ("eval_dataset['held_out']", TrainerMixin.streaming_check_rows),
        ("eval_dataset['more']", None),
    ]
    seen.clear()
    TrainerMixin._validate_datasets(lambda dataset, name, limit: seen.append((name, limit)), None, table)
    assert seen == [("eval_dataset", None)]

    def fail_on_third(dataset, name, limit):
        if name == "eval_dataset['b']":
            raise ValueError(f"{name} row 3: bad")

    with pytest.raises(ValueError, match=r"^eval_dataset\['b'\] row 3"):
        TrainerMixin._validate_datasets(fail_on_third, table, {"a": table, "b": table})


def test_trainer_push_to_hub_publishes_our_card_and_plots(local_hub, tiny_models, tmp_path):
    """A TRL trainer with TrainerMixin (rlhf_ext.SFTTrainer): push_to_hub() uploads our card, its plots and a loadable
    model."""
    from datasets import Dataset
    from huggingface_hub import HfApi, ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from rlhf_ext import SFTTrainer

    tok = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_models.causal_lm)
    data = Dataset.from_list([{"text": "The movie was wonderful and warm."}] * 8)
    hub = dict(push_to_hub=True, hub_model_id="local-user/tiny-sft", hub_token=local_hub.token)
    args = SFTConfig(str(tmp_path / "out"), max_steps=3, logging_steps=1, per_device_train_batch_size=4, **CPU, **hub)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    trainer.card_info.eval_results = [{"metric": "held-out loss", "value": 1.5, "dataset": "toy"}]
    trainer.train()
    trainer.push_to_hub()

    files = set(HfApi(token=local_hub.token).list_repo_files("local-user/tiny-sft"))
    assert {"README.md", "model.safetensors", "config.json", "plots/learning_curves.png"} <= files
    card = ModelCard.load("local-user/tiny-sft", token=local_hub.token)
    assert "supervised fine-tuning" in card.text and "![learning curves](plots/learning_curves.png)" in card.text
    assert card.data.eval_results[0].metric_value == 1.5
    assert local_hub.token not in card.text
    reloaded = AutoModelForCausalLM.from_pretrained("local-user/tiny-sft", token=local_hub.token)
    assert reloaded.config.vocab_size == model.config.vocab_size


def test_the_card_lists_the_run_length_that_decided_the_run():
    """A positive max_steps overrides num_train_epochs (TrainingArguments' 3.0 default would be misleading on the
    card); max_steps -1 means the epochs decide."""
    from transformers import TrainingArguments

    from rlhf_ext.base_trainer import card_hyperparameters

    names = ("learning_rate", "num_train_epochs", "max_steps")
    by_steps = card_hyperparameters(TrainingArguments("out", max_steps=16, learning_rate=3e-4), names)
    assert by_steps == {"learning_rate": 3e-4, "max_steps": 16}
    by_epochs = card_hyperparameters(TrainingArguments("out", num_train_epochs=2), names)
    assert by_epochs == {"learning_rate": 5e-5, "num_train_epochs": 2}
