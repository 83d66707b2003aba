"""`python -m benchmarks [--quick] [--repeats N]`: measure, print the table, write results/latest.json and RESULTS.md."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import machine, report
from benchmarks.runs import Workspace
from benchmarks.suite import GROUPS, Settings, run_all

HERE = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeats", type=int, default=None, metavar="N",
                        help="side-by-side repeats per ratio, median reported (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller and fewer: default pipeline without tuning, 6,000 fashion_mnist examples")
    parser.add_argument("--shared-tfds", type=Path, default=None, metavar="DIR",
                        help="TFDS data_dir holding fashion_mnist prepared (default: TFDS_DATA_DIR, as `make bench` "
                             "sets it)")
    parser.add_argument("--only", default="", metavar="GROUPS",
                        help=f"comma-separated subset of {','.join(GROUPS)} (the pipelines they need run too); "
                             "results then go to results/partial.json and results/RESULTS-partial.md")
    parser.add_argument("--fashion-examples", type=int, default=None, metavar="N",
                        help="data.max_examples of the fashion_mnist run that feeds the training benchmarks "
                             "(default: all; 3000 with --quick)")
    parser.add_argument("--fashion-epochs", type=int, default=None, metavar="N",
                        help="epochs of that run and of the train-stage benchmark (default 8; 1 with --quick)")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE.prof",
                        help="also cProfile one extra, unmeasured train stage run into this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores and logs (path printed)")
    parser.add_argument("--results", type=Path, default=None, metavar="FILE.json",
                        help="default: benchmarks/results/latest.json (latest-quick.json with --quick)")
    parser.add_argument("--markdown", type=Path, default=None, metavar="FILE.md",
                        help="default: benchmarks/RESULTS.md (results/RESULTS-quick.md with --quick, so a quick "
                             "check never replaces the committed figures)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for flag, value, low in (("--repeats", args.repeats, 1), ("--fashion-examples", args.fashion_examples, 0),
                             ("--fashion-epochs", args.fashion_epochs, 1)):
        if value is not None and value < low:
            _parser().error(f"{flag} must be >= {low}, got {value}")
    only = {group for group in args.only.split(",") if group}
    if only - set(GROUPS):
        _parser().error(f"--only takes {', '.join(GROUPS)}, got {', '.join(sorted(only - set(GROUPS)))}")
    settings = Settings.make(args.repeats, args.quick, args.shared_tfds, args.profile, args.fashion_examples,
                             args.fashion_epochs)
    if not (settings.shared_tfds / "fashion_mnist").is_dir():
        _parser().error(f"{settings.shared_tfds} holds no prepared fashion_mnist; pass --shared-tfds DIR "
                        "or set TFDS_DATA_DIR")
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    described = machine.describe()
    print(f"machine: {machine.summary_line(described)}; load {described['load_at_start']}", flush=True)
    started = time.perf_counter()
    workspace = Workspace(keep=args.keep)

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {text}", flush=True)

    try:
        results = run_all(workspace, settings, progress, only or set(GROUPS))
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
    kind = "partial" if only else "quick" if args.quick else ""
    results_file = args.results or HERE / "results" / (f"{kind}.json" if kind == "partial" else
                                                       "latest-quick.json" if kind else "latest.json")
    markdown = args.markdown or (HERE / "results" / f"RESULTS-{kind}.md" if kind else HERE / "RESULTS.md")
    report.write_json(results_file, described, settings, results, command.strip())
    report.write_markdown(markdown, described, settings, results, command.strip())
    print(f"wrote {results_file} and {markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
