"""Shards in the engine (`circus_core.shards`, `Scenario.create(shard=, shards=)`): ids, streams,
reference populations, checkpoints -- and a sharded world behaving like the unsharded one."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from circus_core import Circus, CircusError, FieldLogger, NumpyRandomGenerator, SequencialGenerator
from circus_core.shards import Shard, shard_seed
from circus_core.timers import DefaultDailyTimerGenerator
from pipelines.scenarios import Scenario, all_scenarios, get_scenario

CATALOGUE = 50


def _reference(circus: Circus, size: int) -> None:
    """A catalogue of songs (shared by every shard) with a genre from a generator attached here."""
    genres = circus.attach_generator("genre", NumpyRandomGenerator("choice", a=["rock", "jazz", "pop"]))
    songs = circus.create_population("songs", CATALOGUE, ids_gen=SequencialGenerator(prefix="SONG_", max_length=4))
    songs.create_attribute("GENRE", init_gen=genres)


def _build(circus: Circus, size: int) -> None:
    users = circus.create_population("users", size, ids_gen=SequencialGenerator(prefix="U", max_length=6))
    songs = circus.get_population("songs")
    likes = users.create_relationship("likes", to_population=songs)
    rng = np.random.default_rng(circus.seed_for("likes"))
    for _ in range(3):
        likes.add_relations(users.ids, songs.ids.take(rng.integers(0, CATALOGUE, size)), weights=1.0)


def _stories(circus: Circus) -> None:
    users, songs = circus.get_population("users"), circus.get_population("songs")
    timer = DefaultDailyTimerGenerator(circus.clock)
    story = circus.create_story("listen", users, "USER", timer_gen=timer, activity_gen=timer.activity(5, per="1D"))
    story.set_operations(
        users.get_relationship("likes").ops.select_one("USER", "SONG"),
        songs.ops.lookup("SONG", {"GENRE": "GENRE"}),
        circus.get_generator("genre").ops.generate("MOOD"),
        circus.clock.ops.timestamp("TIME"),
        FieldLogger("listens", cols=["TIME", "USER", "SONG", "GENRE", "MOOD"]),
    )


WORLD = Scenario(
    name="shard_world",
    description="songs shared by every shard, users per shard",
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=11,
    default_size=300,
    build=_build,
    add_stories=_stories,
    logs=("listens",),
    build_reference=_reference,
)


def test_shard_seeds_follow_seedsequence_spawning() -> None:
    """Shard k's root is the k-th spawned child of the root seed (numpy's parallel-stream recipe);
    one shard is the root seed itself, so an unsharded world is unchanged."""
    assert shard_seed(7, 0, 1) == 7
    child = np.random.SeedSequence(7).spawn(3)[2].generate_state(2, np.uint32)
    assert shard_seed(7, 2, 3) == (int(child[0]) << 32 | int(child[1])) >> 1
    seeds = {shard_seed(7, k, 4) for k in range(4)}
    assert len(seeds) == 4 and 7 not in seeds


def test_member_ids_are_unique_across_shards_and_visible() -> None:
    circuses = [WORLD.create(301, shard=k, shards=3) for k in range(3)]
    users = [c.get_population("users").plain_ids() for c in circuses]
    assert [len(u) for u in users] == [101, 100, 100]  # the first size % N shards hold one more
    assert all(pd.Series(u).str.startswith(f"s{k}_U").all() for k, u in enumerate(users))
    assert len(set().union(*map(set, users))) == 301
    # integer ids: i * N + k, the whole world's ids 0..size-1 between them
    telecom = get_scenario("telecom")
    parts = [telecom.create(1001, shard=k, shards=2).get_population("subscribers") for k in range(2)]
    assert all((np.asarray(p.ids) % 2 == k).all() for k, p in enumerate(parts))
    assert sorted(np.concatenate([p.ids for p in parts]).tolist()) == list(range(1001))


def test_interleaved_ids_find_their_members_and_refuse_others() -> None:
    pop = Circus("c", 1, "2026-01-05T00:00:00+00:00", shard=Shard(1, 3)).create_population("p", 5)
    assert list(pop.ids) == [1, 4, 7, 10, 13]
    assert pop.positions(np.array([13, 1, 7])).tolist() == [4, 0, 2]
    for stranger in (0, 2, 16, -2):  # another shard's ids, past the end, negative
        with pytest.raises(CircusError, match=r"not members of population 'p'"):
            pop.positions(np.array([4, stranger]))


def test_reference_populations_are_identical_in_every_shard_and_read_only() -> None:
    a, b = (WORLD.create(200, shard=k, shards=2) for k in range(2))
    songs_a, songs_b = a.get_population("songs"), b.get_population("songs")
    assert songs_a.to_dataframe().equals(songs_b.to_dataframe())
    assert list(songs_a.plain_ids()[:2]) == ["SONG_0000", "SONG_0001"]  # not shard-prefixed
    # ...and the same as in the unsharded world: built from the root seed and the world's size
    assert songs_a.to_dataframe().equals(WORLD.create(200).get_population("songs").to_dataframe())
    assert a.reference == ["songs"]
    with pytest.raises(CircusError, match=r"population 'songs' is a reference population of a sharded world"):
        songs_a.get_attribute("GENRE").update(["SONG_0001"], ["folk"])


def test_shards_draw_different_streams_even_from_reference_generators() -> None:
    """Generators attached while building the reference are re-rooted on the shard's seed: the
    shards' stories do not repeat each other's draws."""
    logs = [WORLD.create(400, shard=k, shards=2).run("1D")["listens"] for k in range(2)]
    moods = [t.column("MOOD").to_pylist()[:200] for t in logs]
    assert moods[0] != moods[1]
    songs = [t.column("SONG").to_pylist()[:200] for t in logs]
    assert songs[0] != songs[1]


def test_a_shard_restarts_from_its_checkpoint_byte_for_byte(tmp_path: Path) -> None:
    whole = WORLD.create(200, shard=1, shards=2)
    expected = [whole.run("1D")["listens"] for _ in range(2)]
    part = WORLD.create(200, shard=1, shards=2)
    first = part.run("1D")["listens"]
    part.save(tmp_path / "ck")
    restored = WORLD.restore(tmp_path / "ck")
    assert (restored.shard, restored.root_seed, restored.master_seed) == (part.shard, 11, part.master_seed)
    assert restored.get_population("songs").read_only  # still refused after a restart
    second = restored.run("1D")["listens"]
    assert first.equals(expected[0]) and second.equals(expected[1])


def test_a_one_shard_world_is_the_unsharded_world() -> None:
    assert WORLD.create(150, shards=1).run("1D")["listens"].equals(WORLD.create(150).run("1D")["listens"])


def test_bad_shard_counts_are_refused_with_the_value() -> None:
    with pytest.raises(CircusError, match=r"shard count must be a positive integer, got 0"):
        dataclasses.replace(WORLD, shards=0)
    with pytest.raises(CircusError, match=r"shard index must be in 0..1, got 2"):
        WORLD.create(100, shard=2, shards=2)
    with pytest.raises(CircusError, match=r"size 3 is smaller than its 4 shards"):
        WORLD.create(3, shards=4)


def test_a_sharded_telecom_world_behaves_like_the_unsharded_one() -> None:
    """Calls per subscriber and day: the same law sharded or not.  Per-subscriber counts are
    independent draws of one distribution in both worlds, so the difference of the two sample
    means is ~normal with variance s1^2/n1 + s2^2/n2; 4.5 standard errors leave a false alarm
    probability below 1e-5."""
    telecom = get_scenario("telecom")
    size = 4000

    def calls_per_member(circuses: list[Circus]) -> np.ndarray:
        counts = []
        for c in circuses:
            voice = c.run("1D")["voice_cdr"].column("A_ID").to_numpy()
            ids = np.asarray(c.get_population("subscribers").ids)
            counts.append(pd.Series(voice).value_counts().reindex(ids, fill_value=0).to_numpy())
        return np.concatenate(counts)

    sharded = calls_per_member([telecom.create(size, shard=k, shards=2) for k in range(2)])
    whole = calls_per_member([telecom.create(size)])
    assert len(sharded) == len(whole) == size
    se = math.sqrt(sharded.var(ddof=1) / size + whole.var(ddof=1) / size)
    assert abs(sharded.mean() - whole.mean()) < 4.5 * se, (sharded.mean(), whole.mean(), se)
    # and no call crosses shards: every callee is in the caller's shard
    part = telecom.create(size, shard=1, shards=2)
    voice = part.run("1D")["voice_cdr"]
    assert (voice.column("B_ID").to_numpy() % 2 == 1).all()


@pytest.mark.parametrize("name", sorted(all_scenarios()))
def test_every_shipped_scenario_runs_sharded(name: str) -> None:
    """Two shards of every shipped world build, run a day with events, and hold disjoint members
    (reference populations, shared, aside), whatever the model: arrivals mint shard-unique ids."""
    scenario = get_scenario(name)
    shards = [scenario.create(400, shard=k, shards=2) for k in range(2)]
    rows = [sum(t.num_rows for t in c.run("1D").values()) for c in shards]
    assert all(n > 0 for n in rows), rows
    for pop in shards[0].populations:
        if pop in shards[0].reference:
            continue
        a, b = (set(pd.Series(c.get_population(pop).plain_ids()).tolist()) for c in shards)
        assert not a & b, (name, pop, sorted(a & b)[:5])


def test_the_music_catalogue_is_shared_by_the_shards() -> None:
    music = get_scenario("music")
    a, b = (music.create(400, shard=k, shards=2) for k in range(2))
    assert a.reference == ["music_repository", "songs"]
    assert a.get_population("songs").to_dataframe().equals(b.get_population("songs").to_dataframe())
    assert a.get_population("songs").size == music.create(400).get_population("songs").size


def test_circus_run_runs_every_shard_with_the_bytes_of_the_pipeline(tmp_path: Path) -> None:
    """``circus run`` (pipelines.run_local) on a 2-shard world simulates both shards, part by
    part, restartable per shard: the log files are those of the Dagster assets' shard tasks."""
    import dataclasses
    import hashlib

    from pipelines.daystore import INITIAL, DayStore
    from pipelines.run_local import run
    from pipelines.scenarios import get_scenario
    from pipelines.shards import run_sharded
    from resources.runners import InProcessRunner
    from resources.storage import LocalBackend

    scenario = dataclasses.replace(get_scenario("telecom"), shards=2)
    days = ("2026-01-05", "2026-01-06")
    run(scenario, 1, tmp_path / "run", 600, "parquet", progress=lambda *_: None)
    run(scenario, 2, tmp_path / "run", 600, "parquet", progress=lambda *_: None)  # resumes both shards
    store = DayStore(LocalBackend(tmp_path / "dagster"), scenario)
    run_sharded(store, INITIAL, 2, InProcessRunner(), build=(600, None), log=lambda _: None)
    for day in days:
        run_sharded(store, day, 2, InProcessRunner(), log=lambda _: None)

    def digests(root: Path) -> dict[str, str]:
        logs = root / "telecom" / "logs"
        return {str(p.relative_to(logs)): hashlib.sha256(p.read_bytes()).hexdigest() for p in logs.rglob("*.parquet")}

    expected = digests(tmp_path / "dagster")
    assert {f"voice_cdr/date={d}/part-0000{k}.parquet" for d in days for k in (0, 1)} <= set(expected)
    assert digests(tmp_path / "run") == expected
    assert sorted(p.name for p in (tmp_path / "run" / "telecom" / "checkpoints").iterdir()) == ["shard-0", "shard-1"]
