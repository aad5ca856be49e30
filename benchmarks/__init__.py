"""Benchmarks of the lab: our losses against sentence-transformers', and training speed.

``make bench`` (or ``make bench QUICK=1``) runs them and writes ``benchmarks/RESULTS.md``:

- ``harness``: the measuring machinery (fresh process per configuration, time and peak memory,
  memory cap and time limit);
- ``cases``: how each catalog loss is fed (inputs, batch sizes, the matrix-product floor);
- ``report``: the markdown tables and the targets of the performance issue;
- ``bench_losses``: the command line that runs it all;
- ``train_speed_static``: steps per second of the lab's ``tiny`` model against the plain
  full-vocabulary static model; ``train_speed``: seconds per 100 steps of every loss.
"""
