"""`python -m benchmarks`: the command line."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.config import BACKENDS, Options


def sizes(text: str) -> list[int]:
    try:
        values = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return values


def backends(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(values) - set(BACKENDS)
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"backends are among {', '.join(BACKENDS)}")
    return [b for b in BACKENDS if b in values]


def methods(text: str) -> list[str]:
    from benchmarks.methods import METHOD_NAMES

    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or set(values) - set(METHOD_NAMES):
        raise argparse.ArgumentTypeError(f"methods are among {', '.join(METHOD_NAMES)}")
    return values


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time the release logout against Session.objects.all().delete(), the "
        "per-object loop and django-redis delete_pattern on real PostgreSQL, MariaDB and "
        "Redis, with a live process reading and saving sessions meanwhile; then a release "
        "with nothing to do against migrate, and requests/s with and without the tool.",
    )
    p.add_argument("--sizes", type=sizes, help="numbers of sessions (default 100000,1000000)")
    p.add_argument("--backends", type=backends, help=f"among {','.join(BACKENDS)} (default: all)")
    p.add_argument(
        "--methods",
        type=methods,
        help="only these ways of clearing, e.g. ours_logins,delete_logins (the release and "
        "Session.objects.all().delete() with login records, PostgreSQL); default: all",
    )
    p.add_argument("--skip-http", action="store_true", help="skip the throughput measurement")
    p.add_argument(
        "--only-http",
        action="store_true",
        help="measure only requests/s (and the guard's cost per session load), on PostgreSQL",
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes and short runs: checks the suite works"
    )
    p.add_argument(
        "--out", type=Path, help="directory for the results (default benchmarks/results/<time>)"
    )
    p.add_argument("--keep", action="store_true", help="keep the databases at the end")
    p.add_argument(
        "--repeats",
        type=positive,
        help="runs of each method at each size, on a store filled afresh, the median reported "
        "(default 3; once for the per-object loop and with login records)",
    )
    p.add_argument("--per-object-sample", type=int, help="rows the per-object loop deletes")
    p.add_argument("--redis-others", type=int, help="unrelated Redis keys (default 100000)")
    p.add_argument("--http-seconds", type=float, help="seconds of each wrk run, whole (default 5)")
    p.add_argument("--http-rounds", type=int, help="wrk runs of each server and page (default 12)")
    p.add_argument(
        "--rest-seconds",
        type=float,
        help="seconds of the live load alone before each release, whose waits are reported "
        "beside the release's (default 30)",
    )
    return p


def options_from(argv: list[str]) -> Options:
    args = parser().parse_args(argv)
    options = Options.for_smoke() if args.smoke else Options()
    options.smoke = args.smoke
    names = ("sizes", "backends", "methods", "out", "per_object_sample", "redis_others", "repeats")
    for name in names:
        if getattr(args, name) is not None:
            setattr(options, name, getattr(args, name))
    if args.http_seconds is not None:
        options.http_seconds = args.http_seconds
    if args.http_rounds is not None:
        options.http_rounds = args.http_rounds
    if args.rest_seconds is not None:
        options.rest = args.rest_seconds
    options.skip_http = args.skip_http
    if args.only_http:
        if args.skip_http:
            parser().error("--only-http and --skip-http exclude each other")
        # No store to clear: the suite then makes only the PostgreSQL database the servers use.
        options.backends = []
    options.keep = args.keep
    options.command = shlex.join(["python", "-m", "benchmarks", *argv])
    return options


def main(argv: list[str] | None = None) -> int:
    from benchmarks.suite import run_suite

    return run_suite(options_from(sys.argv[1:] if argv is None else argv))
