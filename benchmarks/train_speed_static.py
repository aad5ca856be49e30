"""Training speed of the lab's ``tiny`` model against the plain full-vocabulary static model.

Both are static-embedding models initialised from MiniLM's input token vectors; ``tiny`` keeps
only part of the vocabulary (``lab.models.tiny_vocabulary``). Both train with the same loss
(MultipleNegativesRankingLoss), data (the teaching corpus's pairs), batch (32), learning rate,
seed and number of steps, through ``lab.train`` (SentenceTransformerTrainer), in one process,
alternating the two models so a change in the machine's load hits both::

    python benchmarks/train_speed_static.py                   # 100 steps, 3 rounds
    python benchmarks/train_speed_static.py --steps 40 --rounds 1

Steps per second count the training steps only: the intervals between consecutive steps,
leaving out the steps at which the recorder evaluated the probe set. Quality is the lab's
metrics after training (the same probe set for both) and the demo's topic 5-NN accuracy of
the untrained model; ``tiny`` must be no worse.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: import this checkout's lab

LOSS = "MultipleNegativesRankingLoss"


def steps_per_second(step_times: list[float], evaluated: list[bool]) -> float:
    """Training steps per second from the times at which each step ended.

    ``step_times[i]`` is when step i + 1 finished, ``evaluated[i]`` whether an evaluation ran
    at it; an interval is left out when the step that ends it evaluated (its time is not
    training). Raises ValueError with fewer than two usable steps.
    """
    if len(step_times) != len(evaluated):
        raise ValueError(f"need one evaluated flag per step time; got {len(step_times)} times "
                         f"and {len(evaluated)} flags")
    intervals = [later - earlier for earlier, later, flag in
                 zip(step_times, step_times[1:], evaluated[1:], strict=False) if not flag]
    if not intervals or sum(intervals) <= 0:
        raise ValueError(f"need at least two consecutive steps without evaluation to time; got "
                         f"{len(step_times)} steps")
    return len(intervals) / sum(intervals)


def train_once(model: Any, steps: int, batch_size: int, learning_rate: float) -> dict:
    """Train ``model`` with the lab's MNRL setup; steps/s and the metrics after training."""
    import lab

    times: list[float] = []
    evaluated: list[bool] = []

    def on_update(progress: Any) -> None:
        times.append(time.perf_counter())
        evaluated.append(bool(progress.evaluated))

    result = lab.train(LOSS, model=model, steps=steps, batch_size=batch_size,
                       learning_rate=learning_rate, snapshots=1, progress_bar=False,
                       on_update=on_update, device="cpu")
    return {"steps_per_s": steps_per_second(times, evaluated),
            "metrics_before": result.metrics_before, "metrics_after": result.metrics_after}


def topic_knn_accuracy(model: Any) -> float:
    """The demo's topic 5-NN accuracy of a model on the teaching corpus's paraphrases."""
    import numpy as np

    from lab.data import load_corpus, topics
    from lab.metrics import knn_accuracy

    names = topics()
    groups = load_corpus()
    sentences = [text for group in groups for text in group.paraphrases]
    labels = np.array([names.index(group.topic) for group in groups for _ in group.paraphrases])
    group_ids = np.array([index for index, group in enumerate(groups) for _ in group.paraphrases])
    embeddings = model.encode(sentences, batch_size=64, convert_to_numpy=True)
    return float(knn_accuracy(embeddings, labels, k=5, groups=group_ids))


def parameter_count(model: Any) -> int:
    """Number of parameters of a model."""
    return sum(parameter.numel() for parameter in model.parameters())


def measure(steps: int = 100, rounds: int = 3, batch_size: int = 32) -> dict:
    """Both models, ``rounds`` times each, alternating; medians of steps/s and the metrics."""
    from lab.models import full_vocabulary_static_model, load_model
    from lab.training import DEFAULT_LEARNING_RATES

    builders = {"full": lambda: full_vocabulary_static_model(device="cpu"),
                "tiny": lambda: load_model("tiny", device="cpu")}
    rate = DEFAULT_LEARNING_RATES["tiny"]
    train_once(builders["tiny"](), 3, batch_size, rate)  # warm-up: imports, data, caches
    runs: dict[str, list[dict]] = {name: [] for name in builders}
    load_before = os.getloadavg()
    for _ in range(rounds):
        for name, build in builders.items():
            runs[name].append(train_once(build(), steps, batch_size, rate))
    load_after = os.getloadavg()
    summary: dict[str, Any] = {"steps": steps, "rounds": rounds, "batch_size": batch_size,
                               "learning_rate": rate, "loss": LOSS,
                               "load_average": [load_before[0], load_after[0]]}
    for name, build in builders.items():
        model = build()
        summary[name] = {
            "parameters": parameter_count(model),
            "vocabulary": model[0].num_embeddings,
            "steps_per_s": statistics.median(run["steps_per_s"] for run in runs[name]),
            "all_steps_per_s": [run["steps_per_s"] for run in runs[name]],
            "metrics_after": runs[name][0]["metrics_after"],
            "metrics_before": runs[name][0]["metrics_before"],
            "topic_knn_accuracy": topic_knn_accuracy(model),
        }
    summary["speedup"] = summary["tiny"]["steps_per_s"] / summary["full"]["steps_per_s"]
    return summary


def main(argv: list[str] | None = None) -> int:
    """Measure and print (or write as JSON) the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", help="write the result to this JSON file")
    args = parser.parse_args(argv)
    summary = measure(args.steps, args.rounds, args.batch_size)
    for name in ("full", "tiny"):
        entry = summary[name]
        print(f"{name:4s}: {entry['vocabulary']:6d} tokens, {entry['parameters'] / 1e6:5.2f} M "
              f"params, {entry['steps_per_s']:6.1f} steps/s {entry['all_steps_per_s']}, topic "
              f"5-NN {entry['topic_knn_accuracy']:.1%}", flush=True)
    print(f"speed-up tiny / full: {summary['speedup']:.2f}x (load average "
          f"{summary['load_average'][0]:.1f} -> {summary['load_average'][1]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
