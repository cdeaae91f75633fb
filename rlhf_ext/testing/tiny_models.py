"""Tiny random-init models sharing one small, locally trained tokenizer, for fast tests.

``build_tiny_models(folder)`` writes three plain HF folders (causal LM, scalar-head sequence classifier,
and the tokenizer alone) and returns their paths. Everything is built from scratch on this machine: no
download, a fixed seed, about a second on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A small English corpus (one sentence per line) so the BPE merges are real words and tests can read what models
# generate; benchmarks draw words from it too.
CORPUS = """
The movie was wonderful and the acting was great. I loved every minute of this film.
The plot was dull, the dialogue was terrible and I hated the ending. A boring waste of time.
A delightful, funny and warm story with a brilliant cast. Highly recommended.
The council voted on Tuesday to approve the new budget for schools and roads.
Scientists said the storm would reach the coast by the weekend, bringing heavy rain.
The team won the final match after a late goal in the second half.
Summarize the article. TL;DR: the city approved a budget. The weather will be cold.
Once upon a time there was a small village by the sea where people told stories.
Good, bad, happy, sad, great, awful, beautiful, ugly, bright, dark, kind, cruel.
""".strip().splitlines()

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModels:
    tokenizer: Path
    causal_lm: Path
    reward_model: Path


def _without_labels(config) -> dict:
    """``config`` as keyword arguments for a scalar-head twin (its 2-label maps would clash with num_labels=1)."""
    return {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}


def _built(paths: TinyModels) -> bool:
    return all((p / "config.json").exists() for p in (paths.causal_lm, paths.reward_model))


def _write_pair(paths: TinyModels, tokenizer, config, lm_class, rm_class, seed: int) -> TinyModels:
    """Build a causal LM from ``config`` (seed ``seed``) and its scalar-head twin (seed ``seed + 1``), generation
    stopping at the tokenizer's EOS; save the tokenizer alone and each model with a copy of it (so every folder
    loads on its own)."""
    import torch

    torch.manual_seed(seed)
    lm = lm_class(config)
    lm.generation_config.pad_token_id = config.pad_token_id
    lm.generation_config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed + 1)
    rm = rm_class(type(config)(**_without_labels(config), num_labels=1))
    tokenizer.save_pretrained(paths.tokenizer)
    for model, path in ((lm, paths.causal_lm), (rm, paths.reward_model)):
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)
    return paths


def build_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer with <|im_start|>/<|im_end|> (EOS) and <pad>, and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_models(folder: str | Path, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> TinyModels:
    """Write a tiny Llama causal LM and a tiny Llama scalar reward model into ``folder`` (idempotent)."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    folder = Path(folder)
    paths = TinyModels(folder / "tokenizer", folder / "tiny-causal-lm", folder / "tiny-reward-model")
    if _built(paths):
        return paths

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return _write_pair(paths, tokenizer, config, LlamaForCausalLM, LlamaForSequenceClassification, seed)


def build_tiny_gpt_neox(folder: str | Path, hidden_size: int = 32, num_layers: int = 2, seed: int = 0) -> TinyModels:
    """A tiny GPT-NeoX (Pythia's architecture) causal LM and scalar reward model, for testing paper configs.

    Same tokenizer as :func:`build_tiny_models`; 1,024 positions so a TL;DR-sized prompt fits. Idempotent.
    """
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

    folder = Path(folder)
    paths = TinyModels(folder / "tokenizer", folder / "tiny-gpt-neox", folder / "tiny-gpt-neox-reward")
    if _built(paths):
        return paths
    tokenizer = build_tokenizer()
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return _write_pair(paths, tokenizer, config, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification, seed)


def build_bert_tokenizer(vocab_size: int = 320):
    """A lower-casing WordPiece tokenizer that frames a text as ``[CLS] ... [SEP]``, like all-MiniLM-L6-v2's.

    ``eos_token`` is ``[SEP]``, as ``recipes/reward_sentiment.py`` sets it for BERT-style reward models.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    # The vocabulary is chosen here, not by tokenizers' WordPieceTrainer: that trainer breaks frequency ties
    # differently from one process to the next, so the same seed would give other token ids on every run.
    words: dict[str, int] = {}
    for line in CORPUS:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)):
            words[word] = words.get(word, 0) + 1
    chars = sorted({c for w in words for c in w})
    vocab = specials + chars + ["##" + c for c in chars]
    vocab += [w for w in sorted(words, key=lambda w: (-words[w], w)) if len(w) > 1][: max(0, vocab_size - len(vocab))]
    core = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    core.normalizer, core.pre_tokenizer, core.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    cls, sep = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        eos_token="[SEP]",
    )


def build_tiny_bert_reward_model(folder: str | Path, hidden_size: int = 32, seed: int = 0) -> Path:
    """A tiny BERT scalar reward model (all-MiniLM-L6-v2's architecture) with its WordPiece tokenizer. Idempotent."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = Path(folder) / "tiny-bert-reward-model"
    if (path / "config.json").exists():
        return path
    tokenizer = build_bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
        initializer_range=0.3,  # BERT's 0.02 gives a tiny random model near-identical scores for every text
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_gpt2(folder: str | Path, hidden_size: int = 32, dropout: float = 0.1, seed: int = 0) -> TinyModels:
    """A tiny GPT-2 causal LM and scalar reward model (learned absolute positions, dropout ``dropout`` everywhere).

    GPT-2's forward numbers positions 0, 1, 2, ... unless given ``position_ids``, so a left-padded batch is scored
    at other positions than ``generate()`` used: the case the PPO scoring forwards must handle. Idempotent.
    """
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    folder = Path(folder)
    paths = TinyModels(folder / "tokenizer", folder / "tiny-gpt2", folder / "tiny-gpt2-reward")
    if _built(paths):
        return paths
    tokenizer = build_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=hidden_size,
        n_layer=2,
        n_head=4,
        n_positions=256,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _write_pair(paths, tokenizer, config, GPT2LMHeadModel, GPT2ForSequenceClassification, seed)


def build_pythia_like_standins(folder: str | Path, hidden_size: int = 32, seed: int = 0) -> TinyModels:
    """Tiny stand-ins for TRL 1.12's PPO example scripts: an "SFT" Llama and a Llama reward model whose embeddings
    have spare rows past the tokenizer's vocabulary, as Pythia's do (50,304 rows for 50,277 tokens). The scripts add
    a ``[PAD]`` token without resizing the embeddings, which only works with such spare rows. Idempotent."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    folder = Path(folder)
    paths = TinyModels(folder / "tokenizer", folder / "tiny-sft", folder / "tiny-reward")
    if _built(paths):
        return paths
    tokenizer = build_tokenizer()
    rows = -(-(len(tokenizer) + 1) // 64) * 64  # round up, leaving room for an added token
    config = LlamaConfig(
        vocab_size=rows,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return _write_pair(paths, tokenizer, config, LlamaForCausalLM, LlamaForSequenceClassification, seed)


def build_random_llama(
    folder: str | Path,
    hidden_size: int,
    num_layers: int,
    vocab_size: int,
    tie_word_embeddings: bool,
    max_position_embeddings: int | None = None,
    seed: int = 0,
) -> str:
    """A random-init Llama of a benchmark's chosen size (heads of 64 dims, ``vocab_size`` rows in its embedding and LM
    head, at least the test tokenizer's) with the test tokenizer, saved in ``<folder>/model``; returns that path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer()
    extra = {"max_position_embeddings": max_position_embeddings} if max_position_embeddings else {}
    config = LlamaConfig(
        vocab_size=max(vocab_size, len(tok)),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 8 // 3,
        num_hidden_layers=num_layers,
        num_attention_heads=max(1, hidden_size // 64),
        num_key_value_heads=max(1, hidden_size // 64),
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=tie_word_embeddings,
        **extra,
    )
    torch.manual_seed(seed)
    path = str(Path(folder) / "model")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path
