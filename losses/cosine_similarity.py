"""CosineSimilarityLoss: regress the cosine similarity of a pair onto its gold score.

Formula, for pairs (u_i, v_i) with gold scores y_i and the default squared error:

    L = (1/B) Σ_i ( y_i - f(cos(u_i, v_i)) )²

where f is ``cos_score_transformation`` (identity by default) and the squared error is
``loss_fct`` (``nn.MSELoss()`` by default; any criterion taking (prediction, target) works, e.g.
``nn.L1Loss()``).

Paper: Reimers and Gurevych, "Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks"
(EMNLP 2019), which trained on STS scores this way.

Data: (sentence1, sentence2) pairs with a float score, the lab's "pair-score" format. Scores are
compared with a cosine, so they belong in [-1, 1] (usually [0, 1]; rescale 0-5 STS scores).

Each pair is judged on its own: a pair scored 0.8 is pulled to exactly 0.8 even when that is
already the best-ranked pair. CoSENTLoss and AnglELoss only ask for the right *order* of the
scores, which usually trains better.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from losses.base import EmbeddingLoss, fullname
from losses.similarity import paired_cosine
from losses.validation import check_finite, label_vector


class CosineSimilarityLoss(EmbeddingLoss):
    """Squared error between cos(u, v) and a gold similarity score, pair by pair."""

    expected_inputs = "(sentence1, sentence2) pairs with a float similarity score"
    column_range = (2, 2)

    def __init__(
        self,
        model: nn.Module,
        loss_fct: nn.Module = nn.MSELoss(),
        cos_score_transformation: nn.Module = nn.Identity(),
    ) -> None:
        super().__init__(model)
        self.loss_fct = loss_fct
        self.cos_score_transformation = cos_score_transformation

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        """Loss from the two columns' (batch, dim) embeddings and (batch,) scores."""
        batch_size, _ = self.check_embeddings(embeddings)
        scores = label_vector(type(self).__name__, self.expected_inputs, labels, batch_size)
        # One test (and one sync) for the usual batch: NaN fails both comparisons, ±inf one.
        if bool(((scores >= -1) & (scores <= 1)).logical_not_().any()):
            check_finite(type(self).__name__, "scores", scores)
            self.warn_once("range", f"scores outside [-1, 1] (max {scores.max().item():g}) are "
                                    "out of a cosine's reach; rescale them, e.g. STS 0-5 to 0-1")
        first, second = embeddings
        predicted = self.cos_score_transformation(paired_cosine(first, second))  # (B,)
        # Scores in the embeddings' dtype: a float64 model gets float64 targets, not float32 ones.
        return self.loss_fct(predicted, scores.to(predicted.dtype))

    def get_config_dict(self) -> dict[str, Any]:
        """Names of the criterion and of the score transformation."""
        return {
            "loss_fct": fullname(self.loss_fct),
            "cos_score_transformation": fullname(self.cos_score_transformation),
        }
