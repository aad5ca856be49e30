"""EmbedDistillLoss: pull the student's embeddings onto precomputed teacher embeddings.

Formula, for text columns c = 1..C, student embeddings s_ic (optionally projected, P s_ic) and
teacher embeddings t_ic of the B rows:

    L = (1/C) Σ_c  mean_i  d(P s_ic, t_ic)

with the distance d chosen by ``distance_metric``:

- ``"cosine"`` (default): d = 1 - cos(s, t), bounded in [0, 2], ignores the vectors' lengths;
- ``"l2"``: d = ||s - t||, the Euclidean distance used in the EmbedDistill paper;
- ``"mse"``: the squared difference averaged over every coordinate as well,
  mean_i mean_k (s_ik - t_ik)²  (this is what MSELoss uses).

Paper: Kim et al., "EmbedDistill: A Geometric Knowledge Distillation for Information Retrieval"
(2023), the embedding-matching term.

Data: one or more text columns and a label column holding the teacher's embeddings, computed
once offline (the lab's "teacher-embedding" format). Labels of shape (batch, teacher_dim) give
every column the same target (e.g. an English sentence and its translation both aim at the
teacher's embedding of the English one); labels of shape (batch, columns, teacher_dim) give each
column its own target. ``compute_loss_from_embeddings`` also takes a list with one
(batch, teacher_dim) tensor per column, the reference's form.

``projection_dim``: when the student's width differs from the teacher's, a trainable linear map
``nn.Linear(student_dim, projection_dim)`` is applied to the student's embeddings first. It lives
on the loss (the trainer's optimizer trains it too) and is not saved with the model:
``save_projection`` / ``load_projection`` keep it between runs (safetensors, the same file the
reference writes). Its initial weights come from torch's random generator, drawn exactly as the
reference draws them, so a seeded construction gives the same layer. Unlike the reference, the
layer takes the model's dtype (the reference keeps it in float32 and then fails on a float64 or
half-precision model), and with ``model=None`` it is created on first use from the embeddings'
width.

Checks beyond the reference (which relies on torch broadcasting and fails, or worse silently
broadcasts a (1, dim) target over the whole batch): wrong batch size, a student/teacher width
mismatch (the error suggests ``projection_dim``), NaN or infinite teacher values, labels of the
wrong rank or column count: all raise ``LossInputError`` naming the loss and the expected format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_model
from torch import Tensor, nn

from losses.base import EmbeddingLoss
from losses.similarity import paired_cosine
from losses.validation import LossInputError, check_finite, describe

DISTANCE_METRICS = ("mse", "l2", "cosine")


def _model_placement(model: nn.Module | None) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the model's weights (None, None without weights)."""
    if model is None:
        return None, None
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.device, parameter.dtype
    return None, None


class EmbedDistillLoss(EmbeddingLoss):
    """Distance between the student's (optionally projected) embeddings and the teacher's."""

    expected_inputs = ("one or more text columns with the teacher's embeddings as labels, shape "
                       "(batch, teacher_dim) shared by every column or (batch, columns, "
                       "teacher_dim)")
    column_range = (1, None)

    def __init__(
        self,
        model: nn.Module,
        distance_metric: Literal["mse", "l2", "cosine"] = "cosine",
        projection_dim: int | None = None,
    ) -> None:
        super().__init__(model)
        if distance_metric not in DISTANCE_METRICS:
            raise ValueError(f"{type(self).__name__}: distance_metric must be one of "
                             f"{', '.join(map(repr, DISTANCE_METRICS))}; got {distance_metric!r}")
        self.distance_metric = distance_metric
        self.projection_dim = projection_dim
        self.projection: nn.Linear | None = None
        if projection_dim is not None:
            student_dim = self._student_dim()
            if student_dim is not None:  # else: built on first use, from the embeddings' width
                self.projection = self._new_projection(student_dim, projection_dim)

    # ------------------------------------------------------------------------------- projection
    def _student_dim(self) -> int | None:
        """The model's embedding width, or None when there is no model to ask."""
        getter = getattr(self.model, "get_embedding_dimension", None)
        return getter() if callable(getter) else None

    def _new_projection(self, in_features: int, out_features: int) -> nn.Linear:
        """A fresh linear map, on the model's device and in its dtype.

        Created in float32 first, so that it consumes the random generator exactly as a default
        ``nn.Linear`` does (same seed -> same weights as the reference), then cast.
        """
        device, dtype = _model_placement(self.model)
        layer = nn.Linear(in_features, out_features, device=device)
        return layer if dtype is None else layer.to(dtype)

    def save_projection(self, path: str | os.PathLike) -> None:
        """Write the projection's weights to a safetensors file (``weight``, ``bias``).

        The trainer saves the model, not the loss, so a trained projection is lost unless saved
        here; ``load_projection`` reads it back, e.g. for a second training stage.
        """
        if self.projection is None:
            raise ValueError(f"{type(self).__name__} has no projection layer to save; construct "
                             f"it with projection_dim=<teacher dim> to get one")
        save_model(self.projection, str(path))

    def load_projection(self, path: str | os.PathLike) -> None:
        """Load weights written by ``save_projection``.

        Without a projection yet, one of the saved shape is created (and ``projection_dim`` set);
        otherwise the saved shape must equal the current layer's.
        """
        state = load_file(str(path))
        out_features, in_features = state["weight"].shape
        if self.projection is None:
            student_dim = self._student_dim()
            if student_dim is not None and student_dim != in_features:
                raise ValueError(
                    f"{type(self).__name__}: the saved projection maps {in_features}-dim "
                    f"embeddings, but the student model produces {student_dim}-dim ones")
            self.projection = self._new_projection(in_features, out_features)
            self.projection_dim = out_features
        elif (self.projection.in_features, self.projection.out_features) != (in_features,
                                                                             out_features):
            raise ValueError(
                f"{type(self).__name__}: the saved projection maps {in_features} -> "
                f"{out_features}, the configured one {self.projection.in_features} -> "
                f"{self.projection.out_features}")
        self.projection.load_state_dict(state)

    def forward(self, sentence_features: Iterable[dict[str, Tensor]],
                labels: Tensor | None = None) -> Tensor:
        """Refuse missing labels before spending a forward pass, then embed and compare."""
        if labels is None:
            self.teacher_targets(None, 0, 0)  # raises the clear error
        return super().forward(sentence_features, labels)

    # ------------------------------------------------------------------------------------ labels
    def teacher_targets(self, labels: Tensor | Sequence[Tensor] | None, columns: int,
                        batch_size: int, check_values: bool = True) -> list[Tensor]:
        """One (batch, teacher_dim) teacher tensor per column, from any accepted label form.

        ``check_values``: also refuse NaN or infinite entries (a full pass over the targets;
        ``compute_loss_from_embeddings`` does it only when the loss comes out non-finite).
        """
        name = type(self).__name__
        if labels is None:
            raise LossInputError(
                f"{name} expects {self.expected_inputs}; got no labels (labels=None). Compute the "
                f"teacher's embeddings once and add them as a 'label' column (dataset.map)")
        if isinstance(labels, (list, tuple)) and all(isinstance(t, Tensor) for t in labels):
            if len(labels) != columns:
                raise LossInputError(f"{name} got {len(labels)} teacher tensors for {columns} "
                                     f"text column(s); give one per column")
            targets = [torch.as_tensor(target) for target in labels]
        else:
            labels = torch.as_tensor(labels)
            if labels.dim() == 2:  # one target shared by every column
                targets = [labels] * columns
            elif labels.dim() == 3 and labels.shape[1] == columns:  # one target per column
                targets = list(labels.unbind(dim=1))
            else:
                raise LossInputError(
                    f"{name} expects {self.expected_inputs}, i.e. (batch, teacher_dim) or "
                    f"({batch_size}, {columns}, teacher_dim) for {columns} column(s); got "
                    f"{describe(labels)}")
        for target in targets:
            if target.dim() != 2 or target.shape[0] != batch_size:
                raise LossInputError(f"{name} expects each column's teacher embeddings of shape "
                                     f"({batch_size}, teacher_dim); got {describe(target)}")
            if target.dtype == torch.bool or target.is_complex():
                raise LossInputError(f"{name} expects real-valued teacher embeddings; got "
                                     f"{describe(target)}")
            if check_values:
                check_finite(name, "teacher embeddings", target)
        return [target.detach() for target in targets]

    # -------------------------------------------------------------------------------------- math
    def distance(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Mean distance between the rows of two (batch, dim) tensors: a scalar."""
        if self.distance_metric == "mse":
            return F.mse_loss(student, teacher)  # mean of the squared differences
        if self.distance_metric == "l2":
            # vector_norm's gradient at a zero difference is defined as 0 (no NaN).
            return torch.linalg.vector_norm(student - teacher, dim=-1).mean()
        return (1.0 - paired_cosine(student, teacher)).mean()

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | Sequence[Tensor] | None
    ) -> Tensor:
        """Mean over the columns of the distance to the teacher's embeddings."""
        batch_size, student_dim = self.check_embeddings(embeddings)
        # Shapes now; the values only if the loss is not finite (a NaN or infinite teacher entry
        # always makes it so), which saves a pass over the targets on every healthy step.
        targets = self.teacher_targets(labels, len(embeddings), batch_size, check_values=False)
        name = type(self).__name__
        if self.projection_dim is not None and self.projection is None:
            self.projection = self._new_projection(student_dim, self.projection_dim)
            self.projection.to(device=embeddings[0].device, dtype=embeddings[0].dtype)
        if self.projection is not None and self.projection.in_features != student_dim:
            raise LossInputError(
                f"{name}: the projection maps {self.projection.in_features}-dim embeddings, but "
                f"the student produced {student_dim}-dim ones")
        output_dim = student_dim if self.projection is None else self.projection.out_features
        teacher_dim = targets[0].shape[1]
        if teacher_dim != output_dim:
            hint = (f"set projection_dim={teacher_dim} to learn a map into the teacher's space"
                    if self.projection is None else
                    f"the projection outputs {output_dim}: use projection_dim={teacher_dim}")
            raise LossInputError(
                f"{name}: student embeddings have {output_dim} dimensions but the teacher's have "
                f"{teacher_dim}; {hint}")

        per_column = []
        for student, teacher in zip(embeddings, targets, strict=True):  # each (batch, dim)
            teacher = teacher.to(device=student.device, dtype=student.dtype)
            if self.projection is not None:
                student = self.projection(student)  # (batch, projection_dim)
            per_column.append(self.distance(student, teacher))
        value = torch.stack(per_column).mean()
        if not bool(torch.isfinite(value)):
            for target in targets:
                check_finite(name, "teacher embeddings", target)
        return value

    def get_config_dict(self) -> dict[str, Any]:
        """The distance and the projection width (None without projection)."""
        return {"distance_metric": self.distance_metric, "projection_dim": self.projection_dim}

    @property
    def citation(self) -> str:
        return """
@article{kim2023embeddistill,
    title={EmbedDistill: A Geometric Knowledge Distillation for Information Retrieval},
    author={Kim, Seungyeon and Rawat, Ankit Singh and Zaheer, Manzil and Jayasumana, Sadeep and Sadhanala, Veeranjaneyulu and Jitkrittum, Wittawat and Menon, Aditya Krishna and Fergus, Rob and Kumar, Sanjiv},
    year={2023},
    eprint={2301.12005},
    archivePrefix={arXiv},
    primaryClass={cs.IR}
}
"""  # noqa: E501
