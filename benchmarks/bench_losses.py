"""Speed and memory of our losses against sentence-transformers', as ratios, in one run.

Each measurement is the loss alone (``compute_loss_from_embeddings`` on fixed random embeddings,
forward + backward), in a fresh Python process so peak memory is that configuration's own:

    python benchmarks/bench_losses.py            # full table -> benchmarks/RESULTS.md
    python benchmarks/bench_losses.py --quick    # small batches, a few minutes
    python benchmarks/bench_losses.py --loss BatchAllTripletLoss --batch 1024

Time is the median of repeated runs after a warm-up; memory is the peak resident set size
during those runs minus the resident size just before them. A configuration that fails (out of
memory, or slower than the time limit) is reported as such, not hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: import this checkout's losses
DIM = 384


@dataclass(frozen=True)
class Case:
    """How to feed one loss: text columns, label kind, constructor options, batch sizes."""

    columns: int
    labels: str | None  # "classes", "scores", "binary", "nli", "teacher", "margins", None
    batches: tuple[int, ...]
    quick_batches: tuple[int, ...] = (64, 256)
    options: tuple[tuple[str, object], ...] = ()


CASES: dict[str, Case] = {
    "TripletLoss": Case(3, None, (256, 1024, 4096)),
    "BatchAllTripletLoss": Case(1, "classes", (256, 512, 1024, 2048, 4096)),
    "BatchHardTripletLoss": Case(1, "classes", (256, 1024, 2048, 4096)),
    "BatchSemiHardTripletLoss": Case(1, "classes", (256, 1024, 2048, 4096)),
    "BatchHardSoftMarginTripletLoss": Case(1, "classes", (256, 1024, 2048, 4096)),
    "ContrastiveLoss": Case(2, "binary", (256, 1024, 4096)),
    "OnlineContrastiveLoss": Case(2, "binary", (256, 1024, 4096)),
    "CosineSimilarityLoss": Case(2, "scores", (256, 1024, 4096)),
    "CoSENTLoss": Case(2, "scores", (256, 1024, 4096)),
    "AnglELoss": Case(2, "scores", (256, 1024, 4096)),
    "MultipleNegativesRankingLoss": Case(2, None, (256, 1024, 4096)),
    "MultipleNegativesSymmetricRankingLoss": Case(2, None, (256, 1024, 4096)),
    "MegaBatchMarginLoss": Case(2, None, (256, 1024)),
    "GlobalOrthogonalRegularizationLoss": Case(2, None, (256, 1024, 4096)),
    "MSELoss": Case(1, "teacher", (256, 1024, 4096)),
    "MarginMSELoss": Case(3, "margins", (256, 1024, 4096)),
    "DistillKLDivLoss": Case(3, "teacher_scores", (256, 1024, 4096)),
    "EmbedDistillLoss": Case(1, "teacher", (256, 1024, 4096)),
}
"""Every benchmarked loss; a loss is measured only once ours exists (``losses.__all__``)."""


def make_inputs(case: Case, batch: int, seed: int = 0):
    """Random embeddings (one leaf tensor per column) and labels for one batch."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    columns = [torch.randn(batch, DIM, generator=generator) for _ in range(case.columns)]
    classes = max(2, batch // 64)  # 64 examples per class, as a balanced batch sampler gives
    labels = {
        None: None,
        "classes": torch.arange(batch) % classes,
        "scores": torch.randint(0, 5, (batch,), generator=generator) / 4,
        "binary": torch.randint(0, 2, (batch,), generator=generator),
        "teacher": torch.randn(batch, DIM, generator=generator),
        "margins": torch.randn(batch, generator=generator),
        "teacher_scores": torch.randn(batch, case.columns - 1, generator=generator),
    }[case.labels]
    return columns, labels


def measure(loss_name: str, implementation: str, batch: int, repeats: int) -> dict:
    """Time and peak memory of forward + backward of one loss (run inside a fresh process)."""
    import torch

    torch.manual_seed(0)
    if implementation == "ours":
        import losses as library
    else:
        from sentence_transformers.sentence_transformer import losses as library
    case = CASES[loss_name]
    loss = getattr(library, loss_name)(None, **dict(case.options))
    columns, labels = make_inputs(case, batch)

    def step() -> None:
        leaves = [column.clone().requires_grad_(True) for column in columns]
        value = loss.compute_loss_from_embeddings(leaves, labels)
        total = sum(value.values()) if isinstance(value, dict) else value
        total.backward()

    step()  # warm-up: first-call allocations and lazy initialisation
    baseline_kb = _current_rss_kb()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": statistics.median(times), "peak_mb": max(0, peak_kb - baseline_kb) / 1024}


def _current_rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def run_child(loss_name: str, implementation: str, batch: int, repeats: int,
              timeout: float) -> dict:
    """Measure in a fresh process; report failures (out of memory, timeout) as data."""
    command = [sys.executable, __file__, "--child", "--loss", loss_name, "--impl", implementation,
               "--batch", str(batch), "--repeats", str(repeats)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["killed"])[-1]
        return {"error": "out of memory" if "memory" in last.lower() or done.returncode == -9
                else last[:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(result: dict, key: str, fmt: str) -> str:
    return result["error"] if "error" in result else format(result[key], fmt)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one child measurement) and write the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches only")
    parser.add_argument("--loss", action="append", help="only this loss (repeatable)")
    parser.add_argument("--batch", type=int, action="append", help="only this batch size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=("ours", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure(args.loss[0], args.impl, args.batch[0], args.repeats)))
        return 0

    import losses

    names = [name for name in (args.loss or CASES) if name in losses.__all__]
    rows = []
    for name in names:
        case = CASES[name]
        for batch in args.batch or (case.quick_batches if args.quick else case.batches):
            ours = run_child(name, "ours", batch, args.repeats, args.timeout)
            theirs = run_child(name, "reference", batch, args.repeats, args.timeout)
            ratio_time = ratio_memory = "-"
            if "error" not in ours and "error" not in theirs:
                ratio_time = f"{ours['seconds'] / theirs['seconds']:.2f}"
                ratio_memory = f"{(ours['peak_mb'] + 1) / (theirs['peak_mb'] + 1):.2f}"
            rows.append(f"| {name} | {batch} | {_cell(ours, 'seconds', '.4f')} | "
                        f"{_cell(theirs, 'seconds', '.4f')} | {ratio_time} | "
                        f"{_cell(ours, 'peak_mb', '.0f')} | {_cell(theirs, 'peak_mb', '.0f')} | "
                        f"{ratio_memory} |")
            print(rows[-1], flush=True)

    import sentence_transformers
    import torch

    header = [
        "# Loss benchmarks: ours vs sentence-transformers",
        "",
        f"Generated by `python benchmarks/bench_losses.py{' --quick' if args.quick else ''}` on "
        f"{time.strftime('%Y-%m-%d')}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}, sentence-transformers {sentence_transformers.__version__}.",
        "",
        f"Loss only (fixed random {DIM}-dim embeddings, forward + backward), median of "
        f"{args.repeats} runs after a warm-up; memory = peak extra resident memory of a fresh "
        "process. Ratios are ours / reference (memory ratio of MB + 1, so tiny figures do not "
        "explode): below 1 is better.",
        "",
        "| loss | batch | ours s | reference s | time ratio | ours MB | reference MB | "
        "memory ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    Path(args.out).write_text("\n".join(header + rows) + "\n")
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
