"""Issue 13.2 and 13.5: checks that mean something, per day, blocking delivery; Declarative
Automation that simulates each new day and delivers it once it is checked.

Real Dagster instances and real files; each check is made to fail by the fault it exists for;
the realism statistic is tested statistically (its false-alarm rate and its power)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from support import commit_days, failure_text

from pipelines.factory import build_scenario_definitions, scenario_partitions
from pipelines.log_assets import failed_checks, profiled_stories
from pipelines.realism import REALISM_P, choices_against_weights, hours_against_profile, members_against_activity
from pipelines.scenarios import get_scenario
from resources.cluster import DaskResource
from resources.storage import StorageResource

SCENARIO = get_scenario("telecom")
DAYS = ("2026-01-05", "2026-01-06", "2026-01-07")
LOGS = [f"telecom/{log_id}" for log_id in SCENARIO.log_ids]
SIZE = 300


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the initial state and three committed days (the simulation only)."""
    root = tmp_path_factory.mktemp("checks") / "store"
    with dg.DagsterInstance.ephemeral() as instance:
        commit_days(instance, StorageResource(root=str(root)), SCENARIO, SIZE, DAYS, with_logs=False)
    return root


def _logs(instance: dg.DagsterInstance, root: Path, first: str, last: str) -> dg.ExecuteInProcessResult:
    """The log assets of days ``first`` to ``last``, in one run (a single-run backfill)."""
    return dg.materialize(
        build_scenario_definitions(SCENARIO).assets,
        selection=LOGS,
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        raise_on_error=False,
    )


def _truncate(root: Path, day: str) -> None:
    path = root / "telecom" / "logs" / "voice_cdr" / f"date={day}" / "part-00000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)


def test_every_day_of_a_backfill_gets_its_own_current_verdict_and_a_bad_day_blocks(
    committed: Path, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    shutil.copytree(committed, root)
    _truncate(root, DAYS[1])  # one row of day 2's calls lost
    instance = dg.DagsterInstance.ephemeral()
    result = _logs(instance, root, DAYS[0], DAYS[2])
    assert not result.success  # a blocking check failed: the run fails (and delivery in it would not run)
    assert "row_count" in failure_text(result)
    keys = [
        dg.AssetCheckKey(dg.AssetKey(["telecom", "voice_cdr"]), name) for name in ("row_count", "schema_as_declared")
    ]
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=list(DAYS))
    status = {(i.check_key.name, i.partition_key): i.latest_execution_status.value for i in infos}
    assert status == {
        ("row_count", DAYS[0]): "SUCCEEDED",
        ("row_count", DAYS[1]): "FAILED",
        ("row_count", DAYS[2]): "SUCCEEDED",
        ("schema_as_declared", DAYS[0]): "SUCCEEDED",
        ("schema_as_declared", DAYS[1]): "SUCCEEDED",
        ("schema_as_declared", DAYS[2]): "SUCCEEDED",
    }
    assert all(i.is_current for i in infos)  # each verdict judges its day's latest materialization
    assert failed_checks(instance, SCENARIO, DAYS) == {DAYS[1]: ["voice_cdr: row_count"]}
    # per-day metadata of the log asset: each day its own row count
    counts = {
        e.partition: e.metadata["dagster/row_count"].value
        for e in result.asset_materializations_for_node("telecom__voice_cdr")
    }
    assert set(counts) == set(DAYS) and len(set(counts.values())) == 3


def test_a_day_whose_blocking_checks_failed_is_not_exported(
    committed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcs_export refuses the day before touching GCS, naming the day and the check; the days
    that passed are not refused.  (No GCS is needed to see the refusal: the client points at a
    closed port, where a day that passes fails later, at the bucket.)"""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    from dagster_gcp import GCSResource

    from pipelines.delivery import build_delivery_definitions
    from resources.export import ExportResource

    root = tmp_path / "store"
    shutil.copytree(committed, root)
    _truncate(root, DAYS[1])
    instance = dg.DagsterInstance.ephemeral()
    _logs(instance, root, DAYS[0], DAYS[2])
    (export,) = [a for a in build_delivery_definitions(SCENARIO).assets if a.key.path[-1] == "gcs_export"]
    resources = {
        "storage": StorageResource(root=str(root)),
        "dask": DaskResource(),
        "gcs": GCSResource(project="circus-test"),
        "export": ExportResource(bucket="circus-no-such-bucket"),
    }

    def export_day(day: str) -> str:
        result = dg.materialize(
            [export], partition_key=day, instance=instance, resources=resources, raise_on_error=False
        )
        assert not result.success  # no GCS here: a day that passes fails later, at the bucket
        return failure_text(result)

    refused = export_day(DAYS[1])
    assert "failed blocking checks" in refused and f"{DAYS[1]}: voice_cdr: row_count" in refused
    assert "failed blocking checks" not in export_day(DAYS[0])


def _one_day(instance: dg.DagsterInstance, root: Path) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Day 1 simulated and its logs checked (one run), from a fresh initial state: the verdicts."""
    commit_days(instance, StorageResource(root=str(root)), SCENARIO, 2000, [], with_logs=False)
    result = dg.materialize(
        build_scenario_definitions(SCENARIO).assets,
        selection=["telecom/simulation", *LOGS],
        partition_key=DAYS[0],
        instance=instance,
        resources={"storage": StorageResource(root=str(root)), "dask": DaskResource()},
    )
    assert result.success  # realism checks warn; they do not block
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


REALISM = ("events_per_hour_follow_profile", "events_per_member_follow_activity")


def test_the_realism_checks_pass_on_a_correct_world(tmp_path: Path) -> None:
    assert profiled_stories(SCENARIO) == {"voice_cdr": "voice", "sms_cdr": "sms"}
    verdicts = _one_day(dg.DagsterInstance.ephemeral(), tmp_path / "store")
    for log in ("voice_cdr", "sms_cdr"):
        for name in REALISM:
            check = verdicts[(log, name)]
            assert check.passed and check.metadata["p-value"].value >= REALISM_P
            assert check.severity == dg.AssetCheckSeverity.WARN
            assert {"chi2", "degrees of freedom", "fails below p"} <= set(check.metadata)


def test_an_engine_that_ignores_the_timer_profile_fails_the_hours_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect injected in the engine (events spread evenly over the day, the profile ignored):
    the hours check fails, the activity check (levels are kept) passes."""
    from circus_core.timers import CyclicTimerGenerator

    build_scenario_definitions(SCENARIO)  # the checks' expectations come from the true configuration
    original = CyclicTimerGenerator.__init__

    def flat(self: CyclicTimerGenerator, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)
        n = len(self.fine_cum) - 1
        self.fine_cum = np.linspace(0.0, 1.0, n + 1)
        self.cum = self.fine_cum[:: self.units_per_step].copy()
        self.cdf = self.cum[1:]

    monkeypatch.setattr(CyclicTimerGenerator, "__init__", flat)
    verdicts = _one_day(dg.DagsterInstance.ephemeral(), tmp_path / "store")
    hours = verdicts[("voice_cdr", "events_per_hour_follow_profile")]
    assert not hours.passed and hours.metadata["p-value"].value < REALISM_P
    assert verdicts[("voice_cdr", "events_per_member_follow_activity")].passed


def test_an_engine_that_ignores_member_activity_fails_the_activity_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect injected in the engine (every member drawn at the mean activity: the busy ones
    too quiet, the quiet ones too busy): the activity check fails."""
    from circus_core.timers import CyclicTimerGenerator

    original = CyclicTimerGenerator.next_events

    def mean_only(self: CyclicTimerGenerator, from_mass: np.ndarray, activities: np.ndarray, rng: object) -> object:
        activities = np.asarray(activities, dtype=float)
        return original(self, from_mass, np.full_like(activities, activities.mean()), rng)

    monkeypatch.setattr(CyclicTimerGenerator, "next_events", mean_only)
    verdicts = _one_day(dg.DagsterInstance.ephemeral(), tmp_path / "store")
    members = verdicts[("voice_cdr", "events_per_member_follow_activity")]
    assert not members.passed and members.metadata["p-value"].value < REALISM_P


def test_the_hours_statistic_has_its_stated_false_alarm_rate_and_sees_a_busier_hour() -> None:
    """Under the model (multinomial hours with the profile's shares) the check fails with
    probability REALISM_P; 20,000 simulated days fail 20 times on average, and a binomial(20000,
    0.001) count lies in [5, 40) with probability > 0.9999.  One hour with 20 % more events in a
    day of 50,000 rows is seen: the non-central chi-square (23 df, non-centrality 114) exceeds
    the threshold with probability 0.999999, so 200 such days are all seen (> 0.9998)."""
    rng = np.random.default_rng(2026)
    shares = np.r_[np.full(6, 0.01), np.full(12, 0.06), np.full(6, 0.03)]
    shares = shares / shares.sum()
    draws = rng.multinomial(50_000, shares, size=20_000)
    alarms = sum(not hours_against_profile(d, shares)[0] for d in draws)
    assert 5 <= alarms < 40, alarms
    skewed = shares.copy()
    skewed[10] *= 1.2
    skewed /= skewed.sum()
    seen = sum(not hours_against_profile(d, shares)[0] for d in rng.multinomial(50_000, skewed, size=200))
    assert seen == 200, seen
    impossible = np.r_[0.0, shares[1:] / shares[1:].sum()]
    day = rng.multinomial(50_000, impossible)
    day[0] = 1  # one event where the profile has no mass
    passed, metadata = hours_against_profile(day, impossible)
    assert not passed and metadata["events in hours without profile mass"] == 1


def test_the_activity_statistic_has_its_stated_false_alarm_rate_and_sees_a_wrong_level() -> None:
    """Deciles of Poisson counts with their true means fail with probability REALISM_P (20,000
    draws: [5, 40) with probability > 0.9999); a day 5 % busier than configured at 30,000
    expected events is seen: non-centrality 76 at 10 df, power 0.99996, so 100 such days all
    fail but at most one with probability > 0.99999."""
    rng = np.random.default_rng(7)
    expected = np.geomspace(300, 10_000, 10)  # heavy-tailed: the busiest decile dominates
    alarms = sum(not members_against_activity(list(rng.poisson(expected)), list(expected))[0] for _ in range(20_000))
    assert 5 <= alarms < 40, alarms
    seen = sum(not members_against_activity(list(rng.poisson(expected * 1.05)), list(expected))[0] for _ in range(100))
    assert seen >= 99, seen


def test_automation_simulates_the_new_day_and_delivers_a_checked_day(
    committed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 00:30 after a day ends, Declarative Automation requests that day's simulation when the
    day before is committed; a configured export is requested for a day whose logs are checked,
    and not for one whose blocking checks failed."""
    monkeypatch.setenv("CIRCUS_EXPORT_BUCKET", "circus-test")
    from pipelines.delivery import build_delivery_definitions

    assets = [*build_scenario_definitions(SCENARIO).assets, *build_delivery_definitions(SCENARIO).assets]
    sim = dg.AssetKey(["telecom", "simulation"])
    export = dg.AssetKey(["telecom", "gcs_export"])
    root = tmp_path / "store"
    instance = dg.DagsterInstance.ephemeral()
    storage = StorageResource(root=str(root))
    commit_days(instance, storage, SCENARIO, SIZE, DAYS[:1])  # day 1 committed and checked

    from dagster_gcp import GCSResource

    from resources.export import ExportResource
    from resources.pubsub import PubSubResource

    resources = {
        "storage": storage,
        "dask": DaskResource(),
        "gcs": GCSResource(project="circus-test"),
        "export": ExportResource(bucket="circus-test"),
        "pubsub": PubSubResource(),
    }
    defs = dg.Definitions(assets=assets, resources=resources)

    cursor = None

    def tick(at: datetime) -> dg.EvaluateAutomationConditionsResult:
        """One evaluation of the automation sensor at ``at``, continuing the previous one."""
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at, cursor=cursor)
        cursor = result.cursor
        return result

    assert tick(datetime(2026, 1, 6, 12, 0, tzinfo=UTC)).total_requested == 0  # day 1 is there
    after_midnight = tick(datetime(2026, 1, 7, 0, 30, tzinfo=UTC))  # day 2 has ended
    # the whole day is planned at once: simulated, its logs checked, delivered -- in that order, the
    # blocking checks stopping the delivery inside the run (and `refuse_failed_days` in it)
    for key in (sim, export, *(dg.AssetKey.from_user_string(log) for log in LOGS)):
        assert after_midnight.get_requested_partitions(key) == {DAYS[1]}, key

    day_2 = dg.materialize(  # what the requested run does (but the delivery: no bucket here)
        assets,
        selection=["telecom/simulation", *LOGS],
        partition_key=DAYS[1],
        instance=instance,
        resources=resources,
    )
    assert day_2.success
    # the gate of `delivery_condition` on its own: the day's blocking checks passed
    from pipelines.export import build_export_asset
    from pipelines.factory import scenario_partitions

    gate = dg.AutomationCondition.in_latest_time_window() & dg.AutomationCondition.all_deps_blocking_checks_passed()
    gated = build_export_asset(
        SCENARIO, scenario_partitions(SCENARIO), [dg.AssetKey.from_user_string(x) for x in LOGS], gate
    )
    gated_defs = dg.Definitions(assets=[*assets[: 2 + len(LOGS)], gated], resources=resources)

    def gate_open(at: datetime) -> bool:
        result = dg.evaluate_automation_conditions(defs=gated_defs, instance=instance, evaluation_time=at)
        return result.get_requested_partitions(export) == {DAYS[1]}

    assert gate_open(datetime(2026, 1, 7, 0, 45, tzinfo=UTC))  # committed and checked
    _truncate(root, DAYS[1])  # the day's file is damaged and its logs checked again
    assert not _logs(instance, root, DAYS[1], DAYS[1]).success
    assert not gate_open(datetime(2026, 1, 7, 1, 0, tzinfo=UTC))  # its blocking check failed: not delivered


def _app_store_day(root: Path) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """app_store's first day simulated and its logs checked: the verdicts."""
    app_store = get_scenario("app_store")
    instance = dg.DagsterInstance.ephemeral()
    storage = StorageResource(root=str(root))
    commit_days(instance, storage, app_store, 2000, [], with_logs=False)
    first = scenario_partitions(app_store).get_first_partition_key()
    result = dg.materialize(
        build_scenario_definitions(app_store).assets,
        selection=["app_store/simulation", *(f"app_store/{log}" for log in app_store.log_ids)],
        partition_key=first,
        instance=instance,
        resources={"storage": storage, "dask": DaskResource()},
    )
    assert result.success
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_weighted_choices_follow_their_weights_and_an_engine_ignoring_them_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circus_core.generators import EmpiricalGenerator

    good = _app_store_day(tmp_path / "good")[("store_visits", "choices_follow_weights")]
    assert good.passed and good.metadata["smallest p-value"].value >= REALISM_P / 2
    assert "store_visit.SOURCE" in good.metadata["choices"].value

    def uniform(self: EmpiricalGenerator, size: int, rng: np.random.Generator) -> object:
        """A defect: the weights ignored (every value as likely)."""
        idx = rng.integers(0, len(self.values), size)
        self.draws += np.bincount(idx, minlength=len(self.values))
        return self.values[idx] if isinstance(self.values, np.ndarray) else [self.values[i] for i in idx]

    monkeypatch.setattr(EmpiricalGenerator, "_generate", uniform)
    bad = _app_store_day(tmp_path / "bad")[("store_visits", "choices_follow_weights")]
    assert not bad.passed and bad.metadata["smallest p-value"].value < REALISM_P / 2
    assert bad.severity == dg.AssetCheckSeverity.WARN


def test_the_choice_statistic_has_its_stated_false_alarm_rate_pools_rare_values_and_sees_a_tilt() -> None:
    """Multinomial draws with the weights fail with probability REALISM_P (20,000 days: [5, 40)
    with probability > 0.9999) -- the rare value (expected 2.5 times) pooled with the next rarest
    so the chi-square holds (alone it doubled the rate); a weight off by 30 % on one value at
    5,000 draws is seen (non-centrality 80 at 2 df: power 0.99999994, so 100 such days all fail
    but at most one with probability > 0.99999999);
    a draw of a value of weight 0 always fails."""
    rng = np.random.default_rng(11)
    weights = [0.5, 0.3, 0.1995, 0.0005]  # the last value is expected 2.5 times: pooled
    alarms = sum(not choices_against_weights(list(rng.multinomial(5_000, weights)), weights)[0] for _ in range(20_000))
    assert 5 <= alarms < 40, alarms
    tilted = np.array(weights) * [1, 1.3, 1, 1]
    tilted /= tilted.sum()
    seen = sum(not choices_against_weights(list(rng.multinomial(5_000, tilted)), weights)[0] for _ in range(100))
    assert seen >= 99, seen
    passed, metadata = choices_against_weights([10, 10, 1], [0.5, 0.5, 0.0])
    assert not passed and metadata["draws of weight-0 values"] == 1
