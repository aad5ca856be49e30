"""Measure one configuration in a fresh process: forward + backward time and peak extra memory.

Why a fork server. Every configuration must run in its own process, so its peak memory is its
own and nothing it allocates lingers into the next one. Starting Python, torch and
sentence-transformers for each of hundreds of configurations would cost ~7 s apiece on a small
CPU; instead one *server* process per implementation imports everything once and forks a child
per configuration. The server never runs a torch computation itself: forking after torch's
OpenMP thread pool has started leaves the child hanging, so the pool must start in the child.

What a child measures (``time_and_memory``), in two phases:

- memory first: the peak resident set size (VmHWM) over the first call, and a second call when
  the first was quick, minus the resident size just before, after the inputs and the loss were
  built. During this phase the C allocator is *pinned* (``pin_allocator("exact")``): every
  block of 64 KB or more gets its own mapping, returned to the system when freed, and memory
  the allocator kept from earlier is handed back first. Resident memory then follows the live
  tensors. Without it, glibc keeps freed blocks in its heap and reuses them, so a reading
  depends on the allocation history, not on the step: the same step measured 67-80 MB from
  one fresh process to the next (ContrastiveTensionInBatchNegatives at 1024), and CachedMNRL
  at 4096 with tiny-bert measured 213 MB where its live peak is 79 MB. Pinned, both readings
  repeat to within 1%. The second call counts state a loss keeps between calls.
- then time, with the allocator back in a steady, realistic mode (``pin_allocator("steady")``:
  freed blocks under 32 MB are kept and reused, as glibc does in a long-running process; the
  pinned mode's fresh mappings cost page faults that would double a millisecond step): one
  warm-up call, then the median of ``repeats`` timed calls (fewer if they exceed ``budget_s``
  in total, at least one; more, up to 100, while they add up to less than ``min_time_s``, so
  fast calls get a steady median).

Guards, so the machine never swaps: each child gets an address-space limit (``RLIMIT_AS``: its
size at fork plus the memory cap plus a fixed slack for thread stacks and allocator arenas) and
the server kills it if its resident size grows by more than the cap, or if it runs longer than
the time limit. Such failures are results ("out of memory (> 8 GB)", "over 120 s"), not crashes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3
ADDRESS_SPACE_SLACK = 2 * GB  # thread stacks, malloc arenas and mapped libraries beyond the cap
POLL_SECONDS = 0.02


# ----------------------------------------------------------------------------- memory readings
def _status_kb(key: str, pid: int | str = "self") -> int | None:
    """One ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM, VmSize), or None if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def resident_mb(pid: int | str = "self") -> float:
    """Current resident set size of a process, in MB (0 if it cannot be read)."""
    return (_status_kb("VmRSS", pid) or 0) / 1024


def reset_peak() -> bool:
    """Reset this process's peak resident size to its current size; False if not supported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # "5": reset the peak RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """Peak resident set size of this process so far (since ``reset_peak``), in MB."""
    high_water = _status_kb("VmHWM")
    if high_water is None:  # not Linux: ru_maxrss is kB on Linux, bytes on macOS
        maximum = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maximum / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return high_water / 1024


# ------------------------------------------------------------------------------ the C allocator
_MALLOPT_TRIM_THRESHOLD, _MALLOPT_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_ALLOCATOR_MODES = {  # mode: (blocks this large get their own mapping, trim the heap above)
    "exact": (64 * 1024, 128 * 1024),
    "steady": (32 * 1024**2, 64 * 1024**2),  # glibc's own ceiling for its sliding threshold
}


def pin_allocator(mode: str) -> bool:
    """Set glibc's allocator to ``"exact"`` (memory readings) or ``"steady"`` (timings).

    exact: blocks of 64 KB or more are mapped on their own and unmapped when freed, and the free
    memory the heap holds now is returned to the system (``malloc_trim``), so resident memory
    follows live memory. steady: blocks under 32 MB come from the heap and stay there when freed,
    for reuse without page faults. False where the C library has no ``mallopt`` (not glibc).
    """
    mapped, trimmed = _ALLOCATOR_MODES[mode]
    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    pinned = bool(mallopt(_MALLOPT_MMAP_THRESHOLD, mapped)) and bool(
        mallopt(_MALLOPT_TRIM_THRESHOLD, trimmed))
    if pinned and mode == "exact":
        malloc_trim(0)
    return pinned


def time_and_memory(step: Callable[[], Any], repeats: int = 5, budget_s: float = 60.0,
                    min_time_s: float = 0.5, max_runs: int = 100) -> dict:
    """Peak extra memory of ``step``'s first calls, then the median time of ``repeats`` more.

    Memory (allocator pinned exact): the first call, and a second one when the first took less
    than a tenth of ``budget_s``. Time (allocator steady): one warm-up call when the calls are
    quick, then at least one timed call, and no new one once all calls so far took ``budget_s``;
    fast calls go on (up to ``max_runs``) until they add up to ``min_time_s``, so a median of
    milliseconds is not one noisy sample.

    Returns ``{"seconds": median, "runs": timed calls, "peak_mb": peak extra MB of the memory
    calls, "value": what the first call returned (a float, for the cross-check of ours against
    the reference)}``, with a ``"note"`` where the allocator or the peak could not be pinned.
    """

    def timed_call() -> tuple[Any, float]:
        started = time.perf_counter()
        returned = step()
        return returned, time.perf_counter() - started

    exact_allocator = pin_allocator("exact")
    baseline = resident_mb()
    exact_peak = reset_peak()
    value, spent = timed_call()
    quick = spent < budget_s / 10
    if quick:
        spent += timed_call()[1]
    peak = peak_mb() - baseline
    pin_allocator("steady")
    if quick:
        spent += timed_call()[1]  # warm-up: the heap grows to the step's working set
    times: list[float] = []

    def more() -> bool:
        if not times:
            return True
        if len(times) < max(1, repeats):
            return spent + sum(times) < budget_s
        return sum(times) < min_time_s and len(times) < max_runs

    while more():
        times.append(timed_call()[1])
    result = {"seconds": statistics.median(times), "runs": len(times),
              "peak_mb": max(0.0, peak), "value": value}
    notes = []
    if not exact_allocator:
        notes.append("allocator not pinned: memory it kept may hide or add to the peak")
    if not exact_peak:
        notes.append("peak since process start")
    if notes:
        result["note"] = "; ".join(notes)
    return result


def alternate_timing(steps: dict[str, Callable[[], Any]], min_time_s: float = 3.0,
                     budget_s: float = 60.0, min_rounds: int = 5, max_rounds: int = 300) -> dict:
    """Time several steps in one process, call after call: ``{name: {"seconds", "runs"}}``.

    Why: a millisecond step's median moves by more than 10% from one fresh process to the next
    on a small shared machine (where the allocator put things, what else ran at that moment),
    which decides a close ratio more than the code does. Interleaved in one process, both sides
    see the same machine at the same moments. Each step is warmed up once, then rounds call
    every step once, the order reversed every other round (A B, B A, ...) so neither side always
    runs first. After ``min_rounds`` rounds, they stop once the slowest step's calls add up to
    ``min_time_s`` or all calls took ``budget_s``; never more than ``max_rounds``.
    Memory is not measured here: both sides share the process.
    """
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    started = time.perf_counter()
    for round_number in range(max_rounds):
        for name in order if round_number % 2 == 0 else reversed(order):
            began = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - began)
        if round_number + 1 < min_rounds:
            continue
        if (max(sum(values) for values in times.values()) >= min_time_s
                or time.perf_counter() - started >= budget_s):
            break
    return {name: {"seconds": statistics.median(values), "runs": len(values)}
            for name, values in times.items()}


# ------------------------------------------------------------------------------- the fork server
def memory_cap_bytes(requested_gb: float | None = None) -> int:
    """The per-child memory cap: ``requested_gb``, else 60% of the memory available now
    (at most 16 GB), so a runaway configuration fails instead of pushing the machine into swap."""
    if requested_gb is not None:
        return int(requested_gb * GB)
    available_kb = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                available_kb = int(line.split()[1])
    if available_kb is None:
        return 8 * GB
    return int(min(16 * GB, 0.6 * available_kb * 1024))


def _gigabytes(cap_bytes: int) -> str:
    """A memory cap for a table cell: "8 GB", "0.2 GB"."""
    return f"{cap_bytes / GB:.1f}".removesuffix(".0") + " GB"


def describe_failure(error: BaseException, cap_bytes: int) -> str:
    """A short table cell for an exception raised by a configuration."""
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    if isinstance(error, MemoryError) or "allocate" in lowered or "out of memory" in lowered \
            or "not enough memory" in lowered:
        return f"out of memory (> {_gigabytes(cap_bytes)})"
    return text.splitlines()[0][:100]


def _run_child(task: dict, runner: Callable[[dict], dict], cap_bytes: int, write_fd: int) -> None:
    """Inside the forked child: limit memory, run the task, write one JSON line, exit."""
    code = 0
    try:
        size_kb = _status_kb("VmSize") or 0
        limit = size_kb * 1024 + cap_bytes + ADDRESS_SPACE_SLACK
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            result = runner(task)
        except BaseException as error:  # every failure is a result, reported as such
            result = {"error": describe_failure(error, cap_bytes)}
        payload = (json.dumps(result) + "\n").encode()
        os.write(write_fd, payload)
    except BaseException:  # pragma: no cover - nothing left to report to
        code = 1
    finally:
        os._exit(code)


def supervise(pid: int, read_fd: int, timeout_s: float, cap_bytes: int) -> dict:
    """Wait for a forked child: kill it over the time limit or the memory cap; its result."""
    started = time.monotonic()
    baseline_mb = resident_mb(pid)
    chunks: list[bytes] = []
    os.set_blocking(read_fd, False)
    failure = None
    while True:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read_fd, 65536):
                chunks.append(chunk)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout_s:
            failure = f"over {timeout_s:.0f} s"
        elif resident_mb(pid) - baseline_mb > cap_bytes / (1024 * 1024):
            failure = f"out of memory (> {_gigabytes(cap_bytes)})"
        if failure:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(POLL_SECONDS)
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
    os.close(read_fd)
    if failure:
        return {"error": failure}
    text = b"".join(chunks).decode().strip()
    if not text:
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        return {"error": "out of memory (killed)" if killed else
                f"child died (status {status})"}
    return json.loads(text.splitlines()[-1])


def fork_and_measure(task: dict, runner: Callable[[dict], dict], timeout_s: float,
                     cap_bytes: int) -> dict:
    """Run ``runner(task)`` in a forked child under the limits; its result or the failure."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        _run_child(task, runner, cap_bytes, write_fd)
    os.close(write_fd)
    return supervise(pid, read_fd, timeout_s, cap_bytes)


def serve(preload: Callable[[], None], runner: Callable[[dict], dict],
          requests: IO[str], replies: IO[str]) -> None:
    """The server loop: import once (``preload``), then one forked child per request line.

    A request is a JSON object ``{"task": {...}, "timeout_s": s, "cap_bytes": n}``; the reply is
    one JSON line with the child's result.
    """
    preload()
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        result = fork_and_measure(request["task"], runner, request["timeout_s"],
                                  request["cap_bytes"])
        replies.write(json.dumps(result) + "\n")
        replies.flush()


class Server:
    """A fork server in its own Python process, for one kind of task (e.g. "reference").

    ``Server("reference").measure(task, timeout_s, cap_bytes)`` returns the child's result dict.
    The server's own output (library warnings) goes to ``log``.
    """

    def __init__(self, kind: str, log: IO[str] | None = None) -> None:
        command = [sys.executable, "-m", "benchmarks.cases", "--serve", kind]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
        self.kind = kind
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, text=True, bufsize=1,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=log or subprocess.DEVNULL)
        ready = self.process.stdout.readline()
        if not ready.strip():
            raise RuntimeError(f"the {kind} benchmark server did not start "
                               f"(exit code {self.process.poll()}); see the benchmark log")

    def measure(self, task: dict, timeout_s: float, cap_bytes: int) -> dict:
        """Measure one task in a fresh child of this server."""
        request = {"task": task, "timeout_s": timeout_s, "cap_bytes": cap_bytes}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply.strip():
            raise RuntimeError(f"the {self.kind} benchmark server stopped "
                               f"(exit code {self.process.poll()})")
        return json.loads(reply)

    def close(self) -> None:
        """Stop the server (its children are already gone)."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def protocol_streams() -> tuple[IO[str], IO[str]]:
    """(requests, replies) for a server: stdin, and a private copy of stdout.

    Everything else that writes to stdout (library messages, children) is sent to stderr, so
    only protocol lines reach the parent.
    """
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return sys.stdin, replies
