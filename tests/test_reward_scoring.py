"""One reward-model input format on every path: RankedRewardTrainer's training rows, PPO's reward-model scores and
evaluation's (rlhf_ext.sampling.reward_model_scores) give the same score for the same text, for an encoder (tiny BERT,
all-MiniLM-L6-v2's architecture) and a decoder (tiny Llama) reward model."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from tiny_args import CPU

from rlhf_ext.reward_scoring import reward_input_ids, score_texts

PROMPTS = ["The movie was", "Scientists said the storm", "A story"]
COMPLETIONS = [" wonderful and warm.", " would reach the coast by the weekend", " about a small village"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bert_reward_model(tmp_path_factory):
    from rlhf_ext.testing.tiny_models import build_tiny_bert_reward_model

    return build_tiny_bert_reward_model(tmp_path_factory.mktemp("bert-rm"))


def _rm_and_tokenizer(path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def _training_path_scores(path, tmp_path) -> list[float]:
    """What RankedRewardTrainer computes for these rows: its tokenized dataset, its collator, its forward."""
    from rlhf_ext import RankedRewardConfig, RankedRewardTrainer

    model, tok = _rm_and_tokenizer(path)
    rows = [{"prompt": p, "completions": [c, c + " Indeed"], "ranks": [0, 1]} for p, c in zip(PROMPTS, COMPLETIONS)]
    args = RankedRewardConfig(output_dir=str(tmp_path / "rm"), **CPU, max_length=128)
    trainer = RankedRewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.model.eval()
    with torch.no_grad():  # the rewards the loss used (one per completion), packed batch (shared prompts) or not
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
        _, outputs = trainer.compute_loss(trainer.model, batch, return_outputs=True)
    return outputs.logits[0::2, 0].tolist()  # the first completion of each row


def _ppo_path_scores(path, tiny_models, tmp_path) -> list[float]:
    """What PPOTrainer's reward loop computes for these (prompt, completion) texts with this reward model."""
    from transformers import AutoTokenizer

    from rlhf_ext import PPOConfig, PPOTrainer

    policy_tok = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    model, tok = _rm_and_tokenizer(path)
    args = PPOConfig(
        output_dir=str(tmp_path / "ppo"), **CPU, per_device_train_batch_size=3, max_completion_length=4, kl_coef=0.0,
        gradient_checkpointing=False,
    )  # fmt: skip
    trainer = PPOTrainer(
        model=str(tiny_models.causal_lm),
        reward_funcs=model,
        reward_processing_classes=tok,
        args=args,
        train_dataset=Dataset.from_dict({"prompt": PROMPTS}),
        processing_class=policy_tok,
    )
    rows = [{"prompt": p} for p in PROMPTS]
    ids = [policy_tok(c, add_special_tokens=False)["input_ids"] for c in COMPLETIONS]
    return trainer._calculate_rewards(rows, PROMPTS, COMPLETIONS, ids)[:, 0].tolist()


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_same_score_for_the_same_text_in_training_ppo_and_evaluation(kind, tiny_models, bert_reward_model, tmp_path):
    from rlhf_ext.sampling import reward_model_scores

    path = bert_reward_model if kind == "encoder" else tiny_models.reward_model
    training = _training_path_scores(path, tmp_path)
    ppo = _ppo_path_scores(path, tiny_models, tmp_path)
    evaluation = reward_model_scores(str(path), PROMPTS, COMPLETIONS)
    assert training == pytest.approx(ppo, abs=1e-5)
    assert evaluation == pytest.approx(training, abs=1e-5)
    assert len({round(x, 3) for x in training}) == 3  # three different texts, three different scores


def test_reward_input_format_is_the_training_format(tiny_models, bert_reward_model):
    from transformers import AutoTokenizer

    bert = AutoTokenizer.from_pretrained(bert_reward_model)
    ids = reward_input_ids(bert, "The movie was", " great")
    # [CLS] text [SEP] with the completion's EOS ([SEP] for BERT, as reward_sentiment.py sets it)
    assert bert.convert_ids_to_tokens(ids) == ["[CLS]", "the", "movie", "was", "great", "[SEP]", "[SEP]"]
    assert reward_input_ids(bert, "The movie was", " great[SEP]") == ids  # EOS is not doubled
    llama = AutoTokenizer.from_pretrained(tiny_models.tokenizer)
    ids = reward_input_ids(llama, "The movie was", " great")
    assert ids[-1] == llama.eos_token_id and llama.decode(ids[:-1]) == "The movie was great"
    chat = reward_input_ids(
        llama, [{"role": "user", "content": "Hi"}], [{"role": "assistant", "content": "Hello"}]
    )  # conversational rows: the chat template
    assert llama.decode(chat) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"


def test_long_texts_keep_the_leading_special_token_and_the_completion(bert_reward_model):
    model, tok = _rm_and_tokenizer(bert_reward_model)
    long_prompt = "The council voted on Tuesday to approve the new budget for schools and roads. " * 6
    full = reward_input_ids(tok, long_prompt, " great")
    assert len(full) > 16
    kept = full[:1] + full[-15:]  # [CLS] and the last 15 tokens (the completion and its [SEP]s)
    expected = model(input_ids=torch.tensor([kept]), attention_mask=torch.ones(1, 16, dtype=torch.long)).logits[0, 0]
    got = score_texts(model, tok, [long_prompt], [" great"], max_length=16)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_shared_prompt_scores_equal_row_by_row_scores_in_the_callers_order(kind, tiny_models, bert_reward_model):
    """Several systems' completions of each prompt, interleaved as the evaluation passes them: packed per prompt
    (decoder) or row by row (BERT, which cannot pack), the scores are each row's own, in the order given, batches of
    whole prompts included."""
    model, tok = _rm_and_tokenizer(bert_reward_model if kind == "encoder" else tiny_models.reward_model)
    systems = [COMPLETIONS, [" dull.", " would miss the coast", " of two cities"], [" fine", " passed", " ends"]]
    prompts = [p for p in PROMPTS for _ in systems]
    completions = [system[i] for i in range(len(PROMPTS)) for system in systems]
    alone = torch.cat([score_texts(model, tok, [p], [c]) for p, c in zip(prompts, completions)])
    assert len({round(x, 4) for x in alone.tolist()}) == len(alone)
    for batch_size in (64, 4):  # all prompts in one batch; one prompt's 3 rows a batch
        shared = score_texts(model, tok, prompts, completions, batch_size=batch_size, shared_prompt=True)
        assert shared.tolist() == pytest.approx(alone.tolist(), abs=1e-5)


def test_shared_prompt_scoring_packs_each_prompt_into_one_row(tiny_models):
    """The decoder reward model runs one packed row per prompt (the prompt's tokens once), not one row per text."""
    model, tok = _rm_and_tokenizer(tiny_models.reward_model)
    long_prompt = "The council voted on Tuesday to approve the new budget for schools and roads."
    prompts = [long_prompt] * 4 + ["A story"] * 2
    completions = [" yes.", " no.", " maybe later.", " it did not.", " about a village", " of the sea"]
    shapes = []
    hook = model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple((a or [kw["input_ids"]])[0].shape)),
                                           with_kwargs=True)  # fmt: skip
    try:
        score_texts(model, tok, prompts, completions, shared_prompt=True)
    finally:
        hook.remove()
    prompt_tokens = len(reward_input_ids(tok, long_prompt, "")) - 1  # without the EOS a completion ends with
    assert shapes[-1][0] == 2, f"one row per prompt, got {shapes}"
    assert shapes[-1][1] < 2 * prompt_tokens, "the long prompt is encoded once, not four times"
