"""The music scenarios (seed 000 examples 3 and 4): songs built by a Chain at build time, listens
in work hours at 10-30 per user per work day, a Chain shared by the listen and share stories,
the song library kept in and reloaded from the DB, restarts and determinism."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from circus_core import DB, Chain, CheckpointVersionError, Circus, CircusError, WorkHoursTimerGenerator
from pipelines.scenarios import get_scenario, music, music_db

USERS = 500
SONGS_PER_GENRE = 200
FRIDAY = "2026-01-09T00:00:00+00:00"  # Fri, Sat, Sun, Mon: two work days around a weekend
WORK_DAYS = 2
WORK_STEPS_PER_DAY = 48  # 9:00-17:00 in 10-minute steps


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def assert_same_logs(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> None:
    assert sorted(a) == sorted(b)
    for log_id in a:
        assert a[log_id].num_rows > 0
        assert parquet_bytes(a[log_id]) == parquet_bytes(b[log_id]), log_id


@pytest.fixture(scope="module")
def run() -> tuple[Circus, pd.DataFrame, pd.DataFrame]:
    """A music circus started on a Friday, run for 4 days (two work days and a weekend)."""
    circus = Circus("music", music.SCENARIO.seed, FRIDAY, music.SCENARIO.step)
    music.build_with(circus, USERS, SONGS_PER_GENRE)
    music.add_stories(circus)
    logs = circus.run("4D")
    return circus, logs["song_listens"].to_pandas(), logs["song_shares"].to_pandas()


# --- build: songs created by a Chain -----------------------------------------------------------
def test_songs_population_is_built_genre_by_genre(run):
    circus, _, _ = run
    songs = circus.get_population("songs").to_dataframe()
    assert len(songs) == len(music.GENRES) * SONGS_PER_GENRE
    assert songs.index.is_unique
    assert list(songs.columns) == list(music.SONG_ATTRIBUTES)
    assert songs["SONG_GENRE"].value_counts().to_dict() == dict.fromkeys(music.GENRES, SONGS_PER_GENRE)
    # attributes created empty took the type of the generated values
    assert songs["RECORDING_YEAR"].dtype.kind == "i" and songs["DURATION"].dtype.kind == "i"
    assert songs["RECORDING_YEAR"].between(*music.RECORDING_YEARS, inclusive="left").all()
    d = music.DURATION_SECONDS
    assert songs["DURATION"].between(d["min"], d["max"]).all()
    assert songs["ARTIST_NAME"].nunique() > 100 and songs["TITLE"].nunique() > 100

    repo = circus.get_population("music_repository")
    assert repo.get_attribute("GENRE_NAME").get_values().tolist() == list(music.GENRES)
    rel = repo.get_relationship("songs")
    assert rel.to_population is circus.get_population("songs")
    edges = rel.get_relations()
    assert len(edges) == len(songs) and edges["to"].is_unique  # every song in exactly one genre
    genre_of_edge = repo.get_attribute("GENRE_NAME").get_values(edges["from"]).to_numpy()
    assert (songs.loc[edges["to"], "SONG_GENRE"].to_numpy() == genre_of_edge).all()


def test_songs_per_genre_scales_with_size():
    assert music.songs_per_genre_for(music.SCENARIO.default_size) == music.MAX_SONGS_PER_GENRE == 1000
    assert music.songs_per_genre_for(2_000) == 200
    assert music.songs_per_genre_for(10) == 10
    assert music.songs_per_genre_for(10**7) == 1000


# --- listen story ------------------------------------------------------------------------------
def test_listens_and_shares_only_in_work_hours(run):
    _, listens, shares = run
    for log in (listens, shares):
        ts = log["TIMESTAMP"]
        assert (ts.dt.day_of_week < 5).all()
        assert ts.dt.hour.between(*music.WORK_HOURS, inclusive="left").all()
    days = listens["TIMESTAMP"].dt.date.astype(str).value_counts()
    assert sorted(days.index) == ["2026-01-09", "2026-01-12"]  # Friday and Monday, nothing at the weekend


def test_activity_levels_are_10_to_30_listens_per_work_day(run):
    circus, _, _ = run
    story = circus.get_story("listen")
    per_day = music.events_per_work_day(story.timer_gen, story.activity[0])
    lw = music.LISTENS_PER_WORK_DAY
    assert per_day.min() >= lw["low"] - 1e-9 and per_day.max() <= lw["high"] + 1e-9
    # clipping at mean -/+ 2 sd puts 2.3% of the users on each bound: about 11 of 500
    assert (np.abs(per_day - lw["low"]) < 1e-9).sum() > 0 and (np.abs(per_day - lw["high"]) < 1e-9).sum() > 0
    # mean of 500 draws whose sd is at most 5 (clipping narrows it): 5 sigma = 5 * 5 / sqrt(500)
    assert abs(per_day.mean() - lw["mean"]) < 5 * lw["sd"] / np.sqrt(USERS)


def test_listens_per_user_and_work_day_follow_activity(run):
    circus, listens, _ = run
    story = circus.get_story("listen")
    users = circus.get_population("users")
    n = music.events_per_work_day(story.timer_gen, story.activity[0])  # expected listens per work day
    counts = listens["USER_ID"].value_counts().reindex(users.ids, fill_value=0).to_numpy()
    # a user fires in each of the 48 work steps of a day with probability p = n / 48
    # (`work_day_activity`): its count over the work days is Binomial(48 * days, p)
    p = n / WORK_STEPS_PER_DAY
    var = WORK_STEPS_PER_DAY * WORK_DAYS * p * (1 - p)
    z_user = (counts - n * WORK_DAYS) / np.sqrt(var)
    assert np.abs(z_user).max() < 5  # 500 users: P(any beyond 5 sigma) ~ 3e-4
    # so every user's mean listens per work day is in [10, 30] up to 5 binomial sd
    lw, sd_user_mean = music.LISTENS_PER_WORK_DAY, np.sqrt(var) / WORK_DAYS
    per_user_mean = counts / WORK_DAYS
    assert (per_user_mean >= lw["low"] - 5 * sd_user_mean).all()
    assert (per_user_mean <= lw["high"] + 5 * sd_user_mean).all()
    # all users together: the binomial noise of the total is tiny, so this checks the timer
    # model (one firing per step at most) is compensated exactly
    z_total = (counts.sum() - (n * WORK_DAYS).sum()) / np.sqrt(var.sum())
    assert abs(z_total) < 5
    # the overall mean listens per user and work day is ~20: noise from the 500 activity draws
    # (sd <= 5 each) plus the binomial noise, 5 sigma
    sd_mean = np.sqrt(music.LISTENS_PER_WORK_DAY["sd"] ** 2 / USERS + var.sum() / (USERS * WORK_DAYS) ** 2)
    assert abs(counts.sum() / (USERS * WORK_DAYS) - 20) < 5 * sd_mean


def test_listened_songs_belong_to_the_selected_genre(run):
    circus, listens, _ = run
    assert list(listens.columns) == list(music.LISTEN_SCHEMA)
    repo = circus.get_population("music_repository")
    assert (listens["GENRE"].astype(str).to_numpy()
            == repo.get_attribute("GENRE_NAME").get_values(listens["GENRE_ID"]).astype(str).to_numpy()).all()
    assert (listens["SONG_GENRE"].astype(str) == listens["GENRE"].astype(str)).all()
    # genres are drawn uniformly: chi-square with 4 degrees of freedom
    observed = listens["GENRE_ID"].value_counts().reindex(repo.ids, fill_value=0).to_numpy()
    assert stats.chisquare(observed).pvalue > 1e-6


def test_logged_details_equal_the_populations(run):
    circus, listens, shares = run
    songs = circus.get_population("songs").to_dataframe()
    users = circus.get_population("users").to_dataframe()
    for log in (listens, shares):
        details = songs.loc[log["SONG_ID"]]
        for attr in music.SONG_ATTRIBUTES:
            assert (log[attr].astype(details[attr].dtype).to_numpy() == details[attr].to_numpy()).all(), attr
        names = users.loc[log["USER_ID"]]
        for attr in ("FIRST_NAME", "LAST_NAME"):
            assert (log[attr].astype(str).to_numpy() == names[attr].astype(str).to_numpy()).all()


# --- share story -------------------------------------------------------------------------------
def test_share_story_reuses_the_listen_chain(run):
    circus, _, shares = run
    listen, share = circus.get_story("listen"), circus.get_story("share")
    listen_chains = [op for op in listen.operations if isinstance(op, Chain)]
    share_chains = [op for op in share.operations if isinstance(op, Chain)]
    assert len(listen_chains) == 1 and share_chains == listen_chains  # the same object in both stories

    assert list(shares.columns) == list(music.SHARE_SCHEMA)
    users = circus.get_population("users").to_dataframe()
    assert shares["SHARED_TO_USER_ID"].isin(users.index).all()
    assert (shares["SHARED_TO_USER_ID"] != shares["USER_ID"]).all()
    recipients = users.loc[shares["SHARED_TO_USER_ID"]]
    for attr in ("FIRST_NAME", "LAST_NAME"):
        assert (shares[f"SHARED_TO_{attr}"].astype(str).to_numpy() == recipients[attr].astype(str).to_numpy()).all()
    assert (shares["SONG_GENRE"].astype(str) == shares["GENRE"].astype(str)).all()

    # volume: Binomial per user as for listens, minus the self-shares dropped (1 / 500)
    n = music.events_per_work_day(share.timer_gen, share.activity[0])
    sw = music.SHARES_PER_WORK_DAY
    assert n.min() >= sw["low"] - 1e-9 and n.max() <= sw["high"] + 1e-9
    p = n / WORK_STEPS_PER_DAY
    expected = (n * WORK_DAYS).sum() * (1 - 1 / USERS)
    sd = np.sqrt((WORK_STEPS_PER_DAY * WORK_DAYS * p * (1 - p)).sum())
    assert abs(len(shares) - expected) < 5 * sd


# --- activity compensation ---------------------------------------------------------------------
def test_work_day_activity_round_trips_and_rejects_impossible_counts():
    circus = Circus("t", 1, music.SCENARIO.start, music.SCENARIO.step)
    timer = WorkHoursTimerGenerator(circus.clock, *music.WORK_HOURS)
    n = np.array([0.0, 1.0, 10.0, 20.0, 30.0, 47.0])
    act = music.work_day_activity(timer, n)
    assert np.allclose(music.events_per_work_day(timer, act), n)
    assert (act[1:] > 5 * n[1:]).all()  # more than the naive n per work day, 5n per week
    with pytest.raises(CircusError, match="48 clock steps"):
        music.work_day_activity(timer, [48.0])
    hourly = Circus("t", 1, music.SCENARIO.start, "1h")
    with pytest.raises(CircusError, match="8 clock steps"):
        music.work_day_activity(WorkHoursTimerGenerator(hourly.clock, *music.WORK_HOURS), [20.0])


# --- determinism and restarts ------------------------------------------------------------------
def test_same_seed_identical_and_restore_continues_byte_identically(tmp_path):
    scenario = get_scenario("music")
    assert scenario is music.SCENARIO
    straight = scenario.create(200)
    day1, day2 = straight.run("1D"), straight.run("1D")

    other = scenario.create(200)
    assert_same_logs(other.run("1D"), day1)  # same seed, same logs
    other.save(tmp_path / "ck")
    restored = scenario.restore(tmp_path / "ck")
    assert_same_logs(restored.run("1D"), day2)

    different = scenario.create(200, seed=99).run("12h")
    assert parquet_bytes(different["song_listens"]) != parquet_bytes(day1["song_listens"])


# --- music_db: the song library in the DB ------------------------------------------------------
def test_music_db_builds_the_library_once_then_loads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUS_DB", str(tmp_path / "db"))
    scenario = get_scenario("music_db")
    assert scenario is music_db.SCENARIO and scenario.add_stories is music.add_stories
    db = DB(tmp_path / "db")
    assert not music_db.has_song_library(db)

    first = Circus("music_db", scenario.seed, scenario.start, scenario.step)
    music_db.build_with(first, 300, songs_per_genre=100)  # no library yet: built, saved, loaded
    scenario.add_stories(first)
    assert music_db.has_song_library(db)
    meta = tmp_path / "db" / music_db.NAMESPACE / "population" / "songs" / "meta.json"
    written = meta.stat().st_mtime_ns

    second = scenario.create(300)  # library found: loaded (songs_per_genre unused)
    assert meta.stat().st_mtime_ns == written

    # the songs are those music's builders make in the library circus, loaded or just created
    library = Circus(music_db.NAMESPACE, music_db.LIBRARY_SEED, scenario.start, scenario.step)
    expected = music.create_songs(library, music.create_music_repository(library), 100).to_dataframe()
    for circus in (first, second):
        songs = circus.get_population("songs")
        assert songs.size == 500
        pd.testing.assert_frame_equal(songs.to_dataframe().astype(expected.dtypes), expected,
                                      check_index_type=False)
        rel = circus.get_population("music_repository").get_relationship("songs")
        assert rel.to_population is songs  # re-attached to the loaded songs population
        edges = rel.get_relations()
        genres = circus.get_population("music_repository").get_attribute("GENRE_NAME")
        assert len(edges) == 500
        assert (songs.get_attribute("SONG_GENRE").get_values(edges["to"]).astype(str).to_numpy()
                == genres.get_values(edges["from"]).astype(str).to_numpy()).all()

    logs1, logs2 = first.run("1D"), second.run("1D")
    assert_same_logs(logs1, logs2)
    listens = logs1["song_listens"].to_pandas()
    assert (listens["SONG_GENRE"].astype(str) == listens["GENRE"].astype(str)).all()
    details = first.get_population("songs").to_dataframe().loc[listens["SONG_ID"]]
    assert (listens["DURATION"].to_numpy() == details["DURATION"].to_numpy()).all()


def test_music_db_empirical_durations_saved_loaded_and_checkpointed(tmp_path):
    circus = Circus("music_db", music_db.SCENARIO.seed, music_db.SCENARIO.start, music_db.SCENARIO.step)
    music_db.build_with(circus, 200, songs_per_genre=100, root=tmp_path / "db")
    music.add_stories(circus)
    durations = circus.get_population("songs").get_attribute("DURATION").get_values()
    counts = durations.value_counts().sort_index()
    gen = circus.get_generator("song_durations")
    assert np.array_equal(np.asarray(gen.values), counts.index.to_numpy())
    assert np.array_equal(gen.weights, counts.to_numpy(dtype=float))
    # samples follow the songs' durations: mean within 5 standard errors
    sample = np.asarray(gen.generate(20_000), dtype=float)
    assert set(np.unique(sample)) <= set(counts.index)
    assert abs(sample.mean() - durations.mean()) < 5 * durations.std() / np.sqrt(len(sample))

    # example 4 step 2: save the built circus, load it, attach the stories, run
    circus.run("1D")
    circus.save(tmp_path / "ck")
    restored = music_db.SCENARIO.restore(tmp_path / "ck")
    assert np.array_equal(np.asarray(restored.get_generator("song_durations").values), counts.index.to_numpy())
    assert_same_logs(restored.run("1D"), circus.run("1D"))


def test_music_db_rebuilds_a_partial_library_and_defaults_to_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("CIRCUS_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    assert music_db.db_root() == tmp_path / ".circus-db"
    db = DB(music_db.db_root())
    music_db.save_song_library(db, songs_per_genre=20)
    assert music_db.has_song_library(db)
    gen_dir = tmp_path / ".circus-db" / music_db.NAMESPACE / "generator" / "song_durations"
    for f in gen_dir.iterdir():
        f.unlink()
    gen_dir.rmdir()
    assert not music_db.has_song_library(db)
    circus = Circus("music_db", 4, music_db.SCENARIO.start, music_db.SCENARIO.step)
    music_db.build_with(circus, 50, songs_per_genre=30)  # root: $CIRCUS_DB unset -> ./.circus-db
    assert music_db.has_song_library(db) and circus.get_population("songs").size == 150


def test_music_db_entry_of_another_format_version_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUS_DB", str(tmp_path))
    music_db.save_song_library(DB(tmp_path), songs_per_genre=20)
    meta: Path = tmp_path / music_db.NAMESPACE / "population" / "songs" / "meta.json"
    content = json.loads(meta.read_text())
    content["format_version"] = 999
    meta.write_text(json.dumps(content))
    with pytest.raises(CheckpointVersionError, match="format version 999") as err:
        music_db.SCENARIO.create(50)
    assert str(meta) in str(err.value)
