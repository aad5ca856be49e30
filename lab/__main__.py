"""Command line of the lab: ``python -m lab <command>``."""

from __future__ import annotations

import argparse
import sys


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
    commands.add_parser("losses", help="list every loss with its family and data formats")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from lab.demo import run_demo

        run_demo(args.out, device=args.device)
    elif args.command == "losses":
        from lab.catalog import is_implemented, overview_rows

        print(f"{'loss':46s} {'ours':5s} {'family':28s} data formats")
        for row in overview_rows():
            ours = "yes" if is_implemented(row["name"]) else "-"
            print(f"{row['name']:46s} {ours:5s} {row['family']:28s} {row['formats']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
