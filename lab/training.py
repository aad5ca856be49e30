"""Train any catalog loss on a compatible dataset, and record what it did: ``lab.train``.

One call::

    result = lab.train(loss="BatchHardTripletLoss", model="tiny", steps=100, batch_size=32,
                       margin=2.0)

builds the model (catalog default if ``model`` is None), the data (the loss's default format from
the teaching corpus if ``dataset`` is None), the loss (``lab.build.build_loss``, knobs as keyword
arguments) and trains with sentence-transformers' ``SentenceTransformerTrainer`` on the GPU when
there is one, else the CPU. The batch sampler is the one the loss needs (the catalog's
``batch_sampler``: label-balanced batches for the batch triplet losses, no duplicate texts for
in-batch negatives).

While it trains, a recorder (a ``TrainerCallback``) keeps: the loss and its named components at
every step; metrics and probe-set embeddings at the start, at ``snapshots`` points and at the
end; for the batch triplet losses, the fraction of active triplets at every step and the full
mined triplets (with texts and batch embeddings) at the snapshot steps. ``on_update`` (or a
``stop_event``) lets a caller follow along and stop cleanly; stopping keeps everything recorded.
The :class:`TrainResult` saves to a run folder (``result.json``, ``arrays.npz`` and the model in
sentence-transformers format) and loads back.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from lab import catalog
from lab.build import KnobError, build_loss, check_knobs
from lab.data import FORMATS, load_dataset
from lab.data.validate import DataFormatError, expected_columns_text
from lab.evaluation import Probe, default_probe, evaluate

__all__ = ["DEFAULT_LEARNING_RATES", "Progress", "TrainResult", "TripletRecord", "train"]

DEFAULT_LEARNING_RATES: dict[str, float] = {"tiny": 0.01, "tiny-bert": 1e-3, "minilm": 5e-5}
"""Learning rates that move each built-in model visibly in ~100 steps without blowing it up.
The static model is a lookup table that only its batch's tokens update, so it takes a much
larger rate than a transformer (at 0.05 it memorises the training sentences within 100 steps
and gets worse on unseen ones; 0.01 still memorises them but also improves on unseen ones);
the randomly initialised tiny BERT needs more than a pretrained model; others get 5e-5."""

TRIPLET_RECORDS = 6
"""At most this many batches get their mined triplets recorded in full (texts, embeddings)."""

_META_LOG_KEYS = {"loss", "grad_norm", "learning_rate", "epoch", "step"}


@dataclass
class TripletRecord:
    """The triplets a batch triplet loss mined in one training batch.

    ``texts``/``labels``: the batch rows; ``embeddings``: (B, dim) the batch as the model embedded
    it in that step; ``anchor``/``positive``/``negative``: indices into the batch; ``losses``
    and ``active``: per triplet. ``num_valid``/``num_active``: counts (set even when the lists are
    not, e.g. BatchAllTripletLoss on a huge batch).
    """

    step: int
    texts: list[str]
    labels: list[int]
    embeddings: np.ndarray
    anchor: list[int]
    positive: list[int]
    negative: list[int]
    losses: list[float]
    active: list[bool]
    num_valid: int
    num_active: int


@dataclass
class TrainResult:
    """Everything a run recorded; ``save(folder)`` / ``TrainResult.load(folder)`` round-trip it.

    ``curves``: ``{"loss": [(step, value), ...], component: [...]}``; ``evaluations``:
    ``[{"step": s, metric: value, ...}]`` from step 0 to the end; ``snapshots``: ``[(step, (n,
    dim) probe embeddings)]``; ``active_fraction``: ``[(step, active / valid triplets)]``.
    """

    loss: str
    model_name: str
    data_format: str
    knobs: dict[str, Any]
    steps: int
    batch_size: int
    learning_rate: float
    device: str
    seed: int
    probe: Probe
    batch_sampler: str = "batch_sampler"
    processes: int = 1  # > 1 under torchrun / accelerate launch (batch_size is per process)
    steps_done: int = 0
    seconds: float = 0.0
    stopped: bool = False
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    evaluations: list[dict[str, float]] = field(default_factory=list)
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)
    active_fraction: list[tuple[int, float]] = field(default_factory=list)
    triplets: list[TripletRecord] = field(default_factory=list)
    extra_curves: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)
    model: Any = None
    run_dir: Path | None = None

    @property
    def metrics_before(self) -> dict[str, float]:
        """The metrics at step 0."""
        return _without_step(self.evaluations[0]) if self.evaluations else {}

    @property
    def metrics_after(self) -> dict[str, float]:
        """The metrics at the last evaluation (the end of training)."""
        return _without_step(self.evaluations[-1]) if self.evaluations else {}

    def summary(self) -> str:
        """A few lines for a terminal: what ran, how long, metrics before -> after."""
        status = "stopped early" if self.stopped else "done"
        lines = [f"{self.loss} on {self.data_format} with {self.model_name} ({self.device}): "
                 f"{self.steps_done}/{self.steps} steps, batch {self.batch_size}, "
                 f"{self.seconds:.1f} s, {status}"]
        if self.curves.get("loss"):
            first, last = self.curves["loss"][0][1], self.curves["loss"][-1][1]
            lines.append(f"  loss {first:.4f} -> {last:.4f}")
        after = self.metrics_after
        for name, value in self.metrics_before.items():
            lines.append(f"  {name:26s} {value:8.4f} -> {after.get(name, float('nan')):8.4f}")
        return "\n".join(lines)

    # ------------------------------------------------------------------------- save and load
    def save(self, folder: str | Path, *, save_model: bool = True) -> Path:
        """Write the run to ``folder``: result.json, arrays.npz and model/ (if there is one)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        record = {key: value for key, value in asdict(self).items()
                  if key not in ("snapshots", "triplets", "model", "run_dir", "probe")}
        record["probe"] = asdict(self.probe)
        record["snapshot_steps"] = [step for step, _ in self.snapshots]
        record["triplets"] = [{key: value for key, value in asdict(triplet).items()
                               if key != "embeddings"} for triplet in self.triplets]
        record["knobs"] = {key: _jsonable(value) for key, value in self.knobs.items()}
        arrays = {f"snapshot_{index}": embeddings
                  for index, (_, embeddings) in enumerate(self.snapshots)}
        arrays.update({f"triplets_{index}": triplet.embeddings
                       for index, triplet in enumerate(self.triplets)})
        np.savez_compressed(folder / "arrays.npz", **arrays)
        (folder / "result.json").write_text(json.dumps(record, indent=1))
        if save_model and self.model is not None:
            self.model.save(str(folder / "model"))
        self.run_dir = folder
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, load_model: bool = True) -> TrainResult:
        """A result saved by :meth:`save` (with its model, unless ``load_model`` is False)."""
        folder = Path(folder)
        if not (folder / "result.json").is_file():
            raise FileNotFoundError(f"{folder} is not a run folder: it has no result.json")
        record = json.loads((folder / "result.json").read_text())
        arrays = np.load(folder / "arrays.npz")
        snapshots = [(step, arrays[f"snapshot_{index}"])
                     for index, step in enumerate(record.pop("snapshot_steps"))]
        triplets = [TripletRecord(embeddings=arrays[f"triplets_{index}"], **triplet)
                    for index, triplet in enumerate(record.pop("triplets"))]
        probe = record.pop("probe")
        probe = Probe(**{key: tuple(value) for key, value in probe.items()})
        record["curves"] = {name: [tuple(point) for point in points]
                            for name, points in record["curves"].items()}
        record["active_fraction"] = [tuple(point) for point in record["active_fraction"]]
        record["extra_curves"] = {
            name: {label: {int(key): value for key, value in curve.items()}
                   for label, curve in curves.items()}
            for name, curves in record["extra_curves"].items()}
        model = None
        if load_model and (folder / "model").is_dir():
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(folder / "model"), device="cpu")
        return cls(**record, probe=probe, snapshots=snapshots, triplets=triplets, model=model,
                   run_dir=folder)


def _without_step(evaluation: Mapping[str, float]) -> dict[str, float]:
    return {key: value for key, value in evaluation.items() if key != "step"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return getattr(value, "__name__", type(value).__name__)


@dataclass
class Progress:
    """What ``on_update`` receives after every step: where training is and all recorded so far."""

    step: int
    total_steps: int
    loss: float | None
    result: TrainResult
    evaluated: bool  # True when this step also evaluated and took a snapshot


# ------------------------------------------------------------------------------------ the data
def _detect_format(entry: catalog.LossEntry, columns: list[str]) -> str:
    """The first of the loss's formats whose columns the dataset has, or a clear error."""
    for name in entry.formats:
        spec = FORMATS[name]
        wanted = list(spec.text_columns) + ([spec.label_column] if spec.label_column else [])
        if spec.variable_negatives:
            if columns[:len(wanted) - 1] == wanted[:-1 - bool(spec.label_column)] or (
                    set(wanted) <= set(columns)):
                return name
        elif set(wanted) == set(columns):
            return name
    expected = "; or ".join(f"{name}: {expected_columns_text(FORMATS[name])}"
                            for name in entry.formats)
    raise DataFormatError(f"{entry.name} cannot train on a dataset with columns {columns}; "
                          f"it expects {expected}")


def _prepare_data(entry: catalog.LossEntry, dataset: Any, seed: int
                  ) -> tuple[str, datasets.Dataset, datasets.Dataset | None]:
    """(format, train rows, eval rows or None) from whatever the caller gave."""
    if dataset is None or isinstance(dataset, str):
        name = dataset or entry.default_format
        if name not in entry.formats:
            raise DataFormatError(f"{entry.name} cannot train on data format {name!r}; it takes "
                                  f"{', '.join(entry.formats)}")
        splits = load_dataset(name, seed=seed)
        return name, splits["train"], splits["eval"]
    if isinstance(dataset, datasets.DatasetDict):
        if "train" not in dataset:
            raise DataFormatError(f"expected a DatasetDict with a 'train' split; got splits "
                                  f"{list(dataset)}")
        train_rows = dataset["train"]
        eval_rows = next((dataset[split] for split in ("eval", "validation", "dev", "test")
                          if split in dataset), None)
    elif isinstance(dataset, datasets.Dataset):
        train_rows, eval_rows = dataset, None
    else:
        raise TypeError(f"dataset must be None, a format name, a datasets.Dataset or a "
                        f"DatasetDict; got {type(dataset).__name__}")
    return _detect_format(entry, train_rows.column_names), train_rows, eval_rows


def tension_pairs(sentences: list[str], positives_every: int = 4, seed: int = 0
                  ) -> datasets.Dataset:
    """ContrastiveTensionLoss's training pairs from single sentences.

    Every ``positives_every``-th row pairs a sentence with itself (label 1: both models should
    agree on it); the others pair it with a different random sentence (label 0).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for index, text in enumerate(sentences):
        if index % positives_every == 0:
            rows.append({"sentence_a": text, "sentence_b": text, "label": 1.0})
        else:
            other = sentences[(index + 1 + int(rng.integers(len(sentences) - 1)))
                              % len(sentences)]
            rows.append({"sentence_a": text, "sentence_b": other, "label": 0.0})
    return datasets.Dataset.from_list(rows)


# --------------------------------------------------------------------------- recording triplets
class _BatchTexts:
    """Wraps the trainer's data collator to remember each batch's texts, in order.

    Batches are collated ahead of use (the data loader prefetches), so the texts wait in a
    queue; the loss's forward hook takes the oldest, which is the batch it is computing.
    """

    def __init__(self, collator: Any, text_column: str, label_column: str | None) -> None:
        self.collator = collator
        self.text_column = text_column
        self.label_column = label_column
        self.queue: collections.deque = collections.deque()

    def __call__(self, rows: list[dict]) -> dict:
        texts = [row[self.text_column] for row in rows]
        labels = [row[self.label_column] for row in rows] if self.label_column else []
        self.queue.append((texts, labels))
        return self.collator(rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collator, name)


# ----------------------------------------------------------------------------------- the recorder
def _make_recorder(result: TrainResult, model: Any, evaluate_at: set[int], eval_rows: Any,
                   on_update: Callable[[Progress], Any] | None,
                   stop_event: threading.Event | None, extra: Callable[[str], None]) -> Any:
    from transformers import TrainerCallback

    def measure(step: int) -> None:
        was_training = model.training
        metrics, embeddings = evaluate(model, result.probe, result.data_format, eval_rows)
        model.train(was_training)
        result.evaluations.append({"step": step, **metrics})
        result.snapshots.append((step, embeddings))

    class Recorder(TrainerCallback):
        """Records loss, metrics and snapshots; forwards progress; stops on request."""

        def on_train_begin(self, args, state, control, **kwargs):
            measure(0)
            extra("before")

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            step = state.global_step
            if "loss" not in logs:
                return
            for key, value in logs.items():
                if key in _META_LOG_KEYS - {"loss"} or not isinstance(value, (int, float)):
                    continue
                result.curves.setdefault(key, []).append((step, float(value)))
            result.steps_done = step
            evaluated = step in evaluate_at
            if evaluated:
                measure(step)
            stop = on_update is not None and on_update(
                Progress(step, result.steps, float(logs["loss"]), result, evaluated)) is True
            if stop or (stop_event is not None and stop_event.is_set()):
                result.stopped = step < result.steps
                control.should_training_stop = True

    return Recorder()


def _install_triplet_recording(loss: Any, texts: _BatchTexts, result: TrainResult,
                               record_at: set[int], current_step: Callable[[], int]) -> None:
    """A forward hook on a batch triplet loss: active fraction every step, full records at some."""

    def hook(module, args, output):
        batch_texts, batch_labels = texts.queue.popleft() if texts.queue else ([], [])
        mined = module.last_mined
        if mined is None or not torch.is_grad_enabled():  # not an evaluation pass
            return
        step = current_step() + 1  # the step this forward belongs to
        fraction = mined.num_active / mined.num_valid if mined.num_valid else 0.0
        result.active_fraction.append((step, fraction))
        if step in record_at and mined.is_listed and len(result.triplets) < TRIPLET_RECORDS:
            features = args[0][0]
            embeddings = features["sentence_embedding"].detach().float().cpu().numpy()
            mined = mined.cpu()
            result.triplets.append(TripletRecord(
                step=step, texts=list(batch_texts), labels=[int(x) for x in batch_labels],
                embeddings=embeddings, anchor=mined.anchor.tolist(),
                positive=mined.positive.tolist(), negative=mined.negative.tolist(),
                losses=mined.losses.float().tolist(), active=mined.active.tolist(),
                num_valid=mined.num_valid, num_active=mined.num_active))

    loss.register_forward_hook(hook)


# --------------------------------------------------------------------------------------- train
def _pick_device(device: str | None) -> str:
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _evaluation_steps(steps: int, snapshots: int) -> set[int]:
    """``snapshots`` evenly spaced steps in 1..steps, always including the last."""
    count = max(1, min(snapshots, steps))
    return {round(steps * (index + 1) / count) for index in range(count)}


def train(
    loss: str,
    model: str | Any | None = None,
    dataset: Any = None,
    *,
    steps: int = 100,
    batch_size: int = 32,
    learning_rate: float | None = None,
    device: str | None = None,
    seed: int = 0,
    snapshots: int = 4,
    out_dir: str | Path | None = None,
    on_update: Callable[[Progress], Any] | None = None,
    stop_event: threading.Event | None = None,
    progress_bar: bool = True,
    **knobs: Any,
) -> TrainResult:
    """Train ``loss`` (a catalog name) and return everything recorded as a :class:`TrainResult`.

    Args:
        loss: catalog name, e.g. "MultipleNegativesRankingLoss".
        model: a built-in name ("tiny", "tiny-bert", "minilm"), a local folder or Hub id, or a
            SentenceTransformer; None = the catalog's default model for the loss.
        dataset: None (the catalog's default format from the teaching corpus), a format name,
            a ``datasets.Dataset`` (train rows only) or a ``DatasetDict`` with "train" (and
            "eval") in one of the loss's formats.
        steps, batch_size, learning_rate: optimisation (learning rate default per model, see
            ``DEFAULT_LEARNING_RATES``).
        device: "cpu", "cuda", ...; None picks the GPU when there is one.
        seed: seeds model construction, data order, dropout and the split.
        snapshots: how many times (besides step 0) to evaluate and embed the probe set.
        out_dir: if given, the run is saved there at the end (also when stopped early).
        on_update: called with a :class:`Progress` after every step; return True to stop.
        stop_event: set it (from another thread) to stop after the current step.
        progress_bar: show the trainer's progress bar.
        **knobs: the loss's knobs (``python -m lab losses`` and ``lab.catalog`` list them);
            wrappers take ``inner_loss=<name>`` (the loss they wrap: ``loss`` names the wrapper
            itself here), guided losses ``guide=<model>``.
    """
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers import set_seed
    from transformers.utils import logging as transformers_logging

    inner = knobs.pop("inner_loss", None)
    entry = check_knobs(loss, knobs)
    if inner is not None and not entry.wraps:
        raise KnobError(f"{loss} wraps no other loss, so it takes no inner_loss; the wrappers "
                        f"are {', '.join(e.name for e in catalog.LOSSES.values() if e.wraps)}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1; got steps={steps}, "
                         f"batch_size={batch_size}")
    # A wrapper trains on the data, and with the batches, of the loss it wraps.
    data_entry = (catalog.get(inner if isinstance(inner, str) else entry.default_inner_loss)
                  if entry.wraps else entry)
    sampler = data_entry.batch_sampler
    if sampler == "group_by_label" and (batch_size < 4 or batch_size % 2):
        raise ValueError(f"{loss} trains on label-balanced batches of pairs of examples per "
                         f"label: batch_size must be an even number >= 4; got {batch_size}")
    transformers_logging.set_verbosity_error()  # keep load reports out of a student's output
    transformers_logging.disable_progress_bar()  # weight loading is instant: no bar for it
    device = _pick_device(device)
    set_seed(seed)

    from lab.models import load_model

    model_name = model if isinstance(model, str) else (entry.default_model if model is None
                                                      else type(model).__name__)
    if model is None or isinstance(model, str):
        model = load_model(model_name, device=device, seed=seed)
    else:
        model.to(device)
    card = getattr(model, "model_card_data", None)
    if card is not None and not getattr(card, "widget", True):
        # The trainer picks model-card widget examples only when there are none: give it one
        # (a probe sentence) instead of a sampling pass over the data with its own progress bar.
        card.widget = [{"text": default_probe().texts[0]}]
        card.local_files_only = True
    fmt, train_rows, eval_rows = _prepare_data(data_entry, dataset, seed)
    if entry.name == "ContrastiveTensionLoss":
        train_rows = tension_pairs(train_rows[train_rows.column_names[0]], seed=seed)
    spec = FORMATS[fmt]
    num_labels = (len(set(train_rows[spec.label_column])) if spec.label_kind == "int" else None)
    if entry.needs_num_labels:
        num_labels = max(num_labels or 0, 3 if fmt == "nli" else 0) or None
    if inner is not None:
        knobs["loss"] = inner
    built = build_loss(entry.name, model, knobs, num_labels=num_labels)

    rate = learning_rate if learning_rate is not None else DEFAULT_LEARNING_RATES.get(
        model_name, 5e-5)
    result = TrainResult(loss=entry.name, model_name=model_name, data_format=fmt,
                         knobs=dict(knobs), steps=steps, batch_size=batch_size,
                         learning_rate=rate, device=device, seed=seed, probe=default_probe(),
                         batch_sampler=sampler)

    import tempfile

    with tempfile.TemporaryDirectory(prefix="lab-train-") as scratch:
        arguments = SentenceTransformerTrainingArguments(
            output_dir=scratch,  # nothing is checkpointed there: the run folder is ours
            max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=rate,
            warmup_steps=max(1, steps // 10) if steps >= 10 else 0, seed=seed, data_seed=seed,
            use_cpu=device == "cpu", report_to="none", save_strategy="no", logging_steps=1,
            logging_first_step=True, disable_tqdm=not progress_bar, batch_sampler=sampler,
            dataloader_drop_last=sampler == "group_by_label",
        )
        evaluate_at = _evaluation_steps(steps, snapshots)

        def extra_curves(moment: str) -> None:
            _record_extra_curves(result, entry, model, moment, knobs)

        recorder = _make_recorder(result, model, evaluate_at, eval_rows, on_update, stop_event,
                                  extra_curves)
        trainer = SentenceTransformerTrainer(model=model, args=arguments,
                                             train_dataset=train_rows, loss=built,
                                             callbacks=[recorder])
        _quiet_logs(trainer)
        if hasattr(built, "last_mined"):
            label = spec.label_column
            texts = _BatchTexts(trainer.data_collator, spec.text_columns[0], label)
            trainer.data_collator = texts
            _install_triplet_recording(built, texts, result, evaluate_at | {1},
                                       lambda: trainer.state.global_step)
        result.processes = arguments.world_size
        started = time.perf_counter()
        try:
            trainer.train()
        except KeyboardInterrupt:  # Ctrl-C in a notebook or terminal: keep what was recorded
            result.stopped = True
            logging.getLogger(__name__).warning("training interrupted at step %d; keeping the "
                                                "run so far", result.steps_done)
        result.seconds = time.perf_counter() - started
        final = result.steps_done
        if not result.evaluations or result.evaluations[-1]["step"] != final:
            metrics, embeddings = evaluate(model, result.probe, fmt, eval_rows)
            result.evaluations.append({"step": final, **metrics})
            result.snapshots.append((final, embeddings))
        extra_curves("after")
        _check_finite(result)
    result.model = model
    if out_dir is not None and trainer.is_world_process_zero():
        result.save(out_dir)
    return result


def _quiet_logs(trainer: Any) -> None:
    """Keep the progress bar but not the per-step log dicts it prints (the recorder has them)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class QuietProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress())


def _record_extra_curves(result: TrainResult, entry: catalog.LossEntry, model: Any,
                         moment: str, knobs: Mapping[str, Any]) -> None:
    """Quality vs Matryoshka dimension / vs layer, before and after, for the losses about them."""
    from lab import metrics

    probe = result.probe
    if entry.name in ("MatryoshkaLoss", "Matryoshka2dLoss"):
        dims = list(knobs.get("matryoshka_dims", entry.knob("matryoshka_dims").default))
        embeddings = model.encode(list(probe.texts), convert_to_numpy=True,
                                  show_progress_bar=False)
        curve = {dim: metrics.knn_accuracy(embeddings[:, :dim], probe.labels, k=5,
                                           groups=probe.groups) for dim in sorted(dims)}
        result.extra_curves.setdefault("matryoshka", {})[moment] = curve
    if entry.name in ("AdaptiveLayerLoss", "Matryoshka2dLoss") and hasattr(metrics,
                                                                           "layer_curve"):
        curve = metrics.layer_curve(model, probe.texts, probe.labels, k=5, groups=probe.groups)
        result.extra_curves.setdefault("layers", {})[moment] = curve


def _check_finite(result: TrainResult) -> None:
    """Refuse to report a run whose loss became NaN or infinite, saying what to try instead."""
    bad = [(step, value) for step, value in result.curves.get("loss", [])
           if not math.isfinite(value)]
    if bad:
        step, value = bad[0]
        raise FloatingPointError(
            f"{result.loss}: the loss became {value} at step {step} with learning rate "
            f"{result.learning_rate}; try a smaller learning_rate")
