"""Command line of the lab: ``python -m lab <command>`` (demo, losses, train)."""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path
from typing import Any

TRAIN_EXAMPLES = """\
examples:
  python -m lab train --loss BatchHardTripletLoss --steps 100 --knob margin=2
  python -m lab train --loss MatryoshkaLoss --knob loss=CoSENTLoss --dataset pair-score
  python -m lab train --loss GISTEmbedLoss --model tiny-bert --knob guide=minilm
knob values are read as Python literals where they parse (2, 0.5, true, (384, 128)),
else as text (euclidean); `python -m lab losses --knobs` lists every loss's knobs."""


def parse_knob(text: str) -> tuple[str, Any]:
    """``"name=value"`` -> (name, value); values are Python literals where they parse."""
    if "=" not in text:
        raise ValueError(f"--knob expects name=value; got {text!r}")
    name, raw = text.split("=", 1)
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return name.strip(), lowered == "true"
    if lowered in ("none", "null"):
        return name.strip(), None
    try:
        return name.strip(), ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name.strip(), raw


def _print_losses(with_knobs: bool) -> None:
    from lab.catalog import LOSSES, is_implemented, overview_rows

    print(f"{'loss':46s} {'ours':5s} {'family':28s} data formats")
    for row in overview_rows():
        ours = "yes" if is_implemented(row["name"]) else "-"
        print(f"{row['name']:46s} {ours:5s} {row['family']:28s} {row['formats']}")
        if with_knobs:
            entry = LOSSES[row["name"]]
            for knob in entry.knobs:
                values = (f"one of {list(knob.choices)}" if knob.kind == "choice"
                          else knob.kind if knob.kind == "bool"
                          else f"{knob.kind} in [{knob.low}, {knob.high}]")
                print(f"    {knob.name}={knob.default!r}  ({values})")
            if entry.wraps:
                print(f"    loss={entry.default_inner_loss!r}  (the loss it wraps)")
            if entry.needs_guide:
                print(f"    guide={entry.default_guide!r}  (the guide model)")


def _train(args: argparse.Namespace) -> int:
    from lab.build import KnobError
    from lab.data.validate import DataFormatError

    try:
        knobs = dict(parse_knob(text) for text in args.knob)
        if "loss" in knobs:  # a wrapper's wrapped loss; lab.train's `loss` is the wrapper
            knobs["inner_loss"] = knobs.pop("loss")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.loss}")
    from lab.training import train

    try:
        result = train(args.loss, args.model, args.dataset, steps=args.steps,
                       batch_size=args.batch_size, learning_rate=args.learning_rate,
                       device=args.device, seed=args.seed, snapshots=args.snapshots,
                       out_dir=out, **knobs)
    except (KnobError, DataFormatError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return 0  # one report and one set of plots per run, from rank 0
    from lab.report import write_plots

    plots = write_plots(result, out)
    print(result.summary())
    print(f"Wrote the run to {out}/ (result.json, arrays.npz, model/ and {len(plots)} plots: "
          f"{', '.join(path.name for path in plots)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(
        prog="python -m lab",
        description="The embedding-loss lab: train, measure and draw sentence-embedding losses.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = commands.add_parser(
        "demo", help="encode the teaching corpus with the tiny and minilm models and write an "
                     "embedding-map PNG of each to runs/<timestamp>/")
    demo.add_argument("--out", help="folder for the PNGs (default: runs/<timestamp>)")
    demo.add_argument("--device", help="cpu, cuda, ... (default: chosen automatically)")
    listing = commands.add_parser("losses", help="list every loss with its family and the data "
                                                 "formats it takes")
    listing.add_argument("--knobs", action="store_true", help="also list each loss's knobs")
    trainer = commands.add_parser(
        "train", help="train one loss and write a run folder with plots and the model",
        description="Train one loss of the catalog with SentenceTransformerTrainer and write a "
                    "run folder: result.json, arrays.npz, the model (loadable with "
                    "SentenceTransformer(path)) and PNG plots.",
        epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    trainer.add_argument("--loss", required=True, help="a loss name (python -m lab losses)")
    trainer.add_argument("--model", help="tiny, tiny-bert, minilm, a local folder or a Hub id "
                                         "(default: the loss's catalog default)")
    trainer.add_argument("--dataset", help="a data format of the loss (default: its catalog "
                                           "default), e.g. pair, triplet, sentence-label")
    trainer.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    trainer.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    trainer.add_argument("--learning-rate", type=float,
                         help="default: per model (tiny 0.01, tiny-bert 1e-3, others 5e-5)")
    trainer.add_argument("--device", help="cpu, cuda, ... (default: GPU if there is one)")
    trainer.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    trainer.add_argument("--snapshots", type=int, default=4,
                         help="evaluations and probe snapshots during training (default 4)")
    trainer.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                         help="a knob of the loss; repeat for several")
    trainer.add_argument("--out", help="run folder (default runs/<timestamp>-<loss>)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from lab.demo import run_demo

        run_demo(args.out, device=args.device)
    elif args.command == "losses":
        _print_losses(args.knobs)
    elif args.command == "train":
        return _train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
