"""Endpoints under load, side by side: the local SageMaker-style endpoint (Multi Model Server)
and faster-whisper-server, both serving the packaged tiny.en on this machine.

Runs, against each in turn (never both at once: they would share the CPU): bad input, single
stream, offline, server (Poisson at half the offline throughput) and the capacity search within
a p99 bound, then prints one table, the capacity table priced on an instance type, and what
each server answered to bad input. Every answer is checked against jfk.flac's reference.

    python benchmarks/endpoint_load.py [--requests 20] [--bound 5] [--trial-s 30]
        [--instance-type ml.c5.xlarge] [--daily-hours 1000] [--out load.jsonl]

The local endpoint is the one named in $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL, else one started
here on a free port (its pinned env is built on first use). The same
run from the command line: tbench load local faster-whisper-server -s all ...
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from pathlib import Path

from transcription_benchmarks.load import Clip, LoadSettings, Pricing, run_load
from transcription_benchmarks.load.result import SCENARIOS
from transcription_benchmarks.load.servers import open_target
from transcription_benchmarks.report.load import load_report
from transcription_benchmarks.report.prices import load_prices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", default=["local", "faster-whisper-server"])
    parser.add_argument("--file", default="jfk.flac")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30.0, help="server scenario seconds")
    parser.add_argument("--bound", type=float, default=5.0, help="p99 bound, seconds")
    parser.add_argument("--trial-s", type=float, default=30.0)
    parser.add_argument("--max-trials", type=int, default=7)
    parser.add_argument("--instance-type", default="ml.c5.xlarge")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--daily-hours", type=float, default=1000.0)
    parser.add_argument("--out", type=Path, default=None)
    opts = parser.parse_args()

    settings = LoadSettings(
        requests=opts.requests,
        duration_s=opts.duration,
        bound_s=opts.bound,
        trial_s=opts.trial_s,
        max_trials=opts.max_trials,
    )
    pricing = Pricing(load_prices(), opts.instance_type, opts.region, opts.daily_hours)
    clips = [Clip.of(opts.file)]
    results = []
    for spec in opts.targets:
        with ExitStack() as stack:
            target = open_target(spec, stack)
            started = time.perf_counter()
            results += run_load(
                target,
                clips,
                SCENARIOS,
                settings,
                pricing=pricing,
                on_result=(lambda r: r.save(opts.out)) if opts.out else None,
            )
            print(f"{target.info.name}: {time.perf_counter() - started:.0f} s", flush=True)
    print(load_report(results))


if __name__ == "__main__":
    main()
