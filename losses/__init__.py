"""Our own implementation of sentence-transformers' losses, drop-in for 6.x.

Written from the math and the papers; sentence-transformers is only the oracle the tests compare
against. ``lab.catalog`` lists all 29 losses; the ones implemented so far are importable here
(``losses.__all__``), each from its own module.
"""

from losses.cosine_similarity import CosineSimilarityLoss
from losses.similarity import (
    BatchHardTripletLossDistanceFunction,
    SiameseDistanceMetric,
    TripletDistanceMetric,
)

__all__ = [
    "BatchHardTripletLossDistanceFunction",
    "CosineSimilarityLoss",
    "SiameseDistanceMetric",
    "TripletDistanceMetric",
]
