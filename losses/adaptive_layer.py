"""AdaptiveLayerLoss: train the embeddings of earlier layers too, so the model can be cut short.

A loss *modifier*. A transformer with L layers has L + 1 hidden states h_0 (the embedding layer's
output) ... h_L (the last layer). Pooling h_l instead of h_L gives the embedding the model would
produce if it stopped after layer l. With an inner loss ℓ, a set S of prior layers (all of
0..L-1, or ``n_layers_per_step`` of them drawn at random each step) and layer weights ω(l):

    L = a · ℓ(e_L)
        + Σ_{l ∈ S} [ b · ω(l) / |S| · ℓ(e_l)
                      + c · T · KL( softmax(e_L / T) ‖ softmax(e_l / T) ) ]

with a = ``last_layer_weight``, b = ``prior_layers_weight``, c = ``kl_div_weight`` and
T = ``kl_temperature``. The KL term is a self-distillation: each earlier layer's embedding
(softmax over the embedding coordinates, every row of every column) is pulled towards the last
layer's, which acts as a fixed teacher (no gradient flows into it through this term); it is the
batch mean over rows. T = 0 turns it off.

Layer weights ω: ``"uniform"`` 1 (as in 2DMSE and Starbucks); ``"log"`` 1 / (1 + ln(1 + l)) (the
ESE paper); ``"linear"`` 1 / (1 + l); or any function of the layer index l (0 = embedding layer).

Paper: Li et al., "2D Matryoshka Sentence Embeddings" (arXiv 2402.14776).

Data: whatever the inner loss takes; columns and labels pass through unchanged.

How it runs, in one step: the inner loss is called on the final layer first, while the model's
transformer module is asked for all hidden states, which are remembered; then once per sampled
layer, while the transformer module answers from memory with that layer's hidden states (the
transformer itself runs once per step; pooling and later modules run again). The transformer
module's ``forward`` and the model's ``forward`` (which records the pooled embeddings for the KL
term) are swapped for the step and restored afterwards, also on error (losses/model_patching.py),
and so is the transformer config's ``output_hidden_states``.

Needs: a model whose first module is a Hugging Face transformer (``auto_model`` with a config),
such as the lab's "tiny-bert"; a static-embedding model (the lab's "tiny") has no layers to cut,
and is refused with a ValueError at construction. Stricter than the reference: an inner loss that
uses gradient caching (its backward hook would re-embed the mini-batches after the step, with the
last layer, so the earlier layers' gradients would be wrong; the reference only warns),
``n_layers_per_step`` of 0 or below -1, and a negative ``kl_temperature`` raise a ValueError.

Without a model, ``compute_loss_from_layer_embeddings`` gives the same loss from per-layer
embeddings computed elsewhere.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.model_patching import swapped_forward, unwrap_model

LAYER_WEIGHTINGS = ("uniform", "log", "linear")
LayerWeighting = Literal["uniform", "log", "linear"] | Callable[[int], float]


def transformer_module(model: nn.Module | None, loss_name: str) -> nn.Module:
    """The model's first module, checked to be a transformer whose layers can be read out."""
    first = None
    if model is not None:
        try:
            first = unwrap_model(model)[0]
        except (TypeError, IndexError, KeyError):
            first = None
    config = getattr(getattr(first, "auto_model", None), "config", None)
    if config is None or not hasattr(config, "output_hidden_states"):
        got = "no model" if model is None else (
            f"a model whose first module is {type(first).__name__}" if first is not None
            else f"a {type(model).__name__} without modules")
        raise ValueError(
            f"{loss_name} trains the embeddings of a transformer's earlier layers, so it needs a "
            "model whose first module is a Hugging Face transformer with layers (e.g. the lab's "
            f"'tiny-bert' or 'minilm'); got {got}. A static-embedding model (the lab's 'tiny') "
            "has no layers to cut: use the inner loss (or MatryoshkaLoss) on its own.")
    return first


def kl_to_teacher(student: Tensor, teacher_probabilities: Tensor, temperature: float) -> Tensor:
    """KL(teacher ‖ softmax(student / T)) summed over coordinates, averaged over rows.

    student: (rows, dim) embeddings; teacher_probabilities: (rows, dim), rows summing to 1.
    """
    log_student = F.log_softmax(student / temperature, dim=-1)  # (rows, dim)
    # xlogy(p, p) is 0 where p underflowed to 0, instead of 0 · (-inf) = NaN.
    pointwise = torch.xlogy(teacher_probabilities, teacher_probabilities) - (
        teacher_probabilities * log_student)
    return pointwise.sum() / student.shape[0]


class _HiddenStateReplay:
    """Stands in for the transformer module's ``forward`` during one step.

    ``layer`` None: run the transformer with all hidden states on, remember each call's output
    and hidden states (one call per column, in order). ``layer`` l: the k-th call returns the
    k-th remembered output with layer l's hidden states as its token embeddings.
    """

    def __init__(self, transformer: nn.Module, forward: Callable, loss_name: str) -> None:
        self.transformer = transformer
        self.forward = forward
        self.loss_name = loss_name
        self.remembered: list[tuple[dict[str, Any], Sequence[Tensor]]] = []
        self.layer: int | None = None
        self.calls = 0

    @property
    def hidden_state_count(self) -> int:
        """L + 1: the embedding layer's output and one per transformer layer."""
        return len(self.remembered[0][1]) if self.remembered else 0

    def replay(self, layer: int) -> None:
        self.layer = layer
        self.calls = 0

    def __call__(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if self.layer is None:
            config = self.transformer.auto_model.config
            previous = config.output_hidden_states  # may be a property: set it back, not delete
            config.output_hidden_states = True
            try:
                output = self.forward(features, **kwargs)
            finally:
                config.output_hidden_states = previous
            hidden_states = output.get("all_layer_embeddings")
            if hidden_states is None:
                raise ValueError(f"{self.loss_name}: the transformer module returned no hidden "
                                 "states ('all_layer_embeddings'), so its layers cannot be used")
            self.remembered.append((dict(output), hidden_states))
            return output
        if self.calls >= len(self.remembered):
            raise RuntimeError(f"{self.loss_name}: the wrapped loss ran the model more often for "
                               f"layer {self.layer} than for the last layer; it must embed the "
                               "same columns, in the same order, on every call")
        output, hidden_states = self.remembered[self.calls]
        self.calls += 1
        return {**output, "token_embeddings": hidden_states[self.layer]}  # (B, seq, hidden)


class _EmbeddingRecorder:
    """Stands in for the model's ``forward``: collects every sentence embedding it returns."""

    def __init__(self, forward: Callable) -> None:
        self.forward = forward
        self.embeddings: list[Tensor] = []

    def __call__(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        output = self.forward(features, **kwargs)
        self.embeddings.append(output["sentence_embedding"])
        return output

    def take(self) -> Tensor:
        """(rows of every recorded column, dim), and forget them."""
        embeddings, self.embeddings = torch.cat(self.embeddings, dim=0), []
        return embeddings


class AdaptiveLayerLoss(EmbeddingLoss):
    """The inner loss on the last layer plus on (sampled) earlier layers, with a KL pull."""

    expected_inputs = "the columns and labels of the wrapped loss"

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        n_layers_per_step: int = 1,
        last_layer_weight: float = 1.0,
        prior_layers_weight: float = 1.0,
        kl_div_weight: float = 1.0,
        kl_temperature: float = 0.3,
        layer_weighting: LayerWeighting = "uniform",
    ) -> None:
        super().__init__(model)
        name = type(self).__name__
        if not callable(layer_weighting) and layer_weighting not in LAYER_WEIGHTINGS:
            raise ValueError(f"{name}: layer_weighting must be one of {LAYER_WEIGHTINGS} or a "
                             f"function of the layer index; got {layer_weighting!r}")
        if isinstance(n_layers_per_step, bool) or not isinstance(n_layers_per_step, int) or (
                n_layers_per_step == 0 or n_layers_per_step < -1):
            raise ValueError(f"{name}: n_layers_per_step must be -1 (every earlier layer each "
                             f"step) or a positive number of layers to sample; got "
                             f"{n_layers_per_step!r}")
        if kl_temperature < 0:
            raise ValueError(f"{name}: kl_temperature must be >= 0 (0 turns the KL term off); "
                             f"got {kl_temperature}")
        transformer_module(model, name)
        if getattr(loss, "uses_gradient_cache", False):
            wrapped = type(loss).__name__
            if isinstance(getattr(loss, "loss", None), nn.Module):  # a wrapper: name its inner loss
                wrapped += f"({type(loss.loss).__name__})"
            raise ValueError(
                f"{name} cannot wrap {wrapped}: it uses gradient caching, whose "
                "backward hook re-embeds the batch after this loss's step, with the last layer "
                "only, so the earlier layers would get wrong gradients. Use the non-cached "
                "variant (e.g. MultipleNegativesRankingLoss, or use_mini_batched_version=False).")
        self.loss = loss
        self.n_layers_per_step = n_layers_per_step
        self.last_layer_weight = last_layer_weight
        self.prior_layers_weight = prior_layers_weight
        self.kl_div_weight = kl_div_weight
        self.kl_temperature = kl_temperature
        self.layer_weighting = layer_weighting

    def get_layer_weight(self, layer_idx: int) -> float:
        """ω(l) of the prior layer ``layer_idx`` (0 = the embedding layer's output)."""
        if callable(self.layer_weighting):
            return self.layer_weighting(layer_idx)
        if self.layer_weighting == "log":
            return 1.0 / (1.0 + math.log(1 + layer_idx))
        if self.layer_weighting == "linear":
            return 1.0 / (1 + layer_idx)
        return 1.0

    def sampled_layers(self, prior_layer_count: int) -> Sequence[int]:
        """Indices of the prior layers to train this step (drawn with Python's ``random``)."""
        layers: Sequence[int] = range(prior_layer_count)
        if 0 < self.n_layers_per_step < prior_layer_count:
            layers = random.sample(layers, self.n_layers_per_step)
        return layers

    def _layer_terms(self, layer: int, layer_loss: Tensor, layer_count: int,
                     student: Tensor | None, teacher: Tensor | None) -> Tensor:
        """One prior layer's weighted inner loss plus its KL term (when T > 0)."""
        term = layer_loss * self.get_layer_weight(layer) / layer_count * self.prior_layers_weight
        if teacher is not None:
            kl = kl_to_teacher(student, teacher, self.kl_temperature)
            term = term + kl * self.kl_temperature * self.kl_div_weight
        return term

    def _teacher(self, final_embeddings: Tensor) -> Tensor | None:
        """(rows, dim) softmax of the last layer's embeddings over T, detached; None if T = 0."""
        if self.kl_temperature <= 0:
            return None
        return F.softmax(final_embeddings / self.kl_temperature, dim=-1).detach()

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
                ) -> Tensor:
        """One step: the inner loss on the last layer, then on each sampled earlier layer."""
        features = list(sentence_features)
        model = unwrap_model(self.model)
        transformer = transformer_module(model, type(self).__name__)
        layers = _HiddenStateReplay(transformer, transformer.forward, type(self).__name__)
        recorder = _EmbeddingRecorder(model.forward)
        with swapped_forward(transformer, layers), swapped_forward(model, recorder):
            loss = self.loss(features, labels) * self.last_layer_weight
            teacher = self._teacher(recorder.take()) if self.kl_temperature > 0 else None
            chosen = self.sampled_layers(layers.hidden_state_count - 1)  # the last one is done
            for layer in chosen:
                layers.replay(layer)
                layer_loss = self.loss(features, labels)
                student = recorder.take() if teacher is not None else None
                loss = loss + self._layer_terms(layer, layer_loss, len(chosen), student, teacher)
        return loss

    def compute_loss_from_layer_embeddings(
        self, layer_embeddings: Sequence[list[Tensor]], labels: Tensor | None
    ) -> Tensor:
        """The same loss from per-layer, per-column (batch, dim) embeddings; no model needed.

        ``layer_embeddings[l]`` holds the pooled embeddings of every column at hidden state l:
        index 0 is the embedding layer, the last entry the final layer. The inner loss must have
        ``compute_loss_from_embeddings``. Layers are sampled as in ``forward``.
        """
        compute = getattr(self.loss, "compute_loss_from_embeddings", None)
        if compute is None or len(layer_embeddings) == 0:
            raise TypeError(f"{type(self).__name__}: needs a non-empty list of per-layer "
                            "embeddings and an inner loss with compute_loss_from_embeddings")
        *prior, final = layer_embeddings
        loss = compute(list(final), labels) * self.last_layer_weight
        teacher = self._teacher(torch.cat(list(final), dim=0))
        chosen = self.sampled_layers(len(prior))
        for layer in chosen:
            columns = list(prior[layer])
            student = torch.cat(columns, dim=0) if teacher is not None else None
            loss = loss + self._layer_terms(layer, compute(columns, labels), len(chosen),
                                            student, teacher)
        return loss

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor | None
                                     ) -> Tensor:
        """Not defined for one set of embeddings: use ``compute_loss_from_layer_embeddings``."""
        raise TypeError(f"{type(self).__name__} needs the embeddings of every layer: call "
                        "compute_loss_from_layer_embeddings(layer_embeddings, labels)")

    def get_config_dict(self) -> dict[str, Any]:
        """Settings as in the reference; a weighting function is reported by its __name__."""
        weighting = self.layer_weighting
        if not isinstance(weighting, str):
            weighting = getattr(weighting, "__name__", "custom")
        return {
            "loss": type(self.loss).__name__,
            "n_layers_per_step": self.n_layers_per_step,
            "last_layer_weight": self.last_layer_weight,
            "prior_layers_weight": self.prior_layers_weight,
            "kl_div_weight": self.kl_div_weight,
            "kl_temperature": self.kl_temperature,
            "layer_weighting": weighting,
        }

    @property
    def citation(self) -> str:
        """Li et al., 2D Matryoshka Sentence Embeddings."""
        return CITATION_2DMSE


CITATION_2DMSE = """
@misc{li20242d,
    title={2D Matryoshka Sentence Embeddings},
    author={Xianming Li and Zongxi Li and Jing Li and Haoran Xie and Qing Li},
    year={2024},
    eprint={2402.14776},
    archivePrefix={arXiv},
    primaryClass={cs.CL}
}
"""
