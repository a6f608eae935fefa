"""Generator throughput: one million values from each kind (``python -m benchmarks.generators``).

Faker's own per-call cost is ~20 µs, so a million direct calls would take ~20 s; Circus draws
from a pool made once, which this measures (pool included).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from circus_core import EmpiricalGenerator, FakerGenerator, NumpyRandomGenerator, SequencialGenerator

SIZE = 1_000_000


def cases() -> dict[str, Callable[[], object]]:
    return {
        "FakerGenerator('first_name'), pool included": lambda: FakerGenerator("first_name", seed=1).generate(SIZE),
        "FakerGenerator('city', 'fr_FR'), pool included": lambda: FakerGenerator(
            "city", locale="fr_FR", seed=1
        ).generate(SIZE),
        "NumpyRandomGenerator('normal')": lambda: NumpyRandomGenerator("normal", seed=1).generate(SIZE),
        "NumpyRandomGenerator('choice') of strings": lambda: NumpyRandomGenerator(
            "choice", seed=1, a=["a", "b", "c"], p=[0.2, 0.3, 0.5]
        ).generate(SIZE),
        "EmpiricalGenerator (100 values)": lambda: EmpiricalGenerator(
            [f"v{i}" for i in range(100)], range(1, 101), seed=1
        ).generate(SIZE),
        "SequencialGenerator(prefix='ID_')": lambda: SequencialGenerator(prefix="ID_").generate(SIZE),
    }


def main() -> None:
    print(f"{'generator':48}  {'1M values, s (median of 5)':>26}")
    for name, case in cases().items():
        times = []
        for _ in range(5):
            t = time.perf_counter()
            case()
            times.append(time.perf_counter() - t)
        print(f"{name:48}  {statistics.median(times):26.3f}")


if __name__ == "__main__":
    main()
