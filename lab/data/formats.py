"""The data formats of the sentence-transformers loss overview, as column contracts.

Every dataset the lab hands to a trainer has one of these formats. A format fixes the text
columns (in order: sentence-transformers feeds columns to the loss by position) and the label
column, whose name must be one the trainer's data collator recognises ("label" or "score").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """A data format: which text columns come first, then which label column (if any)."""

    name: str
    text_columns: tuple[str, ...]
    label_column: str | None
    # "int" (class ids), "binary" (0/1), "float" (score in [0, 1]), "vector" (list of floats,
    # e.g. teacher embedding or teacher scores), or None for no label.
    label_kind: str | None
    description: str
    # True when the text columns may continue as negative_1, negative_2, ... (n-tuples).
    variable_negatives: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """All columns in order: texts, then the label if there is one."""
        return self.text_columns + ((self.label_column,) if self.label_column else ())


_FORMAT_LIST = [
    Format("sentence-label", ("sentence",), "label", "int",
           "single sentences with an integer class (topic) label"),
    Format("sentence", ("sentence",), None, None, "unlabeled single sentences"),
    Format("pair", ("anchor", "positive"), None, None,
           "(anchor, positive) pairs of sentences with the same meaning"),
    Format("triplet", ("anchor", "positive", "negative"), None, None,
           "(anchor, positive, hard negative) triplets"),
    Format("n-tuple", ("anchor", "positive", "negative_1"), None, None,
           "(anchor, positive, negative_1, ..., negative_n) tuples", variable_negatives=True),
    Format("pair-score", ("sentence1", "sentence2"), "score", "float",
           "sentence pairs with a similarity score in [0, 1]"),
    Format("pair-label", ("sentence1", "sentence2"), "label", "binary",
           "sentence pairs with a 0/1 label (1 = same meaning)"),
    Format("nli", ("premise", "hypothesis"), "label", "int",
           "premise/hypothesis pairs labelled 0 entailment, 1 neutral, 2 contradiction"),
    Format("denoising", ("damaged", "original"), None, None,
           "(damaged sentence, original sentence) pairs for denoising auto-encoding"),
    Format("teacher-embedding", ("sentence",), "label", "vector",
           "sentences with the teacher model's embedding of each as the label"),
    Format("teacher-margin", ("query", "positive", "negative"), "label", "float",
           "(query, positive, negative) with the teacher's score margin "
           "sim(query, positive) - sim(query, negative) as the label"),
    Format("teacher-scores", ("query", "positive", "negative_1"), "label", "vector",
           "(query, positive, negative_1..n) with the teacher's scores "
           "[sim(q, p), sim(q, n_1), ..., sim(q, n_n)] as the label", variable_negatives=True),
]

FORMATS: dict[str, Format] = {f.name: f for f in _FORMAT_LIST}
"""Every data format the lab produces, by name, in a stable order."""

NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
"""Class names of the "nli" format, indexed by label id."""
