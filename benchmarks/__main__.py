"""`python -m benchmarks [--quick] [--repeats N]`: measure, print the table, write results/latest.json and RESULTS.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import machine, report
from benchmarks.runs import Workspace
from benchmarks.suite import Settings, run_all

HERE = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="side-by-side repeats per ratio, median reported (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller and fewer: default pipeline without tuning, 6,000 fashion_mnist examples")
    parser.add_argument("--shared-tfds", type=Path, default=None, metavar="DIR",
                        help="TFDS data_dir holding fashion_mnist (default: ../shared/tfds from the repository)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE.prof",
                        help="also cProfile the train stage of the first repeat into this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores and logs (path printed)")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "latest.json", metavar="FILE.json")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE.md",
                        help="default: benchmarks/RESULTS.md (results/RESULTS-quick.md with --quick, so a quick "
                             "check never replaces the committed figures)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        _parser().error(f"--repeats must be >= 1, got {args.repeats}")
    settings = Settings.make(args.repeats, args.quick, args.shared_tfds, args.profile)
    if not (settings.shared_tfds / "fashion_mnist").is_dir():
        _parser().error(f"{settings.shared_tfds} holds no prepared fashion_mnist; pass --shared-tfds DIR")
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    described = machine.describe()
    print(f"machine: {machine.summary_line(described)}; load {described['load_at_start']}", flush=True)
    started = time.perf_counter()
    workspace = Workspace(keep=args.keep)

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {text}", flush=True)

    try:
        results = run_all(workspace, settings, progress)
    finally:
        workspace.close()
        if args.keep:
            print(f"stores and logs kept in {workspace.root}")
    described["load_at_end"] = machine.load()
    described["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(report.text_tables(results))
    print(f"\nload average at start {described['load_at_start']}, at end {described['load_at_end']}; "
          f"{described['benchmark_seconds']:.0f} s in all")
    markdown = args.markdown or (HERE / "results" / "RESULTS-quick.md" if args.quick else HERE / "RESULTS.md")
    report.write_json(args.results, described, settings, results, command.strip())
    report.write_markdown(markdown, described, settings, results, command.strip())
    print(f"wrote {args.results} and {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
