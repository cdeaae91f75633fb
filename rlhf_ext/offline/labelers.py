"""Programmatic labelers: the offline stand-ins for the human labelers of the papers.

Ziegler et al. 2019 checked their pipeline with a sentiment classifier acting as a "mock labeler"; these
classes play the same role. Each one scores completions, turns the scores into a ranking (lower rank is
better, equal scores tie, as in InstructGPT's "D > C > A = B"), and doubles as a TRL reward function
(``labeler(prompts=..., completions=...) -> list[float]``).

- :class:`SentimentLabeler`: VADER compound score in [-1, 1] of the continuation; positive is better.
- :class:`DescriptivenessLabeler`: a lexical proxy for "vivid, descriptive" continuations (see its docstring).
- :class:`SummaryLabeler`: a judge for summaries: MiniLM similarity to the article, fluency and completeness
  under the base SmolLM2, and penalties for pasting, repetition and leaving the length band (validated on
  held-out articles by ``benchmarks/validate_summary_judge.py``).

Recipes name a labeler by its task; :data:`LABELERS` maps each task to its class and :func:`make_labeler` builds one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..data.ranking import ranks_from_scores, scores_shared_by_copies
from .assets import INSTALL_HINT, OfflineAssetMissing
from .summary_judge import (
    ArticleSimilarity,
    LanguageModelFluency,
    article_of,
    longest_copied_span,
    repeated_word_share,
)

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
        """Rank K completions of one prompt: 0 is the best; equal scores, and copies of one text, share a rank."""
        texts = [completion_text(c) for c in completions]
        refs = None if reference is None else [reference] * len(texts)
        scores = scores_shared_by_copies(texts, self.score([completion_text(prompt)] * len(texts), texts, refs))
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
    """A judge for summaries: the offline stand-in for the TL;DR / CNN-DM human raters.

    score = cos(MiniLM(summary), MiniLM(article))                               relevance
          - w_copy * min(max(copied_span - copy_allowance, 0) / copy_allowance, 1)   pasting
          - w_repeat * share of repeated content words                          redundancy
          - w_fluency * min(max(fluency_floor - mean token log-prob, 0), 5)      does not read as language
          - w_end * min(max(end_floor - log P(end), 0), 10)                      stops mid-phrase
          - w_length * min(words outside [min_words, max_words] / max_words, 1)  too short / too long
    and an empty summary scores ``EMPTY_SCORE`` (-10), below anything with words.

    The features are measured by :mod:`rlhf_ext.offline.summary_judge`: log-probabilities under the base
    SmolLM2-135M after a ``"TL;DR:"`` prefix (never after the article, so pasting earns no fluency), MiniLM
    similarity to the article found in the prompt (the text after "ARTICLE:" and before "TL;DR:"), and word
    counts. Every penalty saturates, so no single fault outweighs everything else. The fluency and end terms are
    floors, not targets: text as fluent as a headline costs nothing, so a policy gains nothing by writing
    blander, more predictable text than people do.

    The weights were set on articles of the training split (a logistic fit with each term's sign fixed, then
    rounded) so that human-written headlines beat the SFT policy's samples and every corrupted variant
    (another article's headline, the article's opening words, a truncated, shuffled or repeated headline);
    ``benchmarks/validate_summary_judge.py`` measures those contrasts on held-out articles
    (docs/summarization.md). The judge never sees the reference, so references are judged like any summary;
    ``references`` is accepted for the :class:`Labeler` interface and ignored.
    """

    EMPTY_SCORE = -10.0

    def __init__(
        self,
        min_words: int = 4,
        max_words: int = 20,
        w_copy: float = 0.6,
        copy_allowance: int = 5,
        w_repeat: float = 1.5,
        w_fluency: float = 0.15,
        fluency_floor: float = -7.5,
        w_end: float = 0.2,
        end_floor: float = -4.5,
        w_length: float = 1.0,
        tie_tolerance: float = 0.0,
        device: str = "cpu",
    ):
        if not 0 < min_words <= max_words:
            raise ValueError(f"need 0 < min_words <= max_words, got {min_words}, {max_words}")
        if copy_allowance < 1:
            raise ValueError(f"copy_allowance must be >= 1 word, got {copy_allowance}")
        weights = {
            "w_copy": w_copy,
            "w_repeat": w_repeat,
            "w_fluency": w_fluency,
            "w_end": w_end,
            "w_length": w_length,
        }
        negative = {k: v for k, v in weights.items() if v < 0}
        if negative:
            raise ValueError(f"penalty weights must be >= 0 (a negative weight rewards the fault), got {negative}")
        self.min_words, self.max_words = min_words, max_words
        self.w_copy, self.copy_allowance, self.w_repeat = w_copy, copy_allowance, w_repeat
        self.w_fluency, self.fluency_floor, self.w_end, self.end_floor = w_fluency, fluency_floor, w_end, end_floor
        self.w_length = w_length
        self.tie_tolerance = tie_tolerance
        self.device = device
        self._similarity = None
        self._fluency = None

    article_of = staticmethod(article_of)

    def features(self, prompts: Sequence[str], completions: Sequence[str]) -> list[dict]:
        """The measurements behind each score: similarity, copied span, repetition, fluency, end, words."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: pair them one to one")
        if self._similarity is None:
            self._similarity = ArticleSimilarity(self.device)
            self._fluency = LanguageModelFluency(self.device)
        articles = [article_of(completion_text(p)) for p in prompts]
        summaries = [completion_text(c).strip() for c in completions]
        sims = self._similarity.similarity(articles, summaries)
        fluency = self._fluency.score(summaries)
        return [
            {
                "words": len(summary.split()),
                "similarity": sim,
                "copied_span": longest_copied_span(summary, article),
                "repeated_share": repeated_word_share(summary),
                "token_logprob": token_logprob,
                "end_logprob": end_logprob,
            }
            for summary, article, sim, (token_logprob, end_logprob) in zip(summaries, articles, sims, fluency)
        ]

    def score_features(self, f: dict) -> float:
        """The judge's score from one :meth:`features` row."""
        if f["words"] == 0:
            return self.EMPTY_SCORE
        n = f["words"]
        outside = max(self.min_words - n, 0, n - self.max_words) / self.max_words
        copied = max(f["copied_span"] - self.copy_allowance, 0) / self.copy_allowance
        return float(
            f["similarity"]
            - self.w_copy * min(copied, 1.0)
            - self.w_repeat * f["repeated_share"]
            - self.w_fluency * min(max(self.fluency_floor - f["token_logprob"], 0.0), 5.0)
            - self.w_end * min(max(self.end_floor - f["end_logprob"], 0.0), 10.0)
            - self.w_length * min(outside, 1.0)
        )

    def score(self, prompts, completions, references=None) -> list[float]:
        return [self.score_features(f) for f in self.features(prompts, completions)]


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
