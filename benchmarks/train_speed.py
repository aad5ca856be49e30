"""Seconds per 100 training steps of every catalog loss through ``lab.train``, as a table.

Each loss trains on its catalog default model and dataset with the lab's defaults (batch 32),
in this process, one after the other; the first run pays for imports and is repeated last::

    python benchmarks/train_speed.py                  # all losses -> benchmarks/TRAIN-SPEED.md
    python benchmarks/train_speed.py --steps 20       # quicker, scaled to 100 steps
    python benchmarks/train_speed.py --loss CoSENTLoss --loss TripletLoss

"training" is the trainer's wall time for the steps alone (the recorder's evaluations at the
start and the end excluded); "whole run" adds model loading, data, the two evaluations and the
probe snapshots, which is what a student waits for.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(name: str, steps: int, batch_size: int) -> tuple[str, str, float, float]:
    """(model, data format, training seconds per 100 steps, whole-run seconds per 100 steps)."""
    import lab

    timings: list[float] = []

    def on_update(progress) -> None:
        timings.append(time.perf_counter())

    started = time.perf_counter()
    result = lab.train(name, steps=steps, batch_size=batch_size, snapshots=1,
                       progress_bar=False, on_update=on_update)
    whole = time.perf_counter() - started
    # Steps 1..N: from the first update to the last covers N - 1 steps (no evaluation between).
    per_step = (timings[-2] - timings[0]) / max(1, len(timings) - 2) if len(timings) > 2 else 0.0
    return result.model_name, result.data_format, per_step * 100, whole * 100 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loss", action="append", help="only these losses (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "TRAIN-SPEED.md"))
    args = parser.parse_args()
    from lab import catalog

    names = args.loss or list(catalog.LOSSES)
    measure(names[0], 2, args.batch_size)  # warm-up: imports, model caches
    rows = []
    for name in names:
        model, fmt, training, whole = measure(name, args.steps, args.batch_size)
        rows.append((name, model, fmt, training, whole))
        print(f"{name:46s} {model:9s} {fmt:18s} {training:7.1f} s {whole:7.1f} s", flush=True)
    lines = [
        "# Training speed: seconds per 100 steps through lab.train",
        "",
        f"Batch {args.batch_size}, {args.steps} steps measured per loss, CPU "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d')}. Produced by `python benchmarks/train_speed.py`.",
        "",
        "| loss | model | data | training s / 100 steps | whole run s / 100 steps |",
        "|---|---|---|---:|---:|",
        *[f"| {name} | {model} | {fmt} | {training:.1f} | {whole:.1f} |"
          for name, model, fmt, training, whole in rows],
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
