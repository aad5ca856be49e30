"""MSELoss: make the student reproduce the teacher's embeddings, coordinate by coordinate.

Formula, for text columns c = 1..C with student embeddings s_ic (optionally projected, P s_ic)
and teacher embeddings t_ic, B rows of dimension D:

    L = (1/C) Σ_c  (1/(B·D)) Σ_i Σ_k ( (P s_ic)_k - (t_ic)_k )²

It is EmbedDistillLoss with ``distance_metric="mse"`` (and a subclass of it): the same label
forms, the same ``projection_dim``, ``save_projection`` and ``load_projection``.

Paper: Reimers and Gurevych, "Making Monolingual Sentence Embeddings Multilingual using Knowledge
Distillation" (EMNLP 2020): a multilingual student learns to map both an English sentence and
its translation onto the English teacher's embedding.

Data: one or more text columns and a label column with the teacher's embeddings (the lab's
"teacher-embedding" format). Labels (batch, teacher_dim) are the target of every column (the
multilingual set-up: (english, french) columns, one English teacher embedding); labels
(batch, columns, teacher_dim) give each column its own target.

``projection_dim``: None (default) requires the student and teacher to have the same width, and
a mismatch raises an error that suggests this option; an int adds a trainable
``nn.Linear(student_dim, projection_dim)`` in front of the comparison (see EmbedDistillLoss).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from losses.embed_distill import EmbedDistillLoss


class MSELoss(EmbedDistillLoss):
    """Mean squared error between the student's and the teacher's embeddings."""

    def __init__(self, model: nn.Module, projection_dim: int | None = None) -> None:
        super().__init__(model, distance_metric="mse", projection_dim=projection_dim)

    def get_config_dict(self) -> dict[str, Any]:
        """Only the projection width: the distance is always the squared error."""
        return {"projection_dim": self.projection_dim}

    @property
    def citation(self) -> str:
        return """
@inproceedings{reimers-2020-multilingual-sentence-bert,
    title = "Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation",
    author = "Reimers, Nils and Gurevych, Iryna",
    booktitle = "Proceedings of the 2020 Conference on Empirical Methods in Natural Language Processing",
    month = "11",
    year = "2020",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/2004.09813",
}
"""  # noqa: E501
