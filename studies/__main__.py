"""`python -m studies NAME [--quick] [--seeds N]`: run one study (or "all") and print its verdicts."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from studies import ALL, FULL_SEEDS, QUICK_SEEDS, STUDIES, run_study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies", description=__doc__)
    parser.add_argument("name", choices=(*STUDIES, ALL))
    parser.add_argument("--quick", action="store_true", help="the CI-sized grid (a minute or two each)")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"seeds 0..N-1 (default {FULL_SEEDS}, with --quick {QUICK_SEEDS})")
    parser.add_argument("--reports-dir", type=Path, default=None, help="default: <repo>/reports")
    parser.add_argument("--data-dir", default=None, help="TFDS data_dir for the synthetic datasets")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = run_study(
        args.name, quick=args.quick, reports_dir=args.reports_dir, data_dir=args.data_dir, seeds=args.seeds
    )
    payloads = result.values() if args.name == ALL else [result]
    for payload in payloads:
        print(f"{payload['study']}: {payload['verdict']} ({payload['wall_time_s']:.0f} s)")
        for claim in payload["claims"]:
            print(f"  {claim['line']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
