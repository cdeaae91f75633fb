"""What the offline summary judge measures: the text features and the two small models behind ``SummaryLabeler``.

A person asked "which summary of this article is better?" checks that it is about the article, that it reads as
language, that it is finished, and that it neither pads nor pastes. Each check here is one cheap measurement:

- relevance: cosine similarity of all-MiniLM-L6-v2 mean-pooled embeddings of the summary and of the article
  (:class:`ArticleSimilarity`; an article's embedding is computed once and reused for all its summaries);
- fluency and completeness: the summary's mean per-token log-probability under the base SmolLM2-135M, and the
  log-probability that the text ends where the summary ends (end of text or a newline), both after a fixed
  ``"TL;DR:"`` prefix (:class:`LanguageModelFluency`). Shuffled words fall far below a real headline's mean
  log-probability; a summary cut mid-phrase gets a low end probability;
- copying: the longest run of words pasted verbatim from the article (:func:`longest_copied_span`);
- redundancy: the share of repeated content words (:func:`repeated_word_share`);
- length: words outside a band.

How these are weighed into one score, and the validation of that score on held-out articles, are in
``SummaryLabeler`` (:mod:`rlhf_ext.offline.labelers`) and ``benchmarks/validate_summary_judge.py``.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence

# English function words and the words every news story uses; a content word is any other word of two or more
# characters. No stop-word list ships in an installed package (nltk's needs a download), so it is written here.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once
    only or other our ours out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while who whom why will with
    would you your yours said says say told tell one two year years mr mrs ms monday tuesday wednesday thursday friday
    saturday sunday week according people time may might us""".split()
)
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words (punctuation and apostrophes split words)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry content: not in :data:`STOPWORDS`, at least two characters."""
    return [w for w in words(text) if len(w) > 1 and w not in STOPWORDS]


def longest_copied_span(summary: str, article: str) -> int:
    """Length in words of the longest run of consecutive summary words that appears verbatim in the article."""
    s, a = words(summary), words(article)
    best = 0
    previous = [0] * (len(a) + 1)
    for i in range(len(s)):
        current = [0] * (len(a) + 1)
        for j in range(len(a)):
            if s[i] == a[j]:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def repeated_word_share(summary: str) -> float:
    """Share of the summary's content words that repeat an earlier one (0 = no repetition)."""
    c = content_words(summary)
    return (len(c) - len(set(c))) / len(c) if c else 0.0


def article_of(prompt: str) -> str:
    """The article inside a TL;DR-style prompt: the text after "ARTICLE:" and before the last "TL;DR:"."""
    text = prompt
    if "ARTICLE:" in text:
        text = text.split("ARTICLE:", 1)[1]
    if "TL;DR:" in text:
        text = text.rsplit("TL;DR:", 1)[0]
    return text.strip()


class ArticleSimilarity:
    """Cosine similarity of mean-pooled all-MiniLM-L6-v2 embeddings; article embeddings are cached (LRU)."""

    def __init__(self, device: str = "cpu", max_length: int = 256, cache_size: int = 4096, batch_size: int = 64):
        self.device, self.max_length, self.batch_size = device, max_length, batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._model = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            from .assets import minilm_path

            path = minilm_path()
            self._model = (AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).to(self.device).eval())
        return self._model

    def embed(self, texts: Sequence[str]):
        import torch

        tokenizer, model = self._load()
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = [t or " " for t in texts[start : start + self.batch_size]]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**batch.to(self.device)).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1))
        return torch.cat(out) if out else torch.zeros(0, 384)

    def similarity(self, articles: Sequence[str], summaries: Sequence[str]) -> list[float]:
        missing = list(dict.fromkeys(a for a in articles if a not in self._cache))
        for article, vector in zip(missing, self.embed(missing)):
            self._cache[article] = vector
        for article in articles:
            self._cache.move_to_end(article)
        while len(self._cache) > max(self.cache_size, len(set(articles))):
            self._cache.popitem(last=False)
        summary_vectors = self.embed([s.strip() for s in summaries])
        return [float(self._cache[a] @ v) for a, v in zip(articles, summary_vectors)]


class LanguageModelFluency:
    """Mean per-token log-probability of a text and log-probability of its end, under the base SmolLM2-135M.

    Each text is scored after the fixed prefix ``"TL;DR:"`` (as a summary follows it in the prompts), never after
    the article, so a pasted sentence earns no fluency credit for being predictable from the article. "End" is
    the probability of the end-of-text token or a newline right after the text.
    """

    prefix = "TL;DR:"

    def __init__(self, device: str = "cpu", batch_size: int = 32, model=None, tokenizer=None):
        self.device, self.batch_size = device, batch_size
        self._model = None if model is None else (model.to(device).eval(), tokenizer)

    def _load(self):
        if self._model is None:
            from .assets import load_policy

            model, tokenizer = load_policy()
            self._model = (model.to(self.device).eval(), tokenizer)
        return self._model

    def score(self, texts: Sequence[str]) -> list[tuple[float, float]]:
        """``(mean token log-prob, log P(end))`` per text; ``(0.0, 0.0)`` for an empty text."""
        import torch

        model, tokenizer = self._load()
        prefix = tokenizer(self.prefix, add_special_tokens=False).input_ids
        newline = tokenizer("\n", add_special_tokens=False).input_ids[-1]
        end_ids = sorted({tokenizer.eos_token_id, newline} - {None})
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        encoded = [tokenizer(" " + t.strip(), add_special_tokens=False).input_ids if t.strip() else [] for t in texts]
        out: list[tuple[float, float]] = [(0.0, 0.0)] * len(texts)
        order = sorted((i for i, e in enumerate(encoded) if e), key=lambda i: len(encoded[i]))  # little padding
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = len(prefix) + max(len(encoded[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for r, i in enumerate(rows):
                seq = prefix + encoded[i]
                input_ids[r, : len(seq)] = torch.tensor(seq)
                attention[r, : len(seq)] = 1
            with torch.no_grad():
                logits = model(input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device)).logits
            for r, i in enumerate(rows):
                n = len(encoded[i])
                logps = logits[r, len(prefix) - 1 : len(prefix) + n].float().log_softmax(-1)
                token_logps = logps[torch.arange(n), input_ids[r, len(prefix) : len(prefix) + n].to(logps.device)]
                out[i] = (float(token_logps.mean()), float(torch.logsumexp(logps[n, end_ids], 0)))
        return out
