"""The benchmark suite: how fast a release logs everyone out, and what it costs the live site.

Run it with `python -m benchmarks` (see `--help` and the README's "Performance" section). It
uses its own databases (`release_bench` on PostgreSQL and MariaDB, or BENCH_DATABASE) and Redis
database 14 (or BENCH_REDIS_DB), and writes `benchmarks/results/<timestamp>/` (results.json,
results.md, clear-time.png).
"""
