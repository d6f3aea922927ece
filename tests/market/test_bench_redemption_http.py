"""The arithmetic of benchmarks/redemption_http.py: percentiles, the summary, the verdict."""

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import redemption_http as bench  # noqa: E402


def test_percentiles_are_nearest_rank():
    values = [i / 1000 for i in range(1, 101)]  # 1 .. 100 ms
    assert bench.percentile(values, 50) == 0.050
    assert bench.percentile(values, 99) == 0.099
    assert bench.percentile(values, 100) == 0.100
    assert bench.percentile([0.2], 99) == 0.2
    assert bench.percentile([], 50) == 0.0


def test_a_summary_counts_pairs_per_second_and_judges_the_target():
    tally = bench.Tally()
    tally.latencies = {"create": [0.01] * 300, "confirm": [0.02] * 300}
    tally.created = tally.confirmed = 300
    row = bench.summarise(16, tally, 2.0, {"app": 3.0, "postgres": 1.5, "client": 0.6})
    assert (row["per_second"], row["errors"]) == (150.0, 0)
    assert row["create"]["p99_ms"] == 10.0 and row["confirm"]["p50_ms"] == 20.0
    assert row["cpu_ms"] == {"app": 10.0, "client": 2.0, "postgres": 5.0}
    assert bench.judge(row)

    tally.errors = Counter({("confirm", 409): 1})
    assert not bench.judge(bench.summarise(16, tally, 2.0))
    tally.errors = Counter()
    tally.latencies["confirm"][-4:] = [0.3] * 4
    assert not bench.judge(bench.summarise(16, tally, 2.0))  # p99 over 250 ms
    assert not bench.judge(bench.summarise(16, tally, 2.5))  # 120 a second
