"""Matryoshka2dLoss: cut the model short in depth (layers) and in width (dimensions) at once.

2D Matryoshka Sentence Embeddings (2DMSE): AdaptiveLayerLoss around MatryoshkaLoss around an
inner loss ℓ. Each step, for the last layer and for ``n_layers_per_step`` sampled earlier layers,
the embedding of that layer is truncated to ``n_dims_per_step`` sampled prefix sizes d_k and
L2-normalised, and ℓ is applied there:

    L = a · Σ_k w_k ℓ(e_L[:d_k])
        + Σ_{l ∈ S} [ b · ω(l) / |S| · Σ_k w_k ℓ(e_l[:d_k])
                      + c · T · KL( softmax(e_L / T) ‖ softmax(e_l / T) ) ]

(the KL term compares full-size embeddings). Every symbol and knob is explained in
losses/adaptive_layer.py (layers: a, b, c, T, ω, S) and losses/matryoshka.py (dims: d_k, w_k).
Following the 2DMSE paper, both ``n_layers_per_step`` and ``n_dims_per_step`` default to 1: one
random earlier layer and one random dimension per layer call, each step.

Paper: Li et al., "2D Matryoshka Sentence Embeddings" (arXiv 2402.14776).

Data: whatever the inner loss takes. Needs a transformer model (e.g. the lab's "tiny-bert"), and
an inner loss without gradient caching (see AdaptiveLayerLoss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import nn

from losses.adaptive_layer import AdaptiveLayerLoss
from losses.matryoshka import MatryoshkaLoss


class Matryoshka2dLoss(AdaptiveLayerLoss):
    """AdaptiveLayerLoss whose inner loss is a MatryoshkaLoss around ``loss``."""

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        matryoshka_dims: list[int],
        matryoshka_weights: list[float | int] | None = None,
        n_layers_per_step: int = 1,
        n_dims_per_step: int = 1,
        last_layer_weight: float = 1.0,
        prior_layers_weight: float = 1.0,
        kl_div_weight: float = 1.0,
        kl_temperature: float = 0.3,
        layer_weighting: Literal["uniform", "log", "linear"] | Callable[[int], float] = "uniform",
    ) -> None:
        matryoshka = MatryoshkaLoss(model, loss, matryoshka_dims,
                                    matryoshka_weights=matryoshka_weights,
                                    n_dims_per_step=n_dims_per_step)
        super().__init__(model, matryoshka, n_layers_per_step=n_layers_per_step,
                         last_layer_weight=last_layer_weight,
                         prior_layers_weight=prior_layers_weight, kl_div_weight=kl_div_weight,
                         kl_temperature=kl_temperature, layer_weighting=layer_weighting)

    def get_config_dict(self) -> dict[str, Any]:
        """The layer settings, then the dimension settings ("loss" names the innermost loss)."""
        return {**super().get_config_dict(), **self.loss.get_config_dict()}

    @property
    def citation(self) -> str:
        """Li et al., 2D Matryoshka Sentence Embeddings."""
        return super().citation
