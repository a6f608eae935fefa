"""Music streaming: trumania, example 3 (steps 1 to 4) as a scenario.

Listeners listen to songs, and share songs with each other.  What the seed asks for, and where:

- step 1: ``music_repository``, one member per genre (``GENRE_NAME``), with a ``songs``
  relationship genre -> song, filled with `add_grouped_relations`;
- step 2: ``users`` (``FIRST_NAME``, ``LAST_NAME``) and the ``listen`` story: listens happen in
  work hours only (Monday to Friday, 9:00 to 17:00), each user listening to a number of songs
  per work day drawn once from a normal distribution around 20 with the extremes cut out
  (clipped to [10, 30]);
- step 3: the operations "look up the user's names, pick a genre, pick a song of that genre,
  look up the song's details" form one `Chain` (`song_chain`) used by both the ``listen`` and
  the ``share`` story (which first picks a random other user as the recipient);
- step 4: the ``songs`` population is created empty and filled at build time by running, for
  each genre, a Chain of generators (artist, title, duration, recording year, genre) on
  ``Story.init_story_data("SONG_ID", ids)`` and `Population.update` (`create_songs`).

The clock step is one hour, as in the other scenarios.  A listener can listen to several songs
within one hour: the engine executes a member's story once per event of its timer that falls
in the step, however many, so each user's listens are exactly a Poisson process over the
work hours with the drawn number of listens per work day as its mean (`work_day_activity` only
converts "per work day" into the timer's weekly unit).

`create_music_repository`, `create_songs` and `create_users` are separate functions because
the ``music_db`` scenario (example 4) reuses the first two to build the song library it keeps in
the DB.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from circus_core import (
    Apply,
    Chain,
    Circus,
    CircusError,
    ConstantGenerator,
    CyclicTimerGenerator,
    DropRow,
    FakerGenerator,
    FieldLogger,
    NumpyRandomGenerator,
    Population,
    SequencialGenerator,
    Story,
    WorkHoursTimerGenerator,
)
from pipelines.scenarios.base import Scenario

__all__ = [
    "GENRES",
    "LISTENS_PER_WORK_DAY",
    "LISTEN_SCHEMA",
    "SCENARIO",
    "SHARE_SCHEMA",
    "SONG_ATTRIBUTES",
    "add_stories",
    "build",
    "build_catalogue",
    "build_listeners",
    "build_with",
    "create_music_repository",
    "create_songs",
    "create_users",
    "events_per_work_day",
    "song_chain",
    "songs_per_genre_for",
    "work_day_activity",
]

GENRES = ("blues", "jazz", "electro", "pop", "rock")
SONG_ATTRIBUTES = ("ARTIST_NAME", "SONG_GENRE", "TITLE", "RECORDING_YEAR", "DURATION")
#: Listens per user per work day: normal(mean, sd), clipped to [low, high] (seed: "around 20,
#: nobody below 10, nobody above 30").
LISTENS_PER_WORK_DAY = {"mean": 20.0, "sd": 5.0, "low": 10.0, "high": 30.0}
#: Shares per user per work day: uniform in [low, high].
SHARES_PER_WORK_DAY = {"low": 0.5, "high": 3.0}
WORK_HOURS = (9, 17)
WORK_DAYS_PER_WEEK = 5
#: Songs per genre of the seed (example 3 step 1); smaller circuses get fewer (`songs_per_genre_for`).
MAX_SONGS_PER_GENRE = 1000
#: Song durations in seconds: normal(mean, sd) rounded, clipped to [min, max].
DURATION_SECONDS = {"mean": 240.0, "sd": 50.0, "min": 60, "max": 600}
RECORDING_YEARS = (1950, 2026)  # [low, high)
_MAX_POOL = 5_000  # Faker values generated per name generator (then drawn from with numpy)

_USER_FIELDS = ("USER_ID", "FIRST_NAME", "LAST_NAME")
_SONG_FIELDS = ("GENRE_ID", "GENRE", "SONG_ID", *SONG_ATTRIBUTES)
LISTEN_SCHEMA = ("TIMESTAMP", *_USER_FIELDS, *_SONG_FIELDS)
SHARE_SCHEMA = (
    "TIMESTAMP",
    *_USER_FIELDS,
    "SHARED_TO_USER_ID",
    "SHARED_TO_FIRST_NAME",
    "SHARED_TO_LAST_NAME",
    *_SONG_FIELDS,
)


# --- build ----------------------------------------------------------------------------------
def songs_per_genre_for(size: int) -> int:
    """The seed's 1000 songs per genre for its 10,000 listeners; one song per 10 listeners
    below that (at least 10), so small test circuses stay small."""
    return int(min(MAX_SONGS_PER_GENRE, max(10, size // 10)))


def create_music_repository(circus: Circus) -> Population:
    """Example 3 step 1: one member per genre (``GENRE_NAME``); its ``songs`` relationship is
    created and filled by `create_songs`, once the songs population exists to point to."""
    repo = circus.create_population("music_repository", size=len(GENRES))
    repo.create_attribute("GENRE_NAME", init_values=list(GENRES))
    return repo


def create_songs(circus: Circus, repository: Population, songs_per_genre: int) -> Population:
    """Example 3 step 4: the ``songs`` population, created empty and filled genre by genre by
    running a Chain of generators on ``Story.init_story_data``, plus ``repository``'s ``songs``
    relationship to it.

    The Chain runs in ``circus.context("songs_init")``, whose streams continue from genre to
    genre and are saved in checkpoints; the Faker pools (artists, titles) have their own seeds
    derived from the circus seed.  Song ids come from the attached ``song_id_gen``.
    """
    if songs_per_genre <= 0:
        raise CircusError(f"create_songs: songs_per_genre must be positive, got {songs_per_genre}")
    song_ids = circus.attach_generator("song_id_gen", SequencialGenerator(prefix="SONG_", max_length=7))
    songs = circus.create_population("songs", size=0, ids_gen=song_ids)
    for name in SONG_ATTRIBUTES:
        songs.create_attribute(name, init_values=[])  # typed by the first update
    repo_songs = repository.create_relationship("songs", songs)

    total = songs_per_genre * repository.size
    # about 3 songs per artist; Faker pools no bigger than needed (Faker is slow)
    artist = FakerGenerator(
        "name", seed=circus.seed_for("songs_init/artist"), pool_size=min(_MAX_POOL, max(10, total // 3))
    )
    title = FakerGenerator("catch_phrase", seed=circus.seed_for("songs_init/title"), pool_size=min(_MAX_POOL, total))
    d = DURATION_SECONDS
    duration = NumpyRandomGenerator("normal", loc=d["mean"], scale=d["sd"]).map(
        vectorized_f=lambda x: np.clip(np.round(x), d["min"], d["max"]).astype(np.int64)
    )
    year = NumpyRandomGenerator("integers", low=RECORDING_YEARS[0], high=RECORDING_YEARS[1])
    ctx = circus.context("songs_init")
    genre_ids = repository.ids
    genre_names = repository.get_attribute("GENRE_NAME").get_values(genre_ids)
    for genre_id, genre in zip(genre_ids, genre_names, strict=True):  # 5 genres: build time only
        init_attributes = Chain(
            artist.ops.generate("ARTIST_NAME"),
            title.ops.generate("TITLE"),
            duration.ops.generate("DURATION"),
            year.ops.generate("RECORDING_YEAR"),
            ConstantGenerator(genre).ops.generate("SONG_GENRE"),
        )
        ids = song_ids.generate(songs_per_genre)
        new_songs, _ = init_attributes(Story.init_story_data("SONG_ID", ids), ctx)
        songs.update(new_songs, id_col="SONG_ID")
        repo_songs.add_grouped_relations([genre_id], [ids])
    return songs


def create_users(circus: Circus, size: int) -> Population:
    """Example 3 step 2: ``size`` listeners with a first and a last name."""
    users = circus.create_population("users", size=size)
    pool = min(_MAX_POOL, size)
    users.create_attribute(
        "FIRST_NAME", init_gen=FakerGenerator("first_name", seed=circus.seed_for("users/first"), pool_size=pool)
    )
    users.create_attribute(
        "LAST_NAME", init_gen=FakerGenerator("last_name", seed=circus.seed_for("users/last"), pool_size=pool)
    )
    return users


def build_with(circus: Circus, size: int, songs_per_genre: int | None = None) -> None:
    """`build` with an explicit number of songs per genre (tests use small ones)."""
    repo = create_music_repository(circus)
    create_songs(circus, repo, songs_per_genre_for(size) if songs_per_genre is None else songs_per_genre)
    create_users(circus, size)


def build(circus: Circus, size: int) -> None:
    """Genres, songs (`songs_per_genre_for` ``size``) and ``size`` listeners."""
    build_with(circus, size)


def build_catalogue(circus: Circus, size: int) -> None:
    """The scenario's reference populations: genres and songs for a world of ``size`` listeners,
    shared by every shard of a sharded world (`circus_core.shards`)."""
    create_songs(circus, create_music_repository(circus), songs_per_genre_for(size))


def build_listeners(circus: Circus, size: int) -> None:
    """A shard's listeners (all of them in an unsharded world); `build_catalogue` came first."""
    create_users(circus, size)


# --- activity levels ------------------------------------------------------------------------
def work_day_activity(timer: CyclicTimerGenerator, per_work_day: Any) -> np.ndarray:
    """Activity levels (for ``timer``) that give ``per_work_day`` executions per work day on
    average, whatever the clock step.

    Activity levels count events per timer period: a week for `WorkHoursTimerGenerator`, which
    holds 5 work days, so ``n`` a work day is ``5 n`` a week (``timer.activity(n, per="1D")``
    would be ``7 n`` a week: 1.4 n per work day, the weekend's share moved onto the work days).
    """
    if timer.period != pd.Timedelta(days=7):
        raise CircusError(
            f"work_day_activity needs a weekly timer (Monday to Friday work days), got a period of {timer.period}"
        )
    return np.asarray(per_work_day, dtype=float) * timer.activity(WORK_DAYS_PER_WEEK, per="7D")


def events_per_work_day(timer: CyclicTimerGenerator, activity: Any) -> np.ndarray:
    """The inverse of `work_day_activity`: expected executions per work day of ``activity``."""
    return np.asarray(activity, dtype=float) / work_day_activity(timer, 1.0)


# --- stories --------------------------------------------------------------------------------
def song_chain(circus: Circus) -> Chain:
    """Example 3 step 3: the operations shared by the listen and the share story: the acting
    user's names, a random genre, a random song of that genre and the song's details."""
    users = circus.get_population("users")
    repo = circus.get_population("music_repository")
    songs = circus.get_population("songs")
    return Chain(
        users.ops.lookup("USER_ID", select={"FIRST_NAME": "FIRST_NAME", "LAST_NAME": "LAST_NAME"}),
        repo.ops.select_one("GENRE_ID"),
        repo.ops.lookup("GENRE_ID", select={"GENRE_NAME": "GENRE"}),
        repo.get_relationship("songs").ops.select_one(from_field="GENRE_ID", named_as="SONG_ID"),
        songs.ops.lookup("SONG_ID", select={name: name for name in SONG_ATTRIBUTES}),
    )


def _same_user(sender: pd.Series, recipient: pd.Series) -> pd.Series:
    """Nobody shares a song with themselves: those rows are dropped."""
    return sender == recipient


def add_stories(circus: Circus) -> None:
    """The ``listen`` and ``share`` stories, in work hours, sharing `song_chain`."""
    users = circus.get_population("users")
    timer = WorkHoursTimerGenerator(circus.clock, *WORK_HOURS)
    chain = song_chain(circus)

    lw = LISTENS_PER_WORK_DAY
    listens = NumpyRandomGenerator("normal", loc=lw["mean"], scale=lw["sd"]).map(
        vectorized_f=lambda n: work_day_activity(timer, np.clip(n, lw["low"], lw["high"]))
    )
    listen = circus.create_story("listen", users, "USER_ID", timer_gen=timer, activity_gen=listens)
    listen.set_operations(
        chain,
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("song_listens", cols=list(LISTEN_SCHEMA)),
    )

    sw = SHARES_PER_WORK_DAY
    shares = NumpyRandomGenerator("uniform", low=sw["low"], high=sw["high"]).map(
        vectorized_f=lambda n: work_day_activity(timer, n)
    )
    share = circus.create_story("share", users, "USER_ID", timer_gen=timer, activity_gen=shares)
    share.set_operations(
        users.ops.select_one("SHARED_TO_USER_ID"),
        Apply(["USER_ID", "SHARED_TO_USER_ID"], "SELF_SHARE", _same_user),
        DropRow("SELF_SHARE"),
        users.ops.lookup(
            "SHARED_TO_USER_ID", select={"FIRST_NAME": "SHARED_TO_FIRST_NAME", "LAST_NAME": "SHARED_TO_LAST_NAME"}
        ),
        chain,
        circus.clock.ops.timestamp("TIMESTAMP"),
        FieldLogger("song_shares", cols=list(SHARE_SCHEMA)),
    )


SCENARIO = Scenario(
    name="music",
    description=(
        "Music streaming (trumania example 3): users listen to and share songs in work hours, "
        "10-30 listens per work day; songs created at build time by running a Chain."
    ),
    start="2026-01-05T00:00:00+00:00",
    step="1h",
    seed=3,
    default_size=10_000,
    build=build_listeners,
    add_stories=add_stories,
    build_reference=build_catalogue,
)
