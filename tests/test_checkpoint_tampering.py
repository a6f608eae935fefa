"""A tampered, truncated or hand-edited checkpoint is a `CheckpointError` naming the file and the
key, never a bare KeyError / TypeError / ValueError / AttributeError; the checkpoint folder is
left as it was."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from circus_core import (
    CheckpointError,
    Circus,
    DefaultDailyTimerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    SequencialGenerator,
)

START = "2026-01-05T00:00:00+00:00"


def add_stories(circus: Circus) -> None:
    pop = circus.get_population("p")
    timer = DefaultDailyTimerGenerator(circus.clock)
    later = circus.create_story("later", pop, "ID")
    later.set_operations(FieldLogger("later", ["ID"]))
    s = circus.create_story("s", pop, "ID", timer_gen=timer, activity_gen=timer.activity(5, per="1D"))
    s.set_operations(
        circus.get_generator("seq").ops.generate("N"),
        FieldLogger("s", ["ID", "N"]),
        later.ops.force_act_next("ID", delay="20h"),
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    circus = Circus("tamper", 3, START)
    pop = circus.create_population("p", 200)
    pop.create_attribute("A", init_gen=NumpyRandomGenerator("normal", seed=1))
    friends = pop.create_relationship("friends", pop)
    friends.add_relations([0, 1, 2], [3, 4, 5])
    circus.attach_generator("seq", SequencialGenerator(prefix="n"))
    circus.attach_generator("noise", NumpyRandomGenerator("normal", loc=0.0, scale=1.0))
    add_stories(circus)
    circus.run("10h")
    circus.context("build").rng("x").random()
    return circus.save(tmp_path_factory.mktemp("ckpt") / "c")


def tampered(saved: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    meta = json.loads((copy / "circus.json").read_text())
    edit(meta)
    (copy / "circus.json").write_text(json.dumps(meta))
    return copy


def delete(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node = meta
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return edit


def set_(value: Any, *keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        node = meta
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


CASES = {
    "missing name": (delete("name"), "key 'name' is missing"),
    "missing clock": (delete("clock"), "key 'clock' is missing"),
    "missing step_count": (delete("clock", "step_count"), "key 'clock.step_count' is missing"),
    "step_count text": (set_("ten", "clock", "step_count"), "key 'clock.step_count' must be a int, got 'ten'"),
    "step_count negative": (set_(-4, "clock", "step_count"), "'clock.step_count' must be >= 0, got -4"),
    "step_count float": (set_(1.5, "clock", "step_count"), "key 'clock.step_count' must be a int, got 1.5"),
    "step_count bool": (set_(True, "clock", "step_count"), "key 'clock.step_count' must be a int, got True"),
    "bad start": (set_("yesterday", "clock", "start"), "yesterday"),
    "step zero": (set_(0, "clock", "step_seconds"), "clock step"),
    "seed negative": (set_(-5, "master_seed"), "-5"),
    "seed text": (set_("x", "master_seed"), "key 'master_seed' must be a int, got 'x'"),
    "populations not a list": (set_("p", "populations"), "key 'populations' must be a list, got 'p'"),
    "population not a name": (set_([3], "populations"), "key 'populations[0]' must be a str, got 3"),
    "relationship unknown population": (
        set_([{"population": "ghost", "name": "friends", "to_population": "p"}], "relationships"),
        "key 'relationships[0].population' names population 'ghost'",
    ),
    "relationship without name": (
        set_([{"population": "p", "to_population": "p"}], "relationships"),
        "key 'relationships[0].name' is missing",
    ),
    "unknown bit generator": (
        set_({"story:timer": {"bit_generator": "Mersenne", "state": {}}}, "stories", "s", "rngs"),
        "key 'stories.s.rngs.story:timer' is invalid",
    ),
    "rng state garbage": (
        set_({"story:timer": {"bit_generator": "PCG64", "state": "zzz"}}, "stories", "s", "rngs"),
        "key 'stories.s.rngs.story:timer' is invalid",
    ),
    "context rng garbage": (set_({"x": 42}, "contexts", "build"), "key 'contexts.build.x' is invalid"),
    "generator type unknown": (set_({"type": "quantum"}, "generators", "noise", "config"), "generators.noise"),
    "generator config empty": (set_({}, "generators", "noise", "config"), "generators.noise"),
    "generator state wrong": (set_({"counter": "many"}, "generators", "seq", "state"), "generators.seq"),
    "numpy method unknown": (
        set_({"type": "numpy", "method": "nope", "parameters": {}}, "generators", "noise", "config"),
        "generators.noise",
    ),
    "story file not a number": (set_("zero", "stories", "s", "file"), "key 'stories.s.file' must be a int"),
    "story tables not names": (set_(["../x"], "stories", "s", "tables"), "key 'stories.s.tables' must list"),
    "story states not a list": (set_("default", "stories", "s", "states"), "key 'stories.s.states' must be a list"),
    "stories not an object": (set_([], "stories"), "key 'stories' must be a dict"),
    "empty object": (lambda meta: meta.clear(), "has format version None"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_tampered_circus_json_is_a_checkpoint_error_naming_file_and_key(saved: Path, tmp_path: Path, case: str) -> None:
    edit, message = CASES[case]
    path = tampered(saved, tmp_path, edit)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError) as info:
        Circus.load(path, add_stories)
    text = str(info.value)
    assert message in text, text
    assert "circus.json" in text or "format version" in text or str(path) in text, text
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before  # nothing touched


@pytest.mark.parametrize("content", ["", "{", "[1, 2]", "null", '"text"', "\x00\x01"])
def test_unreadable_circus_json_is_a_checkpoint_error(saved: Path, tmp_path: Path, content: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    (copy / "circus.json").write_text(content)
    with pytest.raises(CheckpointError, match=r"circus\.json"):
        Circus.load(copy, add_stories)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("timer", None, "has no column 'timer'"),
        ("state", [99] * 200, "states outside 0..0"),
        ("next_mass", ["x"] * 200, "column 'next_mass'"),
    ],
)
def test_tampered_story_table_is_a_checkpoint_error(
    saved: Path, tmp_path: Path, column: str, values: list | None, message: str
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    meta = json.loads((copy / "circus.json").read_text())
    file = copy / "stories" / f"{meta['stories']['s']['file']}.members.parquet"
    table = pq.read_table(file)
    i = table.column_names.index(column)
    table = table.remove_column(i) if values is None else table.set_column(i, column, pa.array(values))
    pq.write_table(table, file)
    with pytest.raises(CheckpointError, match=message) as info:
        Circus.load(copy, add_stories)
    assert "story 's'" in str(info.value)


def test_truncated_story_tables_and_missing_reactions_are_checkpoint_errors(saved: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(saved, copy)
    meta = json.loads((copy / "circus.json").read_text())
    file = copy / "stories" / f"{meta['stories']['s']['file']}.members.parquet"
    file.write_bytes(file.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="cannot read"):
        Circus.load(copy, add_stories)
    copy2 = tmp_path / "copy2"
    shutil.copytree(saved, copy2)
    (copy2 / "stories" / f"{meta['stories']['later']['file']}.reactions.parquet").unlink()
    with pytest.raises(CheckpointError, match="reactions"):
        Circus.load(copy2, add_stories)


def test_the_untampered_checkpoint_loads(saved: Path) -> None:
    circus = Circus.load(saved, add_stories)
    assert len(circus.get_story("later").reaction_due) > 0
