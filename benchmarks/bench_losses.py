"""Speed and memory of our losses against sentence-transformers', as ratios, in one run.

For every catalog loss, both implementations on identical inputs, forward + backward, each
configuration in a fresh process (see ``benchmarks/harness.py`` and ``benchmarks/cases.py``),
plus the matrix-product floor, the training speed of the ``tiny`` model, and the issue's targets
evaluated from the numbers::

    make bench                                       # full: benchmarks/RESULTS.md
    make bench QUICK=1                               # ~8 min: benchmarks/RESULTS-quick.md
    python benchmarks/bench_losses.py --loss BatchAllTripletLoss --batch 1024 --out /tmp/r.md

The raw results are written next to the page as JSON (``results.json``, ``results-quick.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: this checkout's packages

from benchmarks import cases, harness, report  # noqa: E402

HERE = ROOT / "benchmarks"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer batch sizes and repeats (about 8 minutes on 2 cores)")
    parser.add_argument("--loss", action="append", help="only this loss (repeatable)")
    parser.add_argument("--batch", type=int, action="append", help="only this batch size")
    parser.add_argument("--repeats", type=int, help="timed calls per configuration "
                        "(default 5, quick 3)")
    parser.add_argument("--timeout", type=float, help="seconds per configuration "
                        "(default 300, quick 30)")
    parser.add_argument("--memory-cap-gb", type=float,
                        help="extra memory allowed per configuration (default: 60%% of the "
                             "available memory, at most 16 GB)")
    parser.add_argument("--threads", type=int,
                        help="torch threads per configuration (default: torch's default, one "
                             "per core); 1 gives steadier numbers on a shared, busy machine")
    parser.add_argument("--train-speed", choices=("run", "skip"), default="run",
                        help="measure tiny's training speed against the full static model")
    parser.add_argument("--out", help="markdown page to write (default benchmarks/RESULTS.md, "
                        "RESULTS-quick.md in quick mode, RESULTS-partial.md with --loss/--batch)")
    return parser.parse_args(argv)


def selected_losses(requested: list[str] | None) -> list[str]:
    """Catalog losses to run, in catalog order; unknown names raise a one-line error."""
    from lab import catalog

    names = list(catalog.LOSSES)
    if not requested:
        return names
    unknown = [name for name in requested if name not in catalog.LOSSES]
    if unknown:
        raise SystemExit(f"unknown loss {', '.join(unknown)}; expected catalog names such as "
                         f"{', '.join(names[:3])} (python -m lab losses lists them)")
    return [name for name in names if name in requested]


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(markdown page, raw JSON) for this run."""
    if args.out:
        page = Path(args.out)
    elif args.loss or args.batch:
        page = HERE / "RESULTS-partial.md"
    else:
        page = HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    return page, page.with_name(page.stem.lower() + ".json")


def run_tasks(tasks: list[dict], timeout: float, cap_bytes: int, log_path: Path) -> list[dict]:
    """Measure every task with the fork servers; results in task order."""
    servers: dict[str, harness.Server] = {}
    results = []
    with open(log_path, "a") as log:
        try:
            for number, task in enumerate(tasks, 1):
                sides = task.get("sides", [task["impl"]])
                kind = "reference" if "reference" in sides else "ours"
                started = time.perf_counter()
                if "skip" in task:
                    measured = {"error": task["skip"]}
                else:
                    if kind not in servers:
                        servers[kind] = harness.Server(kind, log=log)
                    measured = servers[kind].measure(task, timeout, cap_bytes)
                measured["wall_s"] = round(time.perf_counter() - started, 2)
                results.append({**task, **measured})
                print(f"[{number}/{len(tasks)}] {task['loss']} {task['model']} "
                      f"batch {task['batch']} {task['impl']}: {_shown(measured)}", flush=True)
        finally:
            for server in servers.values():
                server.close()
    return results


def _shown(measured: dict) -> str:
    """One measurement for the progress lines."""
    if "error" in measured:
        return measured["error"]
    if "alternating" in measured:
        return ", ".join(f"{side} {timing['seconds']:.4g} s ({timing['runs']} calls)"
                         for side, timing in measured["alternating"].items())
    return f"{measured['seconds']:.4g} s  {measured['peak_mb']:.0f} MB"


def looks_worse(ours: dict, reference: dict) -> bool:
    """Whether ours looked slower or heavier than the reference in one configuration (the
    report's own test, ``report.slower_and_heavier``)."""
    return any(report.slower_and_heavier(ours, reference))


ALTERNATE_BELOW_S = 2.0  # time suspects faster than this (both sides) are timed alternating
_TASK_FIELDS = ("loss", "batch", "model", "impl", "repeats", "budget_s", "min_time_s", "threads")


def measure_suspects_again(results: list[dict], timeout: float, cap_bytes: int, log_path: Path,
                           rounds: int = 2, alternate_s: float = 3.0) -> int:
    """Measure again the comparisons where ours looked worse; returns how many there were.

    - Ours slower than the reference by more than 10%, or farther than ``report.FLOOR_LIMIT``
      from its floor where that is a target (batch 4096), with both sides under
      ``ALTERNATE_BELOW_S`` per call: both are timed again in *one* process, call after call
      (``harness.alternate_timing``, ``alternate_s`` seconds of calls per side), and the ratio
      of those two medians replaces the fresh-process one (stored under ``"alternating"``).
      Millisecond steps vary by more than 10% from one fresh process to the next; side by side
      they see the same machine.
    - Heavier than the reference, or slower at two seconds or more per call: both sides are
      measured again in fresh processes, ``rounds`` more times, each keeping its fastest median
      and its lowest peak, so one stall or one unlucky allocator layout does not decide a ratio.
    """
    by_key = {(r["loss"], r["batch"], r["model"], r["impl"]): r for r in results}
    alternate, again = [], []  # (loss, batch, model, the other side)
    for (loss, batch, model, impl), ours in by_key.items():
        if impl != "ours" or "error" in ours:
            continue
        for other in ("reference", "floor"):
            theirs = by_key.get((loss, batch, model, other))
            if theirs is None or "error" in theirs:
                continue
            if other == "reference":
                slower, heavier = report.slower_and_heavier(ours, theirs)
            else:
                floor_target = batch == cases.LARGE_BATCH and cases.FLOORS[loss].target
                slower = floor_target and ours["seconds"] > report.FLOOR_LIMIT * theirs["seconds"]
                heavier = False
            fast = max(ours["seconds"], theirs["seconds"]) < ALTERNATE_BELOW_S
            if slower and fast:
                alternate.append((loss, batch, model, other))
            if heavier or (slower and not fast):
                again.append((loss, batch, model, other))
    suspects = set(alternate) | set(again)
    if not suspects:
        return 0
    print(f"Measuring again the {len(suspects)} comparison(s) where ours looked slower or "
          "heavier than the reference, or far from the floor...", flush=True)
    if alternate:
        tasks = [{**{key: by_key[(loss, batch, model, "ours")].get(key)
                     for key in ("budget_s", "threads")},
                  "loss": loss, "batch": batch, "model": model, "impl": "alternate",
                  "sides": ["ours", other], "min_time_s": alternate_s}
                 for loss, batch, model, other in alternate]
        for timed in run_tasks(tasks, timeout, cap_bytes, log_path):
            if "error" in timed:
                continue
            sides = timed["alternating"]
            ours = by_key[(timed["loss"], timed["batch"], timed["model"], "ours")]
            other = timed["sides"][1]
            ours.setdefault("alternating", {})[other] = {
                "ours": sides["ours"]["seconds"], other: sides[other]["seconds"],
                "runs": sides["ours"]["runs"]}
    for _ in range(rounds if again else 0):
        keys = list(dict.fromkeys((loss, batch, model, impl)
                                  for loss, batch, model, other in again
                                  for impl in ("ours", other)))
        tasks = [{key: value for key, value in by_key[task_key].items() if key in _TASK_FIELDS}
                 for task_key in keys]
        for measured in run_tasks(tasks, timeout, cap_bytes, log_path):
            first = by_key[(measured["loss"], measured["batch"], measured["model"],
                            measured["impl"])]
            first["tries"] = first.get("tries", 1) + 1
            if "error" not in measured:
                first["seconds"] = min(first["seconds"], measured["seconds"])
                first["peak_mb"] = min(first["peak_mb"], measured["peak_mb"])
    return len(suspects)


def train_speed(quick: bool, log_path: Path) -> dict | None:
    """tiny against the full static model, in a fresh process; None if it failed."""
    steps, rounds = (50, 2) if quick else (100, 3)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "speed.json"
        command = [sys.executable, str(HERE / "train_speed_static.py"), "--steps", str(steps),
                   "--rounds", str(rounds), "--json", str(target)]
        with open(log_path, "a") as log:
            done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=log,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        if done.returncode != 0 or not target.exists():
            print(f"training-speed benchmark failed (exit {done.returncode}); see {log_path}")
            return None
        return json.loads(target.read_text())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the page and the raw results."""
    args = parse_args(argv)
    names = selected_losses(args.loss)
    repeats = args.repeats or (3 if args.quick else 5)
    timeout = args.timeout or (30.0 if args.quick else 300.0)
    cap_bytes = harness.memory_cap_bytes(args.memory_cap_gb)
    page, raw = output_paths(args)
    log_path = Path(tempfile.gettempdir()) / "embedding-loss-lab-bench.log"
    log_path.write_text("")
    print(f"{'Quick' if args.quick else 'Full'} benchmark of {len(names)} losses; memory cap "
          f"{cap_bytes / harness.GB:.1f} GB per configuration; library messages in {log_path}",
          flush=True)

    tasks = cases.plan(names, args.quick, args.batch)
    budget, min_time = (10.0, 0.3) if args.quick else (60.0, 1.0)
    for task in tasks:
        task.update(repeats=repeats, budget_s=budget, min_time_s=min_time, threads=args.threads)
    if any(task["model"] == "tiny-bert" for task in tasks):
        from lab.models import load_model

        load_model("tiny-bert", device="cpu", dropout=0.0)  # built once, before any child runs

    load_start = os.getloadavg()
    started = time.perf_counter()
    results = run_tasks(tasks, timeout, cap_bytes, log_path)
    measure_suspects_again(results, timeout, cap_bytes, log_path, rounds=1 if args.quick else 2,
                           alternate_s=1.0 if args.quick else 3.0)
    speed = train_speed(args.quick, log_path) if args.train_speed == "run" else None
    info = report.machine()
    info["load_average"] = (load_start[0], os.getloadavg()[0])
    if args.threads:
        info["torch_threads"] = args.threads
    given = list(sys.argv[1:] if argv is None else argv)
    command = "make bench" + (" QUICK=1" if args.quick else "")
    if [argument for argument in given if argument != "--quick"]:
        command = "python benchmarks/bench_losses.py " + " ".join(given)
    floors = {name: floor.description for name, floor in cases.FLOORS.items() if name in names}
    floor_targets = [name for name in floors if cases.FLOORS[name].target]
    page.write_text(report.render(results, info=info, speed=speed, floors=floors,
                                  floor_targets=floor_targets, cached=cases.CACHED_LOSSES,
                                  command=command))
    raw.write_text(json.dumps({"info": info, "results": results, "train_speed": speed},
                              indent=1, default=str) + "\n")
    print(f"Wrote {page} and {raw} in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
