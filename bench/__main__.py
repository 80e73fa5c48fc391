"""python -m bench [--quick] [--only SCENARIO ...] [--out bench/results] [--profile]

Starts the local host on a free port with its own state directory, runs the scenarios over real HTTP,
and writes latest.json, latest.md and latest.png into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bench.runner import run_bench, summary_line
from bench.scenarios import SCENARIOS
from devhost.settings_file import PROJECT_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="run each scenario tiny (about two minutes)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SCENARIOS),
        metavar="SCENARIO",
        help=f"run only these: {', '.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_DIR / "bench" / "results",
        help="where latest.json, latest.md and latest.png go",
    )
    parser.add_argument(
        "--profile", action="store_true", help="sample the host with py-spy during the main measured phases"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # The cost model hosts the app in this process: keep its per-invocation log lines out of the output.
    for noisy in ("azure", "urllib3", "aiohttp", "devhost", "chorus"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("bench").setLevel(logging.INFO)
    paths = asyncio.run(run_bench(args.quick, args.only, args.out, args.profile))
    print(summary_line(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
