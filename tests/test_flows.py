"""CSV-defined flows (the CSV event generator): the files, the flows, the keys, the skip days, churn, the
position rule, JSON lines output.

Statistical assertions use a fixed seed and a tolerance of 5 standard deviations of the
statistic under the model (binomial or sums of independent Bernoulli/uniform draws), so they
fail when the behaviour is wrong, not by bad luck (a 5-sigma miss is a 1 in 1.7 million event).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from circus_core import Chain, Circus, CircusError, ConstantDependentGenerator, init_story_data
from circus_core.io.logs import write_day
from circus_core.models.flows import CsvFlows, FlowsConfig, position_weights, skip_days_range
from circus_core.models.flows_csv import FlowsFileError, load_flow_definition

START = "2026-01-05T00:00:00+00:00"
SIGMAS = 5.0

EVENTS = """event,property,value
open,,
a,colour,c0
a,colour,c1
a,colour,c2
a,colour,c3
a,colour,c4
a,colour,c5
a,colour,c6
a,colour,c7
b,size,s
b,size,m
b,size,l
c,side,left
c,side,right
d,,
"""
FLOWS = """flow,event,probability
browse,open,1.0
browse,a,0.7
browse,b,0.5
browse,c,0.9
buy,a,0.3
buy,d,0.6
close,d,1.0
close,b,0.4
"""
LOOKUPS = """name,kind,value
user_id,primary,
device_id,secondary,
install_id,secondary,
session_id,session,
tier,property,t0
tier,property,t1
tier,property,t2
tier,property,t3
tier,property,t4
"""
NEVER = 10**9  # a cycle length that never ends within a test: no skip days, no churn


def write_files(folder: Path, events: str = EVENTS, flows: str = FLOWS, lookups: str = LOOKUPS) -> tuple[Path, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "events.csv", folder / "flows.csv", folder / "lookups.csv"
    for path, text in zip(paths, (events, flows, lookups), strict=True):
        path.write_text(text)
    return paths


def make(
    tmp_path: Path, size: int, step: str = "1h", config: FlowsConfig | None = None, stagger: bool = True
) -> tuple[Circus, CsvFlows]:
    """A circus where every user holds one session at every step (a timer of one step)."""
    circus = Circus("flows", 11, START, step)
    users = circus.create_population("user", size)
    model = CsvFlows(load_flow_definition(*write_files(tmp_path / "def")), users, config)
    model.init_members(circus.seed_for("flows"), stagger=stagger)
    story = circus.create_story(
        "sessions",
        users,
        "user_id",
        timer_gen=ConstantDependentGenerator(1),
        states={"churned": {"activity": 0.0}},
    )
    story.set_operations(model.ops.run_flows("events", story=story, churned_state="churned"))
    return circus, model


def within(observed: float, expected: float, variance: float) -> bool:
    return abs(observed - expected) <= SIGMAS * np.sqrt(variance)


@pytest.fixture(scope="module")
def hourly(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, CsvFlows]:
    """2,000 users, one session each per hour for 12 hours, never pausing: 24,000 sessions."""
    circus, model = make(tmp_path_factory.mktemp("hourly"), 2_000, config=FlowsConfig(active_days_per_cycle=NEVER))
    return circus.run("12h")["events"].to_pandas(), model


# --- the position rule ------------------------------------------------------------------------
def test_position_weights_are_the_quartile_rule() -> None:
    assert position_weights(1).tolist() == [1.0]
    assert np.allclose(position_weights(2), [2 / 3, 1 / 3])
    assert np.allclose(position_weights(3), [1 / 2, 1 / 3, 1 / 6])
    assert np.allclose(position_weights(4), [0.4, 0.3, 0.2, 0.1])
    assert np.allclose(position_weights(5), [0.4, 0.3, 0.2, 0.05, 0.05])  # quartiles of 1, 1, 1, 2 values
    assert np.allclose(position_weights(7), [0.4, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05])  # 1, 2, 2, 2
    assert np.allclose(position_weights(8), np.repeat([0.2, 0.15, 0.1, 0.05], 2))
    for n in range(1, 40):
        w = position_weights(n)
        assert np.isclose(w.sum(), 1.0) and (np.diff(w) <= 1e-12).all(), n  # never rising down the list
    with pytest.raises(CircusError, match="at least one value"):
        position_weights(0)


def assert_frequencies(values: pd.Series, options: list[str]) -> None:
    """Each value's count is binomial(n, its position weight): within 5 sd."""
    counts = values.value_counts().reindex(options, fill_value=0)
    assert set(values.unique()) <= set(options)
    n = len(values)
    for option, p in zip(options, position_weights(len(options)), strict=True):
        assert within(counts[option], n * p, n * p * (1 - p)), (option, counts[option], n * p)


def test_event_property_frequencies_follow_position(hourly: tuple[pd.DataFrame, CsvFlows]) -> None:
    events, _ = hourly
    assert_frequencies(events.loc[events.event == "a", "colour"], [f"c{i}" for i in range(8)])
    assert_frequencies(events.loc[events.event == "b", "size"], ["s", "m", "l"])
    assert_frequencies(events.loc[events.event == "c", "side"], ["left", "right"])
    # a property belongs to its event only: null elsewhere
    assert events.loc[events.event != "a", "colour"].isna().all()
    assert events.loc[events.event == "open", ["colour", "size", "side"]].isna().all().all()


def test_user_properties_follow_position_and_stay(hourly: tuple[pd.DataFrame, CsvFlows]) -> None:
    events, model = hourly
    tiers = pd.Series(np.asarray(model.population.get_attribute("tier").values, dtype=object))
    assert_frequencies(tiers, ["t0", "t1", "t2", "t3", "t4"])
    assert (events.groupby("user_id")["tier"].nunique() == 1).all()  # drawn once per user
    assert (events["tier"].to_numpy() == tiers.to_numpy()[events["user_id"].to_numpy()]).all()


# --- flows ------------------------------------------------------------------------------------
def test_broken_flow_emits_nothing_after_the_break(hourly: tuple[pd.DataFrame, CsvFlows]) -> None:
    events, model = hourly
    assert list(events.columns) == model.log_columns()
    assert not events.duplicated(["session_id", "flow", "flow_step"]).any()
    per_flow = events.groupby(["session_id", "flow"])["flow_step"].agg(["min", "max", "count"])
    assert (per_flow["min"] == 0).all() and (per_flow["count"] == per_flow["max"] + 1).all()  # a prefix
    # inside a session, time order is flow order then step order
    flow_rank = events["flow"].map({"browse": 0, "buy": 1, "close": 2})
    ordered = events.sort_values(["session_id", "time"], kind="stable")
    same = ordered["session_id"].to_numpy()[1:] == ordered["session_id"].to_numpy()[:-1]
    key = (flow_rank * 100 + events["flow_step"]).loc[ordered.index].to_numpy()
    assert (np.diff(key)[same] >= 0).all()


def test_success_rates_match_the_flows_file(hourly: tuple[pd.DataFrame, CsvFlows]) -> None:
    """Step k of a flow is performed by a binomial(n reaching step k-1, p_k) number of sessions."""
    events, model = hourly
    sessions = events["session_id"].nunique()
    assert sessions == 24_000  # browse starts with open at probability 1: every session shows
    reached = events.groupby(["flow", "flow_step"]).size()
    checked = 0
    for flow in model.definition.flows:
        previous = sessions  # every session enters every flow
        for k, (_, p) in enumerate(flow.steps):
            n = int(reached.get((flow.name, k), 0))
            assert within(n, previous * p, previous * p * (1 - p)), (flow.name, k, n, previous * p)
            previous, checked = n, checked + 1
    assert checked == 8


def test_secondary_keys_are_rerolled_with_probability_one_fifth(hourly: tuple[pd.DataFrame, CsvFlows]) -> None:
    events, model = hourly
    first = events.groupby(["session_id", "flow"], sort=False).head(1).copy()
    first["f"] = first["flow"].map({"browse": 0, "buy": 1, "close": 2})
    first["n"] = first["session_id"].str.split("-").str[1].astype(int)
    first = first.sort_values(["user_id", "n", "f"])
    nxt = first.shift(-1)
    same_user = (nxt["user_id"] == first["user_id"]).to_numpy()
    device_changed = (nxt["device_id"] != first["device_id"]).to_numpy()
    install_changed = (nxt["install_id"] != first["install_id"]).to_numpy()
    # every secondary key changes at once (the seed re-rolls them together)
    assert (device_changed[same_user] == install_changed[same_user]).all()
    # k flow entries between two observed flows (the next session's too: keys carry over)
    entries = np.where(nxt["n"] == first["n"], nxt["f"] - first["f"], 3 - first["f"] + nxt["f"]).astype(float)
    p = 1 - 0.8 ** entries[same_user]
    observed = device_changed[same_user].sum()
    assert len(p) > 40_000
    assert within(observed, p.sum(), (p * (1 - p)).sum()), (observed, p.sum())
    consecutive = (entries[same_user] == 1).sum()
    changed = device_changed[same_user][entries[same_user] == 1].sum()
    assert within(changed, 0.2 * consecutive, consecutive * 0.2 * 0.8)
    # and the users keep the keys of their last flow
    last = events.sort_values(["user_id", "time"]).groupby("user_id").tail(1).set_index("user_id")
    stored = np.asarray(model.population.get_attribute("device_id").values)
    assert (last.loc[last.flow == "close", "device_id"] == stored[last.index[last.flow == "close"]]).all()


def test_sessions_ids_and_several_sessions_of_a_user_in_one_step(tmp_path: Path) -> None:
    circus, model = make(tmp_path, 50, config=FlowsConfig(active_days_per_cycle=NEVER))
    circus.run("2h")  # sessions 1 and 2 of every user
    op = model.ops.run_flows("manual", member_id_field="user_id")
    ids = np.repeat(np.arange(50), 3)
    story_data, logs = Chain(op)(init_story_data("user_id", ids[::-1]), circus.context("manual"))
    events = logs["manual"].to_pandas()
    assert sorted(story_data["session_id"].unique()) == sorted(f"{u}-{n}" for u in range(50) for n in (3, 4, 5))
    assert (story_data["events_performed"].to_numpy() >= 2).all()  # open and close.d always happen
    assert np.asarray(model.population.get_attribute("session_count").values).tolist() == [5] * 50
    # a user's three sessions share the hour three ways, in session order
    seconds = (events["time"] - pd.Timestamp(START) - pd.Timedelta("2h")).dt.total_seconds()
    n = events["session_id"].str.split("-").str[1].astype(int) - 3
    assert ((seconds >= n * 1200) & (seconds < (n + 1) * 1200)).all()


# --- skip days, churn, reassignment --------------------------------------------------------------
def test_good_users_skip_fewer_days_than_bad_users(tmp_path: Path) -> None:
    days = 80
    config = FlowsConfig(churn_scale=0.0, cycles_per_reassignment=NEVER)
    circus, model = make(tmp_path, 1_000, step="1D", config=config, stagger=False)
    events = circus.run(f"{days}D")["events"].to_pandas()
    day = (events["time"] - pd.Timestamp(START)).dt.days
    active = pd.DataFrame({"user": events["user_id"], "day": day}).drop_duplicates().sort_values(["user", "day"])
    gap = active.groupby("user")["day"].diff() - 1
    starts = active["day"] - gap  # first skipped day
    skips = pd.DataFrame({"user": active["user"], "skip": gap, "start": starts})[gap > 0]
    skips = skips[skips["start"] <= days - 31]  # started early enough to be seen whole (no censoring)
    u = np.asarray(model.population.get_attribute("user_probability").values)[skips["user"].to_numpy()]
    # the seed's ranges, 21-30 days at user probability 0 and 1-3 at 1, linear in between
    lo, hi = np.rint(21 - 20 * u), np.rint(30 - 27 * u)
    assert (skip_days_range(u, config)[0] == lo).all() and (skip_days_range(u, config)[1] == hi).all()
    assert ((skips["skip"] >= lo) & (skips["skip"] <= hi)).all()
    # uniform on [lo, hi]: mean (lo + hi) / 2, variance ((hi - lo + 1)^2 - 1) / 12
    mean, var = (lo + hi) / 2, ((hi - lo + 1) ** 2 - 1) / 12
    assert within(skips["skip"].sum(), mean.sum(), var.sum())
    good, bad = u > 0.8, u < 0.2
    assert good.sum() > 300 and bad.sum() > 100
    assert skips["skip"][good].mean() < 6 < 18 < skips["skip"][bad].mean()
    # runs of exactly 5 active days between the pauses
    run_id = (active.groupby("user")["day"].diff() != 1).cumsum()
    runs = active.groupby(run_id).agg(user=("user", "first"), length=("day", "size"), last=("day", "max"))
    assert (runs.loc[runs["last"] < days - 1, "length"] == 5).all()
    # good users hold sessions on many more days
    per_user = active.groupby("user").size().reindex(range(1_000), fill_value=0).to_numpy()
    all_u = np.asarray(model.population.get_attribute("user_probability").values)
    assert per_user[all_u > 0.8].mean() > 2 * per_user[all_u < 0.2].mean()


def test_churn_at_cycle_ends_and_churned_users_stay_silent(tmp_path: Path) -> None:
    config = FlowsConfig(churn_scale=0.6, cycles_per_reassignment=NEVER)
    circus, model = make(tmp_path, 2_000, step="1D", config=config)
    first = circus.run("5D")["events"].to_pandas()  # staggered: every user ends exactly one cycle
    attr = {n: np.asarray(a.values).copy() for n, a in model.population.attributes.items()}  # a snapshot
    p = attr["churn_probability"]
    assert np.allclose(p, 0.6 * (1 - attr["user_probability"]))
    churned = attr["churned"]
    for half in (attr["user_probability"] < 0.5, attr["user_probability"] >= 0.5):
        ph = p[half]
        assert within(churned[half].sum(), ph.sum(), (ph * (1 - ph)).sum())
    assert set(first["user_id"]) == set(range(2_000))

    later = circus.run("25D")["events"].to_pandas()
    back = set(later["user_id"])
    expected_back = set(np.flatnonzero(~churned & (attr["resume_day"] <= attr["last_active_day"].max() + 25)))
    assert back == expected_back  # churned users never again; the others once their pause is over
    assert len(expected_back) > 500
    state = circus.get_story("sessions").state
    assert (state[churned] == 1).all()  # moved to the "churned" state
    assert np.asarray(model.population.get_attribute("churned").values)[state == 1].all()


def test_user_probability_is_reassigned_every_few_cycles(tmp_path: Path) -> None:
    config = FlowsConfig(
        active_days_per_cycle=2, cycles_per_reassignment=3, good_skip_days=(0, 0), bad_skip_days=(0, 0)
    )
    circus, model = make(tmp_path, 4_000, step="1D", config=config, stagger=False)

    def values(name: str) -> np.ndarray:
        return np.asarray(model.population.get_attribute(name).values).copy()

    before = values("user_probability")
    circus.run("5D")  # cycle ends on days 1 and 3: two cycles, not yet three
    alive = ~values("churned")  # users who churned on day 1 or 3 stopped before their third cycle
    assert 0.5 * len(alive) < alive.sum() < len(alive)
    assert (values("user_probability") == before).all()
    assert (values("churn_prob_reset_counter")[alive] == 2).all()
    circus.run("1D")  # day 5: third cycle end, drawn anew
    after = values("user_probability")
    assert (after[alive] != before[alive]).all() and (after[~alive] == before[~alive]).all()
    n = alive.sum()
    assert within(after[alive].sum(), 0.5 * n, n / 12)  # uniform again
    assert np.allclose(values("churn_probability"), 0.3 * (1 - after))
    assert (values("churn_prob_reset_counter")[alive] == 0).all()


def test_config_is_validated() -> None:
    with pytest.raises(CircusError, match="secondary_key_reroll_probability"):
        FlowsConfig(secondary_key_reroll_probability=1.5)
    with pytest.raises(CircusError, match="active_days_per_cycle"):
        FlowsConfig(active_days_per_cycle=0)
    with pytest.raises(CircusError, match="good_skip_days"):
        FlowsConfig(good_skip_days=(3, 1))


# --- output -----------------------------------------------------------------------------------
def test_json_lines_hold_the_parquet_rows(tmp_path: Path) -> None:
    circus, _ = make(tmp_path, 200)
    logs = circus.run("3h")
    parquet = write_day(logs, tmp_path / "out", "2026-01-05", "parquet")["events"]
    jsonl = write_day(logs, tmp_path / "out", "2026-01-05", "jsonl")["events"]
    assert jsonl.name == "part-00000.jsonl"
    expected = pq.read_table(parquet).to_pylist()
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected) == logs["events"].num_rows > 1_000
    for line, row in zip(lines, expected, strict=True):
        got = json.loads(line)
        assert list(got) == list(row)
        assert pd.Timestamp(got.pop("time")) == row.pop("time")
        assert got == row


# --- malformed files --------------------------------------------------------------------------
def load(tmp_path: Path, **texts: str) -> None:
    load_flow_definition(*write_files(tmp_path / "bad", **texts))


@pytest.mark.parametrize(
    ("texts", "file", "line", "column", "message"),
    [
        ({"flows": "flow,event\nbrowse,open\n"}, "flows.csv", 1, "probability", "missing column"),
        ({"events": "event,value\nopen,\n"}, "events.csv", 1, "property", "missing column"),
        (
            {"flows": FLOWS.replace("buy,d,0.6", "buy,checkout,0.6")},
            "flows.csv",
            7,
            "event",
            "unknown event 'checkout'",
        ),
        ({"events": ""}, "events.csv", 1, "event", "empty"),
        ({"lookups": "\n\n"}, "lookups.csv", 1, "name", "empty"),
        (
            {"flows": FLOWS.replace("browse,b,0.5", "browse,b,0.x")},
            "flows.csv",
            4,
            "probability",
            "'0.x' is not a number",
        ),
        ({"flows": FLOWS.replace("browse,b,0.5", "browse,b,1.5")}, "flows.csv", 4, "probability", "between 0 and 1"),
        ({"flows": FLOWS.replace("browse,b,0.5", "browse,b,nan")}, "flows.csv", 4, "probability", "between 0 and 1"),
        ({"flows": FLOWS.replace("browse,b,0.5", "browse,b,")}, "flows.csv", 4, "probability", "empty cell"),
        ({"flows": "flow,event,probability\n"}, "flows.csv", 2, "flow", "no flows"),
        ({"flows": FLOWS + "close,d\n"}, "flows.csv", 10, "probability", "2 cells for 3 columns"),
        ({"flows": "flow,event,probabilty\nbrowse,open,1\n"}, "flows.csv", 1, "probabilty", "unknown column"),
        (
            {"lookups": LOOKUPS.replace("device_id,secondary,", "device_id,tertiary,")},
            "lookups.csv",
            3,
            "kind",
            "unknown kind",
        ),
        ({"lookups": LOOKUPS + "tier,property,t1\n"}, "lookups.csv", 11, "value", "repeated"),
        ({"lookups": LOOKUPS + "account,primary,\n"}, "lookups.csv", 11, "name", "a second primary key"),
        ({"events": EVENTS + "d,flow,x\n"}, "events.csv", 17, "property", "clashes with a column"),
        ({"events": EVENTS + "d,,orphan\n"}, "events.csv", 17, "property", "has no property name"),
    ],
)
def test_malformed_files_name_file_line_and_column(
    tmp_path: Path, texts: dict[str, str], file: str, line: int, column: str, message: str
) -> None:
    with pytest.raises(FlowsFileError) as err:
        load(tmp_path, **texts)
    text = str(err.value)
    assert text.startswith(str(tmp_path / "bad" / file)), text
    assert f"line {line}, column {column!r}" in text and message in text, text
    assert (err.value.file, err.value.line, err.value.column) == (str(tmp_path / "bad" / file), line, column)
    assert isinstance(err.value, CircusError) and isinstance(err.value, ValueError)


def test_missing_file_is_named(tmp_path: Path) -> None:
    events, _, lookups = write_files(tmp_path)
    with pytest.raises(FlowsFileError, match=r"flows2\.csv: file does not exist"):
        load_flow_definition(events, tmp_path / "flows2.csv", lookups)


def test_session_key_listed_as_a_shard_key_is_not_duplicated(tmp_path: Path) -> None:
    definition = load_flow_definition(*write_files(tmp_path, lookups=LOOKUPS + "Session ID,secondary,\n"))
    assert definition.secondary_keys == ("device_id", "install_id")
    assert definition.session_key == "session_id"


def test_defaults_blank_lines_and_bom(tmp_path: Path) -> None:
    definition = load_flow_definition(
        *write_files(
            tmp_path, events="\ufeff" + EVENTS.replace("b,size,m\n", "b,size,m\n\n"), lookups="name,kind,value\n"
        )
    )
    assert definition.primary_key == "user_id" and definition.session_key == "session_id"
    assert definition.secondary_keys == () and definition.user_properties == {}
    assert definition.events["b"]["size"] == ("s", "m", "l")
    assert [f.name for f in definition.flows] == ["browse", "buy", "close"]
