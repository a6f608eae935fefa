"""``<scenario>/<log_id>``: one log stream's daily files, with per-day checks that guard delivery.

Each day of a log is its own partition's materialization (rows, ``dagster/column_schema``, a
sample, its files), then that day's check evaluations, each targeting that materialization --
partitioned checks, so the UI and the automation of ``gcs_export``/``pubsub_publish`` see each
day's verdict, not a run's:

    schema_as_declared         blocking: the file's schema is its marker's and the first day's
    timestamps_inside_day      blocking: every timestamp lies inside the partition's day
    row_count                  blocking: the file has the rows its commit marker says
    events_per_hour_follow_profile      realism (warning), for a log written by one story with
    events_per_member_follow_activity   a cyclic timer and one state: that story's timer events
                               of the day per hour against its profile, and per activity decile
                               against its members' activity (`pipelines.realism`: Pearson's
                               chi-square, failing at p < `REALISM_P`)
    choices_follow_weights     realism (warning), for a log written by one story drawing weighted
                               choices: each choice's draws of the day against its weights

A blocking check that fails stops the delivery of its day (`failed_checks`, and the automation
condition of the delivery assets).  A run of several days reports one evaluation per day and,
because Dagster requires a result of every check from the step, one summary over the run.
"""

import functools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from circus_core import Circus, Story
from pipelines.daystore import DayNotReadyError, DayStore, log_parts
from pipelines.realism import (
    REALISM_P,
    choice_generators,
    choices_against_weights,
    hours_against_profile,
    members_against_activity,
    profiled,
)
from pipelines.scenarios import Scenario
from pipelines.scratch import scratch
from resources.storage import StorageResource

# partitioned checks are a "preview" of Dagster 1.13: the warning would be noise in every CLI run
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

__all__ = [
    "BLOCKING_CHECKS",
    "REALISM_P",
    "build_log_asset",
    "delivery_condition",
    "failed_checks",
    "preview",
    "profiled_stories",
    "refuse_failed_days",
    "require_deliverable",
]

#: the checks that stop a day's delivery when they fail
BLOCKING_CHECKS = ("schema_as_declared", "timestamps_inside_day", "row_count")
#: rows of a day shown with its log asset's materialization
SAMPLE_ROWS = 5


def preview(df: pd.DataFrame, rows: int = SAMPLE_ROWS) -> dg.MetadataValue:
    """The first rows as a markdown table (pandas uses tabulate, which dagster depends on)."""
    return dg.MetadataValue.md(df.head(rows).to_markdown())


@dataclass(frozen=True)
class Profile:
    """A story's timer profile, enough to say how a day's events spread over its hours."""

    story: str
    timer: object  # a CyclicTimerGenerator of a small circus of the scenario
    start: pd.Timestamp
    step: pd.Timedelta

    def hour_shares(self, day: str) -> np.ndarray:
        """The share of the day's profile mass in each of its 24 hours."""
        t0 = pd.Timestamp(day, tz="UTC")
        edges = [int(((t0 + pd.Timedelta(hours=h)) - self.start) / self.step) for h in range(25)]
        mass = np.array([self.timer.mass_at(e) for e in edges])  # type: ignore[attr-defined]
        total = mass[-1] - mass[0]
        return np.diff(mass) / total if total > 0 else np.zeros(24)


@functools.lru_cache(maxsize=64)
def _writers(scenario: Scenario) -> tuple[Circus, dict[str, Story]] | None:
    """A small circus of the scenario and the one story writing each log (logs written by
    several stories are left out: their rows mix processes).  A profile or a choice's weights do
    not depend on the world's size; a scenario that cannot be built small has no realism checks."""
    try:
        circus = scenario.create(min(scenario.default_size, 50))
    except Exception:  # any error: realism checks are optional, the simulation reports real ones
        return None
    writers: dict[str, list[Story]] = {}
    for story in circus.stories.values():
        for log_id in story.log_ids():
            writers.setdefault(log_id, []).append(story)
    return circus, {log_id: stories[0] for log_id, stories in writers.items() if len(stories) == 1}


def _profiles(scenario: Scenario) -> dict[str, Profile]:
    """Logs written by exactly one story whose timer events the configuration predicts
    (`pipelines.realism.profiled`), with that story's profile."""
    found = _writers(scenario)
    if found is None:
        return {}
    circus, writers = found
    return {
        log_id: Profile(story.name, story.timer_gen, circus.clock.start, circus.clock.step)
        for log_id, story in writers.items()
        if profiled(story)
    }


def _choices(scenario: Scenario) -> dict[str, list[str]]:
    """Logs written by exactly one story that draws weighted choices, with those choices' names."""
    found = _writers(scenario)
    if found is None:
        return {}
    circus, writers = found
    drawn = choice_generators(circus)
    out = {}
    for log_id, story in writers.items():
        names = sorted(name for name, (_, stories) in drawn.items() if story.name in stories)
        if names:
            out[log_id] = names
    return out


def profiled_stories(scenario: Scenario) -> dict[str, str]:
    """Which logs of ``scenario`` get the events-per-hour realism check, and from which story."""
    return {log_id: p.story for log_id, p in _profiles(scenario).items()}


def build_log_asset(
    scenario: Scenario, log_id: str, partitions: dg.DailyPartitionsDefinition, sim_key: dg.AssetKey
) -> dg.AssetsDefinition:
    """``<scenario>/<log_id>``: one log stream's daily files, checked day by day."""
    key = dg.AssetKey([scenario.name, log_id])
    profile = _profiles(scenario).get(log_id)
    choices = _choices(scenario).get(log_id, [])
    descriptions = {
        "schema_as_declared": "The day's file has the schema its commit marker declares, the same as on the first day.",
        "timestamps_inside_day": "Every timestamp column lies inside the partition's day.",
        "row_count": "The day's file has as many rows as its commit marker says (reported as the day's row count).",
    }
    checks = [
        dg.AssetCheckSpec(name, asset=key, description=text, blocking=True, partitions_def=partitions)
        for name, text in descriptions.items()
    ]
    if profile is not None:
        checks += [
            dg.AssetCheckSpec(
                "events_per_hour_follow_profile",
                asset=key,
                partitions_def=partitions,
                description=f"Timer events per hour of story {profile.story!r} (which writes this log) against its "
                f"timer profile: Pearson's chi-square, failing at p < {REALISM_P:g} (a warning: a correct world "
                f"fails it 1 day in {1 / REALISM_P:,.0f}).",
            ),
            dg.AssetCheckSpec(
                "events_per_member_follow_activity",
                asset=key,
                partitions_def=partitions,
                description=f"Timer events of story {profile.story!r} per decile of its members' activity against "
                f"activity x the day's profile mass: Pearson's chi-square, failing at p < {REALISM_P:g}.",
            ),
        ]

    if choices:
        checks.append(
            dg.AssetCheckSpec(
                "choices_follow_weights",
                asset=key,
                partitions_def=partitions,
                description=f"Draws of the weighted choices {', '.join(choices)} against their weights: Pearson's "
                f"chi-square each, failing at p < {REALISM_P:g} / {len(choices)} (Bonferroni).",
            )
        )

    @dg.asset(
        key=key,
        group_name=scenario.name,
        kinds={"parquet"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[sim_key],
        check_specs=checks,
        automation_condition=dg.AutomationCondition.eager(),
        description=(
            f"The {log_id!r} log stream of {scenario.name}: one Parquet file per day at "
            f"logs/{log_id}/date=YYYY-MM-DD/, written by the simulation; depend on this asset to consume "
            "only this stream. Each day is checked (schema, timestamps, rows; blocking its delivery)"
            + (f" and story {profile.story!r}'s events tested against its profile and activity." if profile else ".")
        ),
    )
    def log_stream(context: dg.AssetExecutionContext, storage: StorageResource) -> Iterator[object]:
        store = DayStore(storage.backend(), scenario)
        first_day = partitions.get_first_partition_key()
        reference = None
        if store.is_committed(first_day):
            reference = store.marker(first_day)["logs"].get(log_id, {}).get("schema")
        days = sorted(context.partition_keys)
        verdicts: dict[str, dict[str, tuple[bool, dict[str, object]]]] = {}
        for day in days:
            try:
                marker = store.marker(day)
            except DayNotReadyError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
            checked = _check_day(store, marker, log_id, day, reference, profile, choices)
            reference = reference or checked.schema
            context.add_asset_metadata(checked.metadata, partition_key=day)
            verdicts[day] = checked.verdicts
        yield dg.MaterializeResult()  # one materialization per day, each with its own metadata
        # the checks come after the materializations they judge (else Dagster shows them outdated)
        if len(days) == 1 and context.has_partition_key:
            for name, (passed, metadata) in verdicts[days[0]].items():
                yield dg.AssetCheckResult(check_name=name, passed=passed, metadata=metadata, severity=_severity(name))
            return
        for day in days:
            target = _materialization_of(context.instance, key, day)
            for name, (passed, metadata) in verdicts[day].items():
                context.log_event(
                    dg.AssetCheckEvaluation(
                        asset_key=key,
                        check_name=name,
                        passed=passed,
                        metadata=metadata,
                        severity=_severity(name),
                        partition=day,
                        blocking=name in BLOCKING_CHECKS,
                        target_materialization_data=target,
                    )
                )
        for spec in checks:  # Dagster wants a result of each check from the step: the run's summary
            failed = [day for day in days if not verdicts[day][spec.name][0]]
            yield dg.AssetCheckResult(
                check_name=spec.name,
                passed=not failed,
                severity=_severity(spec.name),
                description=f"summary of this run's {len(days)} days; each day has its own evaluation",
                metadata={"days checked": len(days), "days failed": ", ".join(failed) or "none"},
            )

    return log_stream


def _severity(check: str) -> dg.AssetCheckSeverity:
    """Blocking checks fail as errors (they stop delivery); realism checks warn."""
    return dg.AssetCheckSeverity.ERROR if check in BLOCKING_CHECKS else dg.AssetCheckSeverity.WARN


def _materialization_of(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> object:
    """The latest materialization of ``key``'s partition ``day``, as the target of its checks."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,  # not exported by dagster; no public way to target
    )

    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1)
    if not records.records:
        return None
    record = records.records[0]
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


@dataclass
class _Checked:
    """One day of one log: its materialization metadata and each check's verdict."""

    schema: str | None
    metadata: dict[str, object]
    verdicts: dict[str, tuple[bool, dict[str, object]]]


def _check_day(
    store: DayStore,
    marker: dict,
    log_id: str,
    day: str,
    reference: str | None,
    profile: Profile | None,
    choices: Sequence[str] = (),
) -> _Checked:
    entry = marker["logs"].get(log_id)
    schema_problems: list[str] = []
    row_problems: list[str] = []
    bad_times: list[str] = []
    rows, files = 0, []
    first: _Day | None = None
    schema = None
    for part in log_parts(entry) if entry is not None else []:  # one file per shard; none: no event that day
        name = day + (f" shard {part['shard']}" if "shard" in part else "")
        day_file = _read(store, part["key"])
        schema = day_file.schema.remove_metadata().to_string()
        if schema != entry["schema"]:
            schema_problems.append(f"{name}: the file's schema differs from its commit marker's")
        if reference is not None and schema != reference:
            schema_problems.append(f"{name}: schema differs from the first day's")
        reference = reference or schema
        rows += day_file.num_rows
        if day_file.num_rows != part["rows"]:
            row_problems.append(f"{name}: {day_file.num_rows} rows, its commit marker says {part['rows']}")
        files.append(part["url"])
        first = first or day_file
        bad_times += _outside_day(day_file.times, day)
    metadata: dict[str, object] = {"dagster/row_count": rows}
    if first is not None:
        metadata |= {
            "dagster/column_schema": _column_schema(first.schema),
            "sample": preview(first.sample.to_pandas()),
            "files": "\n".join(files),
        }
    verdicts: dict[str, tuple[bool, dict[str, object]]] = {
        "schema_as_declared": (
            not schema_problems,
            {"problems": "; ".join(schema_problems[:10]), "schema": dg.MetadataValue.md(f"```\n{schema or ''}\n```")},
        ),
        "timestamps_inside_day": (not bad_times, {"problems": "; ".join(bad_times[:10])}),
        "row_count": (not row_problems, {"rows": rows, "problems": "; ".join(row_problems[:10])}),
    }
    if profile is not None:
        verdicts |= _realism(marker, profile, day)
    if choices:
        verdicts["choices_follow_weights"] = _choice_verdict(marker, choices)
    return _Checked(schema, metadata, verdicts)


def _choice_verdict(marker: dict, choices: Sequence[str]) -> tuple[bool, dict[str, object]]:
    """One verdict over the story's weighted choices: each tested, Bonferroni over them."""
    recorded = marker.get("choices")
    if recorded is None:  # a day committed before the simulation recorded them
        return True, {"note": "no draws recorded for this day (committed by an older version): not tested"}
    lines = ["| choice | draws | chi2 | df | p-value | passed |", "|---|---:|---:|---:|---:|:---:|"]
    passed_all, worst = True, 1.0
    for name in choices:
        entry = recorded.get(name)
        if entry is None:
            continue
        passed, m = choices_against_weights(entry["observed"], entry["weights"], tests=len(choices))
        passed_all &= passed
        worst = min(worst, float(m.get("p-value", 1.0)))
        lines.append(
            f"| {name} | {m.get('draws', 0):,} | {m.get('chi2', '')} | {m.get('degrees of freedom', '')} "
            f"| {m.get('p-value', '')} | {'yes' if passed else 'no'} |"
        )
    return passed_all, {
        "statistic": "Pearson chi-square of each choice's draws per value against its weights",
        "smallest p-value": worst,
        "fails below p": REALISM_P / len(choices),
        "choices": dg.MetadataValue.md("\n".join(lines)),
    }


def _realism(marker: dict, profile: Profile, day: str) -> dict[str, tuple[bool, dict[str, object]]]:
    """The realism verdicts of ``day`` from the story's timer events its marker recorded."""
    tally = (marker.get("timer_events") or {}).get(profile.story)
    if tally is None:  # a day committed before the simulation recorded them
        note = {"note": "no timer events recorded for this day (committed by an older version): not tested"}
        return {"events_per_hour_follow_profile": (True, note), "events_per_member_follow_activity": (True, note)}
    hours = hours_against_profile(np.asarray(tally["per_hour"]), profile.hour_shares(day))
    members = members_against_activity(tally["observed_by_activity"], tally["expected_by_activity"])
    return {
        "events_per_hour_follow_profile": (hours[0], _markdown(hours[1])),
        "events_per_member_follow_activity": (members[0], _markdown(members[1])),
    }


def _markdown(metadata: dict[str, object]) -> dict[str, object]:
    """Tables (text with '|' rows) as markdown metadata."""
    return {k: dg.MetadataValue.md(v) if isinstance(v, str) and v.startswith("|") else v for k, v in metadata.items()}


def failed_checks(instance: dg.DagsterInstance, scenario: Scenario, days: Sequence[str]) -> dict[str, list[str]]:
    """The blocking checks of ``scenario``'s log assets whose latest evaluation of a day failed:
    {day: ["<log_id>: <check>", ...]} for the days that must not be delivered."""
    keys = [
        dg.AssetCheckKey(dg.AssetKey([scenario.name, log_id]), name)
        for log_id in scenario.log_ids
        for name in BLOCKING_CHECKS
    ]
    failed: dict[str, list[str]] = {}
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=list(days))
    for info in infos:
        if info.partition_key in days and info.latest_execution_status.value == "FAILED":
            failed.setdefault(info.partition_key, []).append(
                f"{info.check_key.asset_key.path[-1]}: {info.check_key.name}"
            )
    return {day: sorted(names) for day, names in sorted(failed.items())}


def _read(store: DayStore, key: str) -> "_Day":
    """The day's file with its full schema but only its timestamp columns' data (the checks
    need no more; a day of a large scenario is tens of millions of rows)."""
    with scratch("log") as tmp:
        local = Path(tmp) / "part.parquet"
        store.backend.get_file(key, local)
        schema = pq.read_schema(local)
        times = [f.name for f in schema if pa.types.is_timestamp(f.type)]
        table = pq.read_table(local, columns=times)
        rows = pq.read_metadata(local).num_rows
        first = next(pq.ParquetFile(local).iter_batches(batch_size=SAMPLE_ROWS), None)
        sample = pa.Table.from_batches([first]) if first is not None else schema.empty_table()
    return _Day(schema, table, rows, sample)


@dataclass
class _Day:
    """A day's schema, its timestamp columns, its row count and its first rows."""

    schema: pa.Schema
    times: pa.Table
    num_rows: int
    sample: pa.Table


def _column_schema(schema: pa.Schema) -> dg.TableSchema:
    """The Arrow schema as Dagster shows it (``dagster/column_schema``)."""
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema.remove_metadata()])


def _outside_day(table: pa.Table, day: str) -> list[str]:
    """Timestamp columns with values outside [day, day + 1)."""
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    problems = []
    for name, typ in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_timestamp(typ) and table.num_rows:
            col = table.column(name).to_pandas()
            if typ.tz is None:
                problems.append(f"{day}: {name} is not timezone-aware")
            elif (col.min() < start) or (col.max() >= end):
                problems.append(f"{day}: {name} spans {col.min()} .. {col.max()}")
    return problems


def require_deliverable(instance: dg.DagsterInstance, store: DayStore, days: Sequence[str], what: str) -> None:
    """Before a delivery (``what``) sends anything: every day committed, none with a failed
    blocking check (`refuse_failed_days`)."""
    for day in days:
        if not store.is_committed(day):
            raise dg.Failure(
                f"{store.scenario.name}: day {day} is not committed; materialise the simulation for it first",
                allow_retries=False,
            )
    refuse_failed_days(instance, store.scenario, days, what)


def refuse_failed_days(instance: dg.DagsterInstance, scenario: Scenario, days: Sequence[str], what: str) -> None:
    """Stop the delivery (``what``) of days whose blocking checks failed, naming the days and the
    checks: a day that fails its checks is not sent anywhere until it is made good."""
    failed = failed_checks(instance, scenario, days)
    if failed:
        listed = "; ".join(f"{day}: {', '.join(names)}" for day, names in failed.items())
        raise dg.Failure(
            description=f"{scenario.name}: {len(failed)} day(s) failed blocking checks, so {what} does not deliver "
            f"them: {listed}. Simulate the day again (simulation config force: true) and materialise its log "
            "assets; the checks run with them",
            allow_retries=False,
        )


def delivery_condition() -> dg.AutomationCondition:
    """When a delivery asset's day runs by itself: its day is the newest, its log assets were
    updated, and their blocking checks passed."""
    return dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
