"""Our own implementation of sentence-transformers' losses, drop-in for 6.x.

Written from the math and the papers; sentence-transformers is only the oracle the tests compare
against. Use it exactly like ``sentence_transformers.sentence_transformer.losses``::

    import losses
    loss = losses.MultipleNegativesRankingLoss(model, scale=20.0)
    trainer = SentenceTransformerTrainer(model=model, train_dataset=data, loss=loss)

Every loss also computes from embeddings alone, ``loss.compute_loss_from_embeddings(embeddings,
labels)`` with ``model=None`` (AdaptiveLayerLoss needs every layer's embeddings:
``compute_loss_from_layer_embeddings``). ``lab.catalog`` describes all 29 losses.

Shared pieces: ``base`` (the loss base class), ``similarity`` (similarities, distances and the
metric classes), ``mining`` (batch triplet mining),
``validation`` (input checks), ``distributed`` (gathering across processes), ``gradient_cache``
(mini-batched embedding with replay, for every cached loss), ``model_patching`` (temporary
patches that Matryoshka and AdaptiveLayer always undo).
"""

from losses.adaptive_layer import AdaptiveLayerLoss
from losses.angle import AnglELoss
from losses.batch_all_triplet import BatchAllTripletLoss
from losses.batch_hard_soft_margin_triplet import BatchHardSoftMarginTripletLoss
from losses.batch_hard_triplet import BatchHardTripletLoss
from losses.batch_semi_hard_triplet import BatchSemiHardTripletLoss
from losses.cached_gist_embed import CachedGISTEmbedLoss
from losses.cached_multiple_negatives_ranking import CachedMultipleNegativesRankingLoss
from losses.cached_multiple_negatives_symmetric_ranking import (
    CachedMultipleNegativesSymmetricRankingLoss,
)
from losses.contrastive import ContrastiveLoss
from losses.contrastive_tension import (
    ContrastiveTensionDataLoader,
    ContrastiveTensionLoss,
    ContrastiveTensionLossInBatchNegatives,
)
from losses.cosent import CoSENTLoss
from losses.cosine_similarity import CosineSimilarityLoss
from losses.denoising_auto_encoder import DenoisingAutoEncoderLoss
from losses.distill_kl_div import DistillKLDivLoss
from losses.embed_distill import EmbedDistillLoss
from losses.gist_embed import GISTEmbedLoss
from losses.global_orthogonal_regularization import GlobalOrthogonalRegularizationLoss
from losses.margin_mse import MarginMSELoss
from losses.matryoshka import MatryoshkaLoss
from losses.matryoshka_2d import Matryoshka2dLoss
from losses.mega_batch_margin import MegaBatchMarginLoss
from losses.mse import MSELoss
from losses.multiple_negatives_ranking import MultipleNegativesRankingLoss
from losses.multiple_negatives_symmetric_ranking import MultipleNegativesSymmetricRankingLoss
from losses.online_contrastive import OnlineContrastiveLoss
from losses.similarity import (
    BatchHardTripletLossDistanceFunction,
    SiameseDistanceMetric,
    TripletDistanceMetric,
)
from losses.softmax import SoftmaxLoss
from losses.triplet import TripletLoss

__all__ = [
    "AdaptiveLayerLoss",
    "AnglELoss",
    "BatchAllTripletLoss",
    "BatchHardSoftMarginTripletLoss",
    "BatchHardTripletLoss",
    "BatchHardTripletLossDistanceFunction",
    "BatchSemiHardTripletLoss",
    "CachedGISTEmbedLoss",
    "CachedMultipleNegativesRankingLoss",
    "CachedMultipleNegativesSymmetricRankingLoss",
    "CoSENTLoss",
    "ContrastiveLoss",
    "ContrastiveTensionDataLoader",
    "ContrastiveTensionLoss",
    "ContrastiveTensionLossInBatchNegatives",
    "CosineSimilarityLoss",
    "DenoisingAutoEncoderLoss",
    "DistillKLDivLoss",
    "EmbedDistillLoss",
    "GISTEmbedLoss",
    "GlobalOrthogonalRegularizationLoss",
    "MSELoss",
    "MarginMSELoss",
    "Matryoshka2dLoss",
    "MatryoshkaLoss",
    "MegaBatchMarginLoss",
    "MultipleNegativesRankingLoss",
    "MultipleNegativesSymmetricRankingLoss",
    "OnlineContrastiveLoss",
    "SiameseDistanceMetric",
    "SoftmaxLoss",
    "TripletDistanceMetric",
    "TripletLoss",
]
