"""Programmatic labelers: the offline stand-ins for the human labelers of the papers.

Ziegler et al. 2019 checked their pipeline with a sentiment classifier acting as a "mock labeler"; these
classes play the same role. Each one scores completions, turns the scores into a ranking (lower rank is
better, equal scores tie, as in InstructGPT's "D > C > A = B"), and doubles as a TRL reward function
(``labeler(prompts=..., completions=...) -> list[float]``).

- :class:`SentimentLabeler`: VADER compound score in [-1, 1] of the continuation; positive is better.
- :class:`DescriptivenessLabeler`: a lexical proxy for "vivid, descriptive" continuations (see its docstring).
- :class:`SummaryLabeler`: a judge for summaries: MiniLM similarity to the article, ROUGE-L against a
  reference when one is given, and a penalty for leaving the target length band.

Recipes name a labeler by its task; :data:`LABELERS` maps each task to its class and :func:`make_labeler` builds one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..data.ranking import ranks_from_scores
from .assets import INSTALL_HINT, OfflineAssetMissing

__all__ = [
    "LABELERS",
    "DescriptivenessLabeler",
    "Labeler",
    "SentimentLabeler",
    "SummaryLabeler",
    "completion_text",
    "make_labeler",
    "ranks_from_scores",
]


def completion_text(completion) -> str:
    """Text of a completion given as a string or as a list of chat messages (the assistant turns)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence):
        return "".join(completion_text(m) for m in completion if not isinstance(m, dict) or m.get("role") != "user")
    raise TypeError(f"a completion must be a string or a list of messages, got {type(completion).__name__}")


class Labeler:
    """Base class: subclasses implement :meth:`score`; ranking and the reward-function call come for free."""

    tie_tolerance: float = 0.0

    @property
    def __name__(self) -> str:  # TRL names reward functions by ``__name__`` in its logs
        return type(self).__name__

    def score(
        self, prompts: Sequence[str], completions: Sequence[str], references: Sequence[str] | None = None
    ) -> list[float]:
        raise NotImplementedError

    def rank(self, prompt: str, completions: Sequence, reference: str | None = None) -> list[int]:
        """Rank K completions of one prompt: 0 is the best; equal scores share a rank."""
        texts = [completion_text(c) for c in completions]
        refs = None if reference is None else [reference] * len(texts)
        scores = self.score([completion_text(prompt)] * len(texts), texts, refs)
        return ranks_from_scores(scores, tie_tolerance=self.tie_tolerance)

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        """TRL reward-function protocol: one float per completion."""
        if completions is None:
            raise ValueError("the labeler needs `completions`")
        texts = [completion_text(c) for c in completions]
        prompt_texts = [completion_text(p) for p in prompts] if prompts is not None else [""] * len(texts)
        refs = kwargs.get("reference") or kwargs.get("completion_reference")
        return self.score(prompt_texts, texts, refs)


class SentimentLabeler(Labeler):
    """Positive sentiment is better: VADER's compound score (Hutto & Gilbert 2014) of the continuation.

    ``include_prompt=True`` scores prompt + continuation instead (the whole review). VADER is lexicon
    based, deterministic and fast (~10k texts/s), with the lexicon inside the ``vaderSentiment`` wheel.
    """

    def __init__(self, include_prompt: bool = False, tie_tolerance: float = 0.0):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as err:
            raise OfflineAssetMissing(f"SentimentLabeler needs vaderSentiment:\n    {INSTALL_HINT}") from err
        self._analyzer = SentimentIntensityAnalyzer()
        self.include_prompt = include_prompt
        self.tie_tolerance = tie_tolerance

    def score(self, prompts, completions, references=None) -> list[float]:
        out = []
        for p, c in zip(prompts, completions):
            text = f"{p}{c}" if self.include_prompt else c
            out.append(float(self._analyzer.polarity_scores(text)["compound"]))
        return out


# Suffixes of English adjectives and manner adverbs; a cheap stand-in for a part-of-speech tagger,
# whose models are not shipped in any installed package.
_DESCRIPTIVE_SUFFIXES = (
    "ful",
    "ous",
    "ive",
    "ic",
    "ical",
    "able",
    "ible",
    "ish",
    "less",
    "ant",
    "ent",
    "ary",
    "ly",
    "y",
    "al",
)
_STOP = {
    "only",
    "family",
    "really",
    "very",
    "early",
    "reply",
    "many",
    "they",
    "story",
    "money",
    "city",
    "country",
    "party",
    "every",
    "real",
    "deal",
    "want",
    "went",
    "sent",
    "meant",
    "event",
    "agent",
    "rent",
    "plant",
    "giant",
    "body",
    "anybody",
    "everybody",
    "somebody",
    "nobody",
    "apply",
    "supply",
    "july",
    "italy",
    "rally",
}
_WORD = re.compile(r"[A-Za-z']+")


class DescriptivenessLabeler(Labeler):
    """A lexical proxy for Ziegler et al.'s "physically descriptive" continuations.

    Score = ``distinct_descriptive_words / max(words, 4) - 0.5 * repeated_word_share``, where a word counts as
    descriptive when it looks like an adjective or a manner adverb by its suffix (-ful, -ous, -ive, -ly, ...;
    common false friends such as "only" or "family" excluded). No part-of-speech tagger ships in any
    installed package, so this suffix rule stands in for one. The repetition term stops a policy from
    winning by repeating one adjective; the ``max(words, 4)`` floor stops one-word answers from scoring 1.
    Empty continuations score 0.
    """

    def __init__(self, tie_tolerance: float = 0.0):
        self.tie_tolerance = tie_tolerance

    @staticmethod
    def _descriptive(word: str) -> bool:
        w = word.lower()
        return len(w) > 3 and w not in _STOP and w.endswith(_DESCRIPTIVE_SUFFIXES)

    def score(self, prompts, completions, references=None) -> list[float]:
        out = []
        for c in completions:
            words = [w.lower() for w in _WORD.findall(c)]
            if not words:
                out.append(0.0)
                continue
            descriptive = len({w for w in words if self._descriptive(w)})
            repeated = 1.0 - len(set(words)) / len(words)
            out.append(descriptive / max(len(words), 4) - 0.5 * repeated)
        return out


class SummaryLabeler(Labeler):
    """A judge for summaries (offline stand-in for the TL;DR / CNN-DM human raters).

    score = w_sim * cos(MiniLM(summary), MiniLM(article))
          + w_rouge * ROUGE-L F1(summary, reference)      (only when a reference is given)
          - w_len * distance of the summary's word count outside [min_words, max_words], in units of max_words
          - w_copy * share of the summary's 4-grams copied from the article beyond the first 8 words

    Similarity rewards covering the article; the copy term stops a policy from pasting the article (which
    maximizes similarity); the length band keeps it a summary. The article is taken from the prompt
    (text after "ARTICLE:" and before "TL;DR:" when present).
    """

    def __init__(
        self,
        min_words: int = 5,
        max_words: int = 30,
        w_sim: float = 1.0,
        w_rouge: float = 1.0,
        w_len: float = 1.0,
        w_copy: float = 0.5,
        tie_tolerance: float = 1e-6,
        device: str = "cpu",
    ):
        if not 0 < min_words <= max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {min_words}, {max_words}")
        self.min_words, self.max_words = min_words, max_words
        self.w_sim, self.w_rouge, self.w_len, self.w_copy = w_sim, w_rouge, w_len, w_copy
        self.tie_tolerance = tie_tolerance
        self.device = device
        self._encoder = None
        self._rouge = None

    @staticmethod
    def article_of(prompt: str) -> str:
        text = prompt
        if "ARTICLE:" in text:
            text = text.split("ARTICLE:", 1)[1]
        if "TL;DR:" in text:
            text = text.rsplit("TL;DR:", 1)[0]
        return text.strip()

    def _embed(self, texts: list[str]):
        import torch

        if self._encoder is None:
            from transformers import AutoModel, AutoTokenizer

            from .assets import minilm_path

            path = minilm_path()
            self._encoder = (
                AutoTokenizer.from_pretrained(path),
                AutoModel.from_pretrained(path).to(self.device).eval(),
            )
        tokenizer, model = self._encoder
        batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt").to(self.device)
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def _rouge_l(self, summary: str, reference: str) -> float:
        if self._rouge is None:
            try:
                from rouge_score import rouge_scorer
            except ImportError as err:
                raise OfflineAssetMissing(
                    f"SummaryLabeler needs rouge_score for references:\n    {INSTALL_HINT}"
                ) from err
            self._rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        return float(self._rouge.score(reference, summary)["rougeL"].fmeasure)

    @staticmethod
    def _copied_share(summary: str, article: str) -> float:
        words = summary.lower().split()
        if len(words) <= 8:
            return 0.0
        grams = {tuple(words[i : i + 4]) for i in range(len(words) - 3)}
        art = article.lower().split()
        art_grams = {tuple(art[i : i + 4]) for i in range(len(art) - 3)}
        return len(grams & art_grams) / max(len(grams), 1)

    def score(self, prompts, completions, references=None) -> list[float]:
        articles = [self.article_of(p) for p in prompts]
        summaries = [c.strip() for c in completions]
        emb_s = self._embed([s or " " for s in summaries])
        emb_a = self._embed([a or " " for a in articles])
        sims = (emb_s * emb_a).sum(-1).tolist()
        out = []
        for i, (summary, article) in enumerate(zip(summaries, articles)):
            n = len(summary.split())
            if n == 0:
                out.append(-1.0)
                continue
            outside = max(self.min_words - n, 0, n - self.max_words) / self.max_words
            s = self.w_sim * sims[i] - self.w_len * outside - self.w_copy * self._copied_share(summary, article)
            if references is not None and references[i]:
                s += self.w_rouge * self._rouge_l(summary, references[i])
            out.append(float(s))
        return out


#: task name -> labeler class: what each task prefers (Ziegler et al.'s stylistic tasks, and summaries).
LABELERS: dict[str, type[Labeler]] = {
    "sentiment": SentimentLabeler,
    "descriptiveness": DescriptivenessLabeler,
    "summary": SummaryLabeler,
}


def make_labeler(task: str, **kwargs) -> Labeler:
    """The labeler of ``task`` (a key of :data:`LABELERS`), built with ``kwargs``."""
    if task not in LABELERS:
        raise ValueError(f"task must be one of {sorted(LABELERS)}, got {task!r}")
    return LABELERS[task](**kwargs)
