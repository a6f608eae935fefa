"""Determinism: same scenario and seed → the same bytes; streams are independent per component.

Logs are written with `circus_core.io.logs.write_day` (one Parquet file per log and day) and
compared byte for byte, which is what downstream consumers of daily partitions see.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from circus_core import (
    Apply,
    Circus,
    DefaultDailyTimerGenerator,
    FakerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    WorkHoursTimerGenerator,
    make_random_bipartite_data,
    make_rng,
    stable_id,
)
from circus_core.io import write_day
from circus_core.operations import concat_tables

START = "2026-01-05T00:00:00+00:00"
REPO = Path(__file__).resolve().parents[1]


def build(
    seed: int = 11, extra_story: bool = False, extra_generator: bool = False, extra_story_first: bool = False
) -> Circus:
    """A small telecom-like circus; the ``extra_*`` flags add unrelated components."""
    circus = Circus("det", seed, START)
    if extra_generator:
        noise = circus.attach_generator("noise", NumpyRandomGenerator("normal"))
        noise.generate(1000)  # draws from its own stream at build time
    names = circus.attach_generator("names", FakerGenerator("first_name", pool_size=100))
    subs = circus.create_population("subs", 300)
    subs.create_attribute("name", init_gen=names)
    subs.create_attribute(
        "popularity", init_gen=circus.attach_generator("popularity", NumpyRandomGenerator("pareto", a=2.0))
    )
    friends = subs.create_relationship("friends", to_population=subs)
    pairs = make_random_bipartite_data(np.arange(300), np.arange(300), 0.02, seed=circus.seed_for("friends"))
    friends.add_relations(pairs["from"], pairs["to"])

    def add_extra() -> None:
        work = WorkHoursTimerGenerator(circus.clock)
        sms = circus.create_story("sms", subs, "sender", timer_gen=work, activity_gen=work.activity(5, per="1D"))
        sms.set_operations(
            circus.clock.ops.timestamp("ts"),
            friends.ops.select_one("sender", "to", weight=subs.get_attribute("popularity")),
            subs.ops.lookup("to", {"name": "to_name"}),
            NumpyRandomGenerator("integers", low=1, high=160).ops.generate("chars"),
            FieldLogger("sms"),
        )

    if extra_story and extra_story_first:
        add_extra()
    timer = DefaultDailyTimerGenerator(circus.clock)
    calls = circus.create_story(
        "calls", subs, "caller", timer_gen=timer, activity_gen=NumpyRandomGenerator("uniform", low=1, high=6)
    )
    calls.set_operations(
        circus.clock.ops.timestamp("ts"),
        friends.ops.select_one("caller", "callee", weight=subs.get_attribute("popularity")),
        subs.ops.lookup("callee", {"name": "callee_name"}),
        NumpyRandomGenerator("exponential", scale=120.0).ops.generate("duration"),
        Apply("duration", "price", lambda d: (d * 0.01).round(2)),
        FieldLogger("calls"),
    )
    if extra_story and not extra_story_first:
        add_extra()
    return circus


def run_and_write(circus: Circus, out: Path, days: int = 2) -> dict[str, bytes]:
    """Run ``days`` days, write each day with write_day; {relative path: bytes}."""
    for _ in range(days):
        date = str(circus.clock.now.date())
        day: dict[str, list[pa.Table]] = {}
        for _, logs in circus.iter_steps("1D"):
            for log_id, table in logs.items():
                day.setdefault(log_id, []).append(table)
        write_day({k: concat_tables(v) for k, v in day.items()}, out, date)
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def test_same_scenario_and_seed_give_identical_bytes(tmp_path: Path) -> None:
    first = run_and_write(build(), tmp_path / "a")
    second = run_and_write(build(), tmp_path / "b")
    assert sorted(first) == ["calls/date=2026-01-05/part-00000.parquet", "calls/date=2026-01-06/part-00000.parquet"]
    assert first == second
    other_seed = run_and_write(build(seed=12), tmp_path / "c")
    assert all(first[k] != other_seed[k] for k in first)


def test_adding_a_story_does_not_change_the_first_story(tmp_path: Path) -> None:
    """A second story reading the same population and relationship, with its own generators,
    created after or even before the first one: the first story's bytes do not move."""
    base = run_and_write(build(), tmp_path / "base")
    for first in (False, True):
        out = tmp_path / f"extra-{first}"
        with_extra = run_and_write(build(extra_story=True, extra_story_first=first), out)
        assert any(k.startswith("sms/") for k in with_extra)  # the new story did run
        assert {k: v for k, v in with_extra.items() if k.startswith("calls/")} == base


def test_adding_an_unrelated_generator_changes_nothing(tmp_path: Path) -> None:
    base = run_and_write(build(), tmp_path / "base")
    assert run_and_write(build(extra_generator=True), tmp_path / "extra") == base


def test_stable_id_is_stable() -> None:
    """sha256-based, never the per-process salted hash(): the same on every machine and run."""
    assert stable_id("circus") == 3885343590999054508
    assert stable_id("circus") == int.from_bytes(hashlib.sha256(b"circus").digest()[:8], "little")
    assert stable_id("story calls") != stable_id("story sms")
    assert make_rng("a", 1).random() == make_rng("a", 1).random()
    assert make_rng("a", 1).random() != make_rng("a", 2).random()


def test_identical_bytes_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    """A fresh interpreter with a different PYTHONHASHSEED writes the same bytes."""
    here = run_and_write(build(), tmp_path / "here", days=1)
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "import test_determinism as t;"
        "print(sorted((k, len(v)) for k, v in t.run_and_write(t.build(), Path(sys.argv[2]), days=1).items()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path / "there")],
        check=True,
        env=env,
        capture_output=True,
        cwd=REPO,
    )
    there = {
        str(p.relative_to(tmp_path / "there")): p.read_bytes() for p in sorted((tmp_path / "there").rglob("*.parquet"))
    }
    assert there == here
