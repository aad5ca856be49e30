"""lab.train runs unchanged under a distributed launcher: torchrun with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_trains_and_rank_zero_writes_the_run(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--standalone", "-m", "lab", "train", "--loss",
               "MultipleNegativesRankingLoss", "--steps", "3", "--batch-size", "8",
               "--device", "cpu", "--snapshots", "1", "--out", str(out)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    finished = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True,
                              text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("Wrote the run to") == 1, finished.stdout  # rank 0 only
    record = json.loads((out / "result.json").read_text())
    assert record["processes"] == 2
    assert record["steps_done"] == 3 and len(record["curves"]["loss"]) == 3
    assert (out / "model" / "modules.json").is_file()
    assert (out / "loss-curve.png").stat().st_size > 10_000
