"""The music scenarios (trumania examples 3 and 4): songs built by a Chain at build time, listens
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

from circus_core import (
    Chain,
    CheckpointVersionError,
    Circus,
    CircusError,
    DefaultDailyTimerGenerator,
    WorkHoursTimerGenerator,
)
from circus_core.io import DB
from pipelines.scenarios import get_scenario, music, music_db

USERS = 500
SONGS_PER_GENRE = 200
FRIDAY = "2026-01-09T00:00:00+00:00"  # Fri, Sat, Sun, Mon: two work days around a weekend
WORK_DAYS = 2
WORK_STEPS_PER_DAY = 8  # 9:00-17:00 in 1-hour steps


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


def poisson_dispersion(counts: np.ndarray, mu: np.ndarray) -> tuple[float, float]:
    """Pearson's dispersion statistic ``D = sum((c - mu)^2 / mu)`` of independent Poisson(mu)
    counts, and its sd: each term has mean 1 and variance ``2 + 1 / mu`` (Poisson central
    moments mu2 = mu, mu4 = mu + 3 mu^2), so D has mean len(counts).  Under-dispersed counts (a
    member firing at most once per step: binomial) give D well below, over-dispersed above."""
    d = float(((counts - mu) ** 2 / mu).sum())
    return d, float(np.sqrt((2 + 1 / mu).sum()))


def test_listens_per_user_and_work_day_follow_activity(run):
    """Each user's listens are a Poisson process over the work hours with the drawn number of
    listens per work day as its mean: over the 2 work days of the run, Poisson(2 n)."""
    circus, listens, _ = run
    story = circus.get_story("listen")
    users = circus.get_population("users")
    n = music.events_per_work_day(story.timer_gen, story.activity[0])  # expected listens per work day
    mu = n * WORK_DAYS
    counts = listens["USER_ID"].value_counts().reindex(users.ids, fill_value=0).to_numpy()
    # every user inside its Poisson(mu) central interval of mass 1 - 1e-6 (exact Poisson tails,
    # skewed at these means): P(any of 500 outside) <= 5e-4
    low, high = stats.poisson.interval(1 - 1e-6, mu)
    assert ((counts >= low) & (counts <= high)).all()
    # so every user's mean listens per work day is in [10, 30] up to that Poisson noise
    lw = music.LISTENS_PER_WORK_DAY
    assert (n >= lw["low"] - 1e-9).all() and (n <= lw["high"] + 1e-9).all()
    assert (counts / WORK_DAYS >= stats.poisson.ppf(1e-6, lw["low"] * WORK_DAYS) / WORK_DAYS).all()
    assert (counts / WORK_DAYS <= stats.poisson.isf(1e-6, lw["high"] * WORK_DAYS) / WORK_DAYS).all()
    # all users together: the total is Poisson(sum mu), sd ~141 for ~20,000 listens (0.7 %), so
    # the activity is honoured exactly (the old one-listen-per-hour law gave ~7 a work day, not 20)
    assert abs(counts.sum() - mu.sum()) < 5 * np.sqrt(mu.sum())
    # Poisson, not binomial: the per-user spread matches var = mean (5 sd of the dispersion)
    d, sd = poisson_dispersion(counts, mu)
    assert abs(d - USERS) < 5 * sd, (d, sd)
    # the overall mean listens per user and work day is ~20: noise from the 500 activity draws
    # (sd <= 5 each) plus the Poisson noise of the total, 5 sigma
    sd_mean = np.sqrt(lw["sd"] ** 2 / USERS + mu.sum() / (USERS * WORK_DAYS) ** 2)
    assert abs(counts.sum() / (USERS * WORK_DAYS) - lw["mean"]) < 5 * sd_mean


def test_users_listen_several_times_within_one_hour(run):
    """~2.5 listens an hour per user: with 1-hour steps a user executes ``listen`` several times
    in one step (one story_data row per event of the step).  Over the 16 work hours of the run a user's listens in one
    hour are Poisson(n / 8), independently from hour to hour."""
    circus, listens, _ = run
    story = circus.get_story("listen")
    lam = music.events_per_work_day(story.timer_gen, story.activity[0]) / WORK_STEPS_PER_DAY
    per_hour = listens.groupby([listens["USER_ID"], listens["TIMESTAMP"].dt.floor("h")]).size()
    assert per_hour.max() > 5  # several listens per user-hour (P(>= 6) ~ 4 % at 2.5 an hour)
    # user-hours with k listens, k = 0, 1, 2, >= 3: each of the 500 x 16 user-hours falls in
    # class k with the Poisson(lam_i) probability; the count of a class is a sum of independent
    # Bernoulli trials: within 5 sd (sqrt sum p (1 - p)) of its mean
    hours = WORK_DAYS * WORK_STEPS_PER_DAY
    assert per_hour.index.get_level_values(1).nunique() == hours
    k = np.minimum(per_hour.to_numpy(), 3)
    observed = np.bincount(k, minlength=4)
    observed[0] = USERS * hours - len(per_hour)  # user-hours without a listen leave no row
    pmf = np.column_stack([stats.poisson.pmf(j, lam) for j in range(3)])
    p = np.column_stack([pmf, 1 - pmf.sum(axis=1)])
    expected = hours * p.sum(axis=0)
    sd = np.sqrt(hours * (p * (1 - p)).sum(axis=0))
    assert (np.abs(observed - expected) < 5 * sd).all(), (observed, expected, sd)


def test_listens_spread_evenly_over_the_work_hours(run):
    """The work-hours profile is flat: the 16 hourly counts are independent Poisson of the same
    mean (chi-square, 15 degrees of freedom)."""
    _, listens, _ = run
    hourly = listens["TIMESTAMP"].dt.floor("h").value_counts().to_numpy()
    assert len(hourly) == WORK_DAYS * WORK_STEPS_PER_DAY
    assert stats.chisquare(hourly).pvalue > 1e-4


def test_listened_songs_belong_to_the_selected_genre(run):
    circus, listens, _ = run
    assert list(listens.columns) == list(music.LISTEN_SCHEMA)
    repo = circus.get_population("music_repository")
    assert (
        listens["GENRE"].astype(str).to_numpy()
        == repo.get_attribute("GENRE_NAME").get_values(listens["GENRE_ID"]).astype(str).to_numpy()
    ).all()
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

    # volume: Poisson(sum 2 n) share attempts (see the listens), each dropped independently
    # with probability 1 / 500 (a self-share): the logged count is Poisson of the thinned mean
    n = music.events_per_work_day(share.timer_gen, share.activity[0])
    sw = music.SHARES_PER_WORK_DAY
    assert n.min() >= sw["low"] - 1e-9 and n.max() <= sw["high"] + 1e-9
    expected = (n * WORK_DAYS).sum() * (1 - 1 / USERS)
    assert abs(len(shares) - expected) < 5 * np.sqrt(expected)


# --- activity levels ---------------------------------------------------------------------------
def test_work_day_activity_is_five_work_days_a_week_whatever_the_step():
    """n listens per work day = 5 n per week (the timer's period), for any clock step and any
    n: the engine honours activity levels exactly, so nothing depends on the step."""
    n = np.array([0.0, 1.0, 10.0, 20.0, 30.0, 100.0])
    for step in ("10min", "1h"):
        circus = Circus("t", 1, music.SCENARIO.start, step)
        timer = WorkHoursTimerGenerator(circus.clock, *music.WORK_HOURS)
        act = music.work_day_activity(timer, n)
        np.testing.assert_allclose(act, 5 * n)
        np.testing.assert_allclose(music.events_per_work_day(timer, act), n)
        # not timer.activity(n, per="1D"): that spreads 7 days' worth over the 5 work days
        assert timer.activity(1, per="1D") == 7
    with pytest.raises(CircusError, match="weekly timer"):
        music.work_day_activity(DefaultDailyTimerGenerator(circus.clock), [20.0])


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
        pd.testing.assert_frame_equal(songs.to_dataframe().astype(expected.dtypes), expected, check_index_type=False)
        rel = circus.get_population("music_repository").get_relationship("songs")
        assert rel.to_population is songs  # re-attached to the loaded songs population
        edges = rel.get_relations()
        genres = circus.get_population("music_repository").get_attribute("GENRE_NAME")
        assert len(edges) == 500
        assert (
            songs.get_attribute("SONG_GENRE").get_values(edges["to"]).astype(str).to_numpy()
            == genres.get_values(edges["from"]).astype(str).to_numpy()
        ).all()

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
