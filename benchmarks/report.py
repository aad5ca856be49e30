"""Turn benchmark results into ``RESULTS.md``: tables, ratios, floors and the issue's targets.

A result is a dict ``{"loss", "batch", "impl" ("ours" | "reference" | "floor"), "model",
"seconds", "peak_mb", "runs", "value"}`` or, for a configuration that failed, ``{..., "error":
"out of memory (> 8 GB)"}``. Everything here is pure formatting and arithmetic on such dicts,
so it is tested without running anything.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

TIME_TOLERANCE = 1.10  # "no loss slower than the reference by more than 10%"
FLOOR_LIMIT = 1.5  # "matrix-product losses within 1.5x of their floor"
MEMORY_NOISE_MB = 5.0  # resident-size readings move by a few MB (code pages, allocator)
MEMORY_NOISE_FRACTION = 0.05
QUADRATIC_EXPONENT = 2.2  # memory ~ batch^e; above this (with room for noise) it is not quadratic
MIN_MB_FOR_GROWTH = 32.0  # below this, memory growth is noise, not an exponent


# ----------------------------------------------------------------------------------- lookups
def index_results(results: list[dict]) -> dict[tuple[str, str, int, str], dict]:
    """Results by (model, loss, batch, impl); a later result replaces an earlier one."""
    return {(result.get("model", "table"), result["loss"], result["batch"], result["impl"]):
            result for result in results}


def ok(result: dict | None) -> bool:
    """True when a result exists and did not fail."""
    return result is not None and "error" not in result


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, inf when the denominator is 0."""
    return numerator / denominator if denominator > 0 else math.inf


def memory_ratio(ours_mb: float, reference_mb: float) -> float:
    """(ours + 1) / (reference + 1): a memory ratio that tiny figures do not blow up."""
    return (ours_mb + 1) / (reference_mb + 1)


def values_agree(first: float | None, second: float | None, tolerance: float = 1e-4) -> bool:
    """Loss values equal to a relative tolerance (float32 sums in another order differ)."""
    if first is None or second is None:
        return False
    return abs(first - second) <= tolerance * max(1.0, abs(first), abs(second))


def growth_exponent(small: tuple[int, float], large: tuple[int, float]) -> float | None:
    """e in memory ~ batch^e between two (batch, MB) points; None when too small to tell."""
    (batch_a, mb_a), (batch_b, mb_b) = small, large
    if batch_b <= batch_a or mb_b < MIN_MB_FOR_GROWTH:
        return None
    return math.log(max(mb_b, 1.0) / max(mb_a, 1.0)) / math.log(batch_b / batch_a)


# ----------------------------------------------------------------------------------- cells
def seconds_cell(result: dict | None) -> str:
    """Seconds with 4 significant digits, or the failure, or a dash."""
    if result is None:
        return "–"
    if "error" in result:
        return result["error"]
    return f"{result['seconds']:.4g}"


def mb_cell(result: dict | None) -> str:
    """Peak extra MB, rounded (one decimal below 10 MB), or a dash."""
    if not ok(result):
        return "–"
    value = result["peak_mb"]
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def ratio_cell(value: float | None) -> str:
    """A ratio with 2 decimals (3 significant digits below 0.1), or a dash."""
    if value is None:
        return "–"
    if math.isinf(value):
        return "∞"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def timed_pair(ours: dict, theirs: dict, other: str) -> tuple[float, float, bool]:
    """(ours, theirs) seconds for a time ratio, and whether they were timed alternating.

    ``other`` names the other side ("reference" or "floor"). When the two were timed again in
    one process, call after call (``ours["alternating"][other]``, see
    ``bench_losses.measure_suspects_again``), those medians decide; else each side's own
    fresh-process median.
    """
    paired = ours.get("alternating", {}).get(other)
    if paired:
        return paired["ours"], paired[other], True
    return ours["seconds"], theirs["seconds"], False


@dataclass(frozen=True)
class Row:
    """One line of a loss table, with the numbers the targets read."""

    loss: str
    batch: int
    ours: dict | None
    reference: dict | None
    floor: dict | None

    def timed(self, other: str) -> tuple[float, float, bool] | None:
        """``timed_pair`` against "reference" or "floor", when both ran."""
        theirs = self.reference if other == "reference" else self.floor
        if ok(self.ours) and ok(theirs):
            return timed_pair(self.ours, theirs, other)
        return None

    @property
    def time_ratio(self) -> float | None:
        """ours / reference seconds, when both ran."""
        pair = self.timed("reference")
        return ratio(pair[0], pair[1]) if pair else None

    @property
    def memory_ratio(self) -> float | None:
        """(ours + 1) / (reference + 1) MB, when both ran."""
        if ok(self.ours) and ok(self.reference):
            return memory_ratio(self.ours["peak_mb"], self.reference["peak_mb"])
        return None

    @property
    def floor_ratio(self) -> float | None:
        """ours / floor seconds, for the matrix-product losses."""
        pair = self.timed("floor")
        return ratio(pair[0], pair[1]) if pair else None

    @property
    def agree(self) -> bool | None:
        """Whether ours and the reference computed the same loss value (None: not both ran)."""
        if ok(self.ours) and ok(self.reference):
            return values_agree(self.ours.get("value"), self.reference.get("value"))
        return None


ALTERNATING_MARK = " ⇄"  # after a ratio timed alternating in one process


def rows_for(results: list[dict], model: str) -> list[Row]:
    """The table rows of one model kind, in the order the results came."""
    indexed = index_results(results)
    seen: list[tuple[str, int]] = []
    for result in results:
        key = (result["loss"], result["batch"])
        if result.get("model", "table") == model and key not in seen:
            seen.append(key)
    return [Row(loss, batch, indexed.get((model, loss, batch, "ours")),
                indexed.get((model, loss, batch, "reference")),
                indexed.get((model, loss, batch, "floor"))) for loss, batch in seen]


def loss_table(rows: list[Row], with_floor: bool) -> list[str]:
    """Markdown lines of one table."""
    header = ["loss", "batch", "ours s", "reference s", "time ours/ref", "ours MB",
              "reference MB", "memory ours/ref", "same value"]
    if with_floor:
        header += ["floor s", "ours/floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        agree = {None: "–", True: "yes", False: "**no**"}[row.agree]
        cells = [row.loss, str(row.batch), seconds_cell(row.ours), seconds_cell(row.reference),
                 _marked(row.time_ratio, row.timed("reference")), mb_cell(row.ours),
                 mb_cell(row.reference), ratio_cell(row.memory_ratio), agree]
        if with_floor:
            cells += [seconds_cell(row.floor), _marked(row.floor_ratio, row.timed("floor"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _marked(value: float | None, pair: tuple[float, float, bool] | None) -> str:
    """A ratio cell, marked when its two times come from the alternating measurement."""
    return ratio_cell(value) + (ALTERNATING_MARK if pair and pair[2] else "")


# ----------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """One target of the issue: met, not met, or not measured in this run, with the numbers."""

    name: str
    status: str  # "met", "not met", "not measured"
    detail: str


def _status(checks: list[bool]) -> str:
    if not checks:
        return "not measured"
    return "met" if all(checks) else "not met"


def _mb(result: dict) -> str:
    return f"{result['peak_mb']:.0f} MB"


def _s(result: dict) -> str:
    return f"{result['seconds']:.3g} s"


def _pair_text(pair: tuple[float, float, bool]) -> str:
    """"0.012 s vs 0.011 s", and how they were timed when alternating."""
    ours, theirs, alternating = pair
    return (f"{ours:.3g} s vs {theirs:.3g} s" + (", timed alternating" if alternating else ""))


def slower_and_heavier(ours: dict, reference: dict) -> tuple[bool, bool]:
    """Whether ours took more than ``TIME_TOLERANCE`` times the reference's time, and whether it
    used more peak memory than the reference's plus the noise allowance (both measured)."""
    slower = ratio(*timed_pair(ours, reference, "reference")[:2]) > TIME_TOLERANCE
    allowed = reference["peak_mb"] * (1 + MEMORY_NOISE_FRACTION) + MEMORY_NOISE_MB
    return slower, ours["peak_mb"] > allowed


def target_no_regression(rows: list[Row]) -> Target:
    """No loss slower than the reference by more than 10%, nor using more peak memory."""
    checks, problems = [], []
    for row in rows:
        if not ok(row.reference):
            if row.reference is not None:  # the reference failed: ours must not have
                checks.append(ok(row.ours))
                if not ok(row.ours):
                    problems.append(f"{row.loss} @ {row.batch}: ours failed too")
            continue
        if not ok(row.ours):
            checks.append(False)
            problems.append(f"{row.loss} @ {row.batch}: ours failed "
                            f"({(row.ours or {}).get('error', 'not run')})")
            continue
        slower, heavier = slower_and_heavier(row.ours, row.reference)
        checks.append(not slower and not heavier)
        if slower:
            problems.append(f"{row.loss} @ {row.batch}: {row.time_ratio:.2f}x the time "
                            f"({_pair_text(row.timed('reference'))})")
        if heavier:
            problems.append(f"{row.loss} @ {row.batch}: {_mb(row.ours)} vs "
                            f"{_mb(row.reference)}")
    worst = max((row.time_ratio for row in rows if row.time_ratio is not None), default=None)
    detail = (f"{len(checks)} configurations compared; worst time ratio "
              f"{ratio_cell(worst)}. " + ("Exceptions: " + "; ".join(problems) + "."
                                          if problems else "No exception."))
    return Target("No loss slower than the reference by more than 10%, nor using more peak "
                  f"memory (noise allowance {MEMORY_NOISE_FRACTION:.0%} + "
                  f"{MEMORY_NOISE_MB:.0f} MB), at any measured batch size",
                  _status(checks), detail)


def _ours_points(rows: list[Row], loss: str) -> list[tuple[int, float]]:
    return sorted((row.batch, row.ours["peak_mb"]) for row in rows
                  if row.loss == loss and ok(row.ours))


def _worst_exponent(points: list[tuple[int, float]]) -> float | None:
    exponents = [growth_exponent(small, large) for small, large in itertools.pairwise(points)]
    exponents = [value for value in exponents if value is not None]
    return max(exponents) if exponents else None


def target_quadratic_memory(rows: list[Row]) -> Target:
    """Every loss (ours) with memory growing at most as batch² between measured batches."""
    checks, above, cubic_reference = [], [], []
    for loss in dict.fromkeys(row.loss for row in rows):
        exponent = _worst_exponent(_ours_points(rows, loss))
        if exponent is not None:
            checks.append(exponent <= QUADRATIC_EXPONENT)
            if exponent > QUADRATIC_EXPONENT:
                above.append(f"{loss} (batch^{exponent:.1f})")
        reference_points = sorted((row.batch, row.reference["peak_mb"]) for row in rows
                                  if row.loss == loss and ok(row.reference))
        reference_exponent = _worst_exponent(reference_points)
        if reference_exponent is not None and reference_exponent > QUADRATIC_EXPONENT:
            cubic_reference.append(f"{loss} (batch^{reference_exponent:.1f})")
    detail = (f"{len(checks)} losses with enough memory growth to tell. Ours above "
              f"batch^{QUADRATIC_EXPONENT}: {', '.join(above) or 'none'}. The reference's "
              f"(where both batches ran): {', '.join(cubic_reference) or 'none'}.")
    return Target("Every loss's peak memory grows at most as batch² (exponent fitted between "
                  "consecutive measured batches)", _status(checks), detail)


def _find(rows: list[Row], loss: str, batch: int) -> Row | None:
    return next((row for row in rows if row.loss == loss and row.batch == batch), None)


def target_batch_all(rows: list[Row]) -> Target:
    """BatchAllTripletLoss: 4096 under 2 s and 1 GB; 1024 10x faster and leaner; same values."""
    checks, parts = [], []
    large = _find(rows, "BatchAllTripletLoss", 4096)
    if large is not None:
        fine = ok(large.ours) and large.ours["seconds"] < 2 and large.ours["peak_mb"] < 1024
        checks.append(fine)
        parts.append(f"batch 4096: {_s(large.ours)}, {_mb(large.ours)}" if ok(large.ours)
                     else f"batch 4096: {seconds_cell(large.ours)}")
    middle = _find(rows, "BatchAllTripletLoss", 1024)
    if middle is not None and ok(middle.ours) and ok(middle.reference):
        speed = ratio(middle.reference["seconds"], middle.ours["seconds"])
        lean = ratio(middle.reference["peak_mb"], max(middle.ours["peak_mb"], 1.0))
        checks += [speed >= 10, lean >= 10, bool(middle.agree)]
        parts.append(f"batch 1024: {speed:.1f}x faster ({_s(middle.ours)} vs "
                     f"{_s(middle.reference)}), {lean:.1f}x leaner ({_mb(middle.ours)} vs "
                     f"{_mb(middle.reference)}), same value: {'yes' if middle.agree else 'no'}")
    elif middle is not None:
        checks.append(False)
        parts.append("batch 1024: " + seconds_cell(middle.ours) + " / "
                     + seconds_cell(middle.reference))
    exponent = _worst_exponent(_ours_points(rows, "BatchAllTripletLoss"))
    if exponent is not None:
        checks.append(exponent <= QUADRATIC_EXPONENT)
        parts.append(f"memory ~ batch^{exponent:.1f}")
    return Target("BatchAllTripletLoss: batch 4096 in under 2 s and 1 GB; at 1024 at least 10x "
                  "faster and 10x leaner than the reference, same value; memory at most "
                  "quadratic", _status(checks), "; ".join(parts) + "." if parts else "")


def target_gist(rows: list[Row]) -> Target:
    """GIST and CachedGIST complete batch 4096, memory at most quadratic."""
    checks, parts = [], []
    for loss in ("GISTEmbedLoss", "CachedGISTEmbedLoss"):
        large = _find(rows, loss, 4096)
        if large is None:
            continue
        checks.append(ok(large.ours))
        parts.append(f"{loss} 4096: ours {seconds_cell(large.ours)} s, {mb_cell(large.ours)} "
                     f"MB; reference {seconds_cell(large.reference)}")
        exponent = _worst_exponent(_ours_points(rows, loss))
        if exponent is not None:
            checks.append(exponent <= QUADRATIC_EXPONENT)
            parts.append(f"{loss} memory ~ batch^{exponent:.1f}")
    return Target("GISTEmbedLoss and CachedGISTEmbedLoss complete batch 4096, memory at most "
                  "quadratic", _status(checks), "; ".join(parts) + "." if parts else "")


def target_cached(rows: list[Row], losses: tuple[str, ...], small: int = 256,
                  large: int = 4096) -> Target:
    """Cached losses (with a real encoder): peak memory at 4096 within 2x of 256.

    A quick run measures a smaller large batch: its growth is shown, the status is then
    "not measured" (the target is about 4096)."""
    checks, parts = [], []
    for loss in losses:
        low = _find(rows, loss, small)
        larger = [row for row in rows if row.loss == loss and row.batch > small]
        high = _find(rows, loss, large) or max(larger, key=lambda row: row.batch, default=None)
        if low is None or high is None:
            continue
        if not (ok(low.ours) and ok(high.ours)):
            checks.append(False)
            parts.append(f"{loss}: {seconds_cell(low.ours)} / {seconds_cell(high.ours)}")
            continue
        growth = ratio(high.ours["peak_mb"], max(low.ours["peak_mb"], 1.0))
        if high.batch == large:
            checks.append(growth <= 2)
        reference = (f"; reference {mb_cell(low.reference)} -> {mb_cell(high.reference)} MB"
                     if ok(low.reference) and ok(high.reference) else "")
        at = "" if high.batch == large else f" at batch {high.batch}, not {large}"
        parts.append(f"{loss}: {_mb(low.ours)} -> {_mb(high.ours)} ({growth:.2f}x{at})"
                     f"{reference}")
    return Target(f"Cached losses: peak memory at batch {large} within 2x of batch {small} "
                  "(with tiny-bert, a real encoder)", _status(checks),
                  "; ".join(parts) + "." if parts else "")


def target_floor(rows: list[Row], losses: list[str], batch: int = 4096,
                 limit: float = FLOOR_LIMIT) -> Target:
    """Matrix-product losses within 1.5x of their floor at batch 4096."""
    checks, parts = [], []
    for loss in losses:
        row = _find(rows, loss, batch)
        if row is None or row.floor_ratio is None:
            continue
        checks.append(row.floor_ratio <= limit)
        parts.append(f"{loss} {row.floor_ratio:.2f}x ({_pair_text(row.timed('floor'))})")
    return Target(f"Matrix-product losses within {limit}x of their floor at batch {batch}",
                  _status(checks), "; ".join(parts) + "." if parts else "")


def target_tiny(speed: dict | None) -> Target:
    """The tiny model trains at least 2x more steps/s than the full static model, no worse."""
    if not speed:
        return Target("tiny trains at least 2x more steps/s than the full-vocabulary static "
                      "model, with no loss of quality", "not measured", "")
    full, tiny = speed["full"], speed["tiny"]
    worse = [name for name, value in full["metrics_after"].items()
             if name in tiny["metrics_after"] and _worse(name, tiny["metrics_after"][name], value)]
    knn_ok = tiny["topic_knn_accuracy"] >= full["topic_knn_accuracy"] - 1e-9
    checks = [speed["speedup"] >= 2, not worse, knn_ok]
    detail = (f"{tiny['steps_per_s']:.1f} vs {full['steps_per_s']:.1f} steps/s = "
              f"{speed['speedup']:.2f}x ({tiny['parameters'] / 1e6:.2f} M vs "
              f"{full['parameters'] / 1e6:.2f} M parameters); topic 5-NN "
              f"{tiny['topic_knn_accuracy']:.1%} vs {full['topic_knn_accuracy']:.1%}; metrics "
              f"after {speed['steps']} steps worse for tiny: {', '.join(worse) or 'none'}")
    return Target("tiny trains at least 2x more steps/s than the full-vocabulary static model "
                  "(MNRL, batch 32, SentenceTransformerTrainer), with no loss of quality",
                  _status(checks), detail + ".")


def _worse(name: str, tiny: float, full: float) -> bool:
    """Whether tiny's metric is worse than full's (lower is better only for alignment and
    uniformity); equal within 1e-6 is not worse."""
    lower_is_better = name.endswith(("alignment", "uniformity"))
    difference = (tiny - full) if lower_is_better else (full - tiny)
    return difference > 1e-6


def evaluate_targets(results: list[dict], speed: dict | None, floor_targets: list[str],
                     cached: tuple[str, ...]) -> list[Target]:
    """Every target of the issue from this run's results."""
    table = rows_for(results, "table")
    bert = rows_for(results, "tiny-bert")
    return [
        target_no_regression(table + bert),
        target_quadratic_memory(table),
        target_batch_all(table),
        target_gist(table),
        target_cached(bert, cached),
        target_floor(table, floor_targets),
        target_tiny(speed),
    ]


# ----------------------------------------------------------------------------------- the page
def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and the library versions of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram_gb = None
    try:
        with open("/proc/meminfo") as meminfo:
            ram_gb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
            ram_gb /= 1024**2
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version()}
    for package in ("torch", "sentence_transformers", "transformers"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            versions[package] = "absent"
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": ram_gb,
            "torch_threads": _torch_threads(), "system": platform.platform(),
            "versions": versions, "date": time.strftime("%Y-%m-%d %H:%M")}


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def render(results: list[dict], *, info: dict[str, Any], speed: dict | None,
           floors: dict[str, str], floor_targets: list[str], cached: tuple[str, ...],
           command: str) -> str:
    """The whole RESULTS.md page (``floors``: loss -> what its floor computes;
    ``floor_targets``: the losses held to the 1.5x-of-the-floor target)."""
    targets = evaluate_targets(results, speed, floor_targets, cached)
    ram = f"{info['ram_gb']:.0f} GB RAM" if info.get("ram_gb") else "RAM unknown"
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    load = info.get("load_average")
    lines = [
        "# Benchmarks: our losses against sentence-transformers",
        "",
        f"Generated by `{command}` on {info['date']}: {info['cpu']}, {info['cores']} cores "
        f"(torch uses {info['torch_threads']} threads), {ram}; {versions}.",
    ]
    if load:
        lines.append(f"Load average (1 min) at the start and the end of the run: "
                     f"{load[0]:.1f} and {load[1]:.1f} (on {info['cores']} cores; above that, "
                     "other work shared the CPU and every time is inflated).")
    lines += ["", "## Targets", "",
              "| target | status | measured |", "|---|---|---|"]
    for target in targets:
        status = f"**{target.status}**" if target.status == "not met" else target.status
        lines.append(f"| {target.name} | {status} | {target.detail} |")
    table = rows_for(results, "table")
    bert = rows_for(results, "tiny-bert")
    lines += ["", "## Each loss alone (table model)", "",
              "A stand-in encoder looks fixed random 384-dim embeddings up by row, so these "
              "are the loss's own forward + backward as the trainer calls it. `floor`: the "
              "matrix products the loss cannot avoid (listed below), timed the same way. "
              f"`{ALTERNATING_MARK.strip()}` after a ratio: its two sides were timed again "
              "alternating in one process, and that ratio replaces the fresh-process one "
              "(see Method).", ""]
    lines += loss_table(table, with_floor=True)
    if bert:
        lines += ["", "## With tiny-bert (a 2-layer BERT, 32 tokens per text)", "",
                  "The losses that need transformer layers or a decoder, and the cached "
                  "losses at scale: gradient caching exists to bound the activation memory "
                  "of a real encoder. Times include the encoder's forward and backward.", ""]
        lines += loss_table(bert, with_floor=False)
    if floors:
        lines += ["", "### What each floor computes", ""]
        lines += [f"- {loss}: {text}" for loss, text in floors.items()]
    if speed:
        lines += ["", "## Training speed: tiny against the full-vocabulary static model", "",
                  f"{speed['loss']}, batch {speed['batch_size']}, learning rate "
                  f"{speed['learning_rate']}, {speed['steps']} steps through `lab.train` "
                  f"(SentenceTransformerTrainer), {speed['rounds']} rounds alternating the two "
                  "models; median steps per second of the training steps (evaluations "
                  f"excluded). Load average during the runs: {speed['load_average'][0]:.1f} -> "
                  f"{speed['load_average'][1]:.1f}.", "",
                  "| model | vocabulary | parameters | steps/s | runs | topic 5-NN (untrained) |",
                  "|---|---|---|---|---|---|"]
        for name in ("full", "tiny"):
            entry = speed[name]
            runs = ", ".join(f"{value:.1f}" for value in entry["all_steps_per_s"])
            lines.append(f"| {name} | {entry['vocabulary']} | {entry['parameters'] / 1e6:.2f} M "
                         f"| {entry['steps_per_s']:.1f} | {runs} | "
                         f"{entry['topic_knn_accuracy']:.1%} |")
        lines += ["", f"Speed-up: **{speed['speedup']:.2f}x**. Metrics after training "
                  "(the lab's probe set):", "", "| metric | full | tiny |", "|---|---|---|"]
        for name, value in speed["full"]["metrics_after"].items():
            lines.append(f"| {name} | {value:.4f} | "
                         f"{speed['tiny']['metrics_after'].get(name, float('nan')):.4f} |")
    lines += ["", "Seconds per 100 training steps of every loss through `lab.train` (its catalog "
              "default model and data): [TRAIN-SPEED.md](TRAIN-SPEED.md), written by the full "
              "`make bench` (`benchmarks/train_speed.py`).", "", "## Method", "", *METHOD]
    return "\n".join(lines) + "\n"


METHOD = [
    "- Both implementations get identical inputs (same seeds), are built by the lab's one "
    "factory (`lab.build.build_loss`, catalog default knobs) and are called as the trainer "
    "calls them, `loss(features, labels)` then `backward()`. `same value` compares the two "
    "loss values (relative tolerance 1e-4).",
    "- Each configuration runs in a fresh process: a server per implementation imports torch "
    "and the library once and forks one child per configuration (`benchmarks/harness.py`). "
    "Memory is read first, over the first call and a second one when the first is quick "
    "(under 6 s; 1 s in quick mode); then time: one warm-up call, then the median of 5 timed "
    "calls (3 in quick mode); fewer when the calls are slow (a budget of 60 s, 10 s in quick "
    "mode, memory calls included), more (up to 100) while they add up to less than 1 s "
    "(0.3 s), so millisecond timings are not single noisy samples.",
    "- Second looks. Where ours came out more than 10% slower than the reference (or more than "
    f"{FLOOR_LIMIT}x its floor, where that is a target) and both take under 2 s per call, "
    "the two are timed again side by side in one fresh process: each warmed up, then called in "
    "turn (A B, B A, ...), at least 5 times each and until the slower side's calls add up "
    "to 3 s (1 s in quick mode); "
    f"the ratio of those medians is the one shown, marked `{ALTERNATING_MARK.strip()}`. From "
    "one fresh process to the next, a millisecond step's median moves by more than 10% on this "
    "small machine; in turn, both sides meet the same machine state. Where ours came out heavier "
    "than the allowance below, or slower at 2 s or more per call, both sides are "
    "measured again in fresh processes (2 more tries each, 1 in quick mode) and each keeps its "
    "fastest median and its lowest peak.",
    "- Peak extra memory: the peak resident set size (Linux VmHWM, reset through "
    "`/proc/self/clear_refs`) over the memory calls, minus the resident size just before them, "
    "after the inputs were built, with glibc's allocator pinned for these calls "
    "(`harness.pin_allocator`): every block of 64 KB or more is mapped on its own and returned "
    "to the system when freed, and the free memory the heap held before is returned first. "
    "Resident memory then follows the live tensors, and a reading repeats to within about 1% "
    "from one fresh process to the next. Unpinned, glibc keeps freed blocks and reuses them, so "
    "a reading followed the allocation history more than the loss: the same configuration read "
    "67-80 MB in different processes, and CachedMNRL at 4096 with tiny-bert read 213 MB for a "
    "live peak of 79 MB. For the timed calls the allocator is set back to glibc's long-running "
    "behaviour (freed blocks under 32 MB kept for reuse), since a fresh mapping per block costs "
    "page faults that would double a millisecond step.",
    "- Each child has a memory cap (an address-space limit and a resident-size watchdog) and a "
    "time limit; a configuration that exceeds them is reported as `out of memory (> N GB)` or "
    "`over N s`, and the machine never swaps.",
    "- Memory growth: the exponent e in memory ~ batch^e between consecutive measured batches, "
    f"when the larger reading is at least {MIN_MB_FOR_GROWTH:.0f} MB.",
]
