"""ROUGE as an ``evaluate`` metric module that works offline (Lin 2004, via Google's ``rouge_score`` package).

``evaluate.load("rouge")`` fetches its script from the Hub, which offline machines cannot reach; this module
gives the same keys (rouge1, rouge2, rougeL, rougeLsum), each the mean over examples of the F1 measure,
with Porter stemming on. The Hub module aggregates with a bootstrap (the middle of its interval); the mean
is deterministic and, for the bootstrap's midpoint, the same to within sampling noise.
"""

import datasets
import evaluate

_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="Lin, Chin-Yew. ROUGE: A Package for Automatic Evaluation of Summaries. 2004.",
            inputs_description="predictions: list of summaries; references: list of reference summaries (one each)",
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, use_stemmer=True):
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(list(_KEYS), use_stemmer=use_stemmer)
        totals = dict.fromkeys(_KEYS, 0.0)
        for prediction, reference in zip(predictions, references):
            # rougeLsum splits summaries into sentences at newlines.
            scores = scorer.score(reference, prediction)
            for key in _KEYS:
                totals[key] += scores[key].fmeasure
        n = max(len(predictions), 1)
        return {key: totals[key] / n for key in _KEYS}
