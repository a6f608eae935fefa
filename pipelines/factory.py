"""The asset factory: every scenario becomes the same Dagster asset graph.

    <scenario>/initial_state     not partitioned: the circus at the scenario's start
    <scenario>/simulation        daily partitions: one simulated day from the previous day's
                                 checkpoint (depends on its own previous partition)
    <scenario>/<log_id>          daily partitions, one per log stream, with asset checks
    <scenario>/gcs_export        daily partitions: the day's log files delivered to a bucket
                                 (pipelines/export.py, `pipelines.delivery`; job <scenario>_export)
    <scenario>/pubsub_publish    daily partitions: each event of the day as a Pub/Sub message
                                 (pipelines/pubsub/, `pipelines.delivery`; job <scenario>_publish)
    <scenario>/sql_export        daily partitions: the day's rows in a SQL database
                                 (pipelines/sql_export.py, `pipelines.sink_assets`; job <scenario>_sql)
    <scenario>/file_export       daily partitions: the day's logs as files in a folder
                                 (pipelines/file_export.py, `pipelines.sink_assets`; job <scenario>_files)

Large data never goes through an IO manager: assets write through the storage resource and
return metadata.  Backfills run in one run that loops over the days in order
(``BackfillPolicy.single_run()``), so ``dagster asset materialize --partition-range A...B``
works from the CLI; daemon backfills follow the self-dependency one day at a time.
"""

import warnings
from collections.abc import Sequence

import dagster as dg
import pandas as pd
from pydantic import Field, field_validator

from circus_core import CircusError
from pipelines.daystore import INITIAL, DayStore, describe_world
from pipelines.log_assets import build_log_asset, preview
from pipelines.monitor import tag_run
from pipelines.scenarios import Scenario
from pipelines.shards import ShardedResult, run_sharded
from pipelines.simulate import DayResult, committed_day, simulate_day
from resources.cluster import DaskResource
from resources.storage import StorageResource

__all__ = ["InitialStateConfig", "SimulationConfig", "build_scenario_definitions", "scenario_partitions"]

# single-run backfill policies are what make CLI partition ranges run the days in order
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")


class InitialStateConfig(dg.Config):
    """Run configuration of ``<scenario>/initial_state``."""

    size: int = Field(default=0, description="members of the main population (0: the scenario's default)")
    seed: int = Field(default=-1, description="root seed (-1: the scenario's own)")
    shards: int = Field(default=0, description="independent sub-worlds, run in parallel (0: the scenario's own count)")
    reshard: bool = Field(
        default=False,
        description="allow a shard count other than the one the stored world was built with "
        "(a different world: every day must be simulated again)",
    )
    reset: bool = Field(
        default=False,
        description="build a world other than the stored one (another size, seed, shard count or definition) "
        "although days of the stored one are committed: those days are removed",
    )

    @field_validator("shards")
    @classmethod
    def _check_shards(cls, shards: int) -> int:
        if shards < 0:
            raise ValueError(f"initial_state config 'shards' = {shards!r}: must be > 0, or 0 for the scenario's own")
        return shards

    # pydantic runs these when the run builds the config, so a bad value fails the run before the
    # circus is built, and the run's error names the config key and the value
    @field_validator("size")
    @classmethod
    def _check_size(cls, size: int) -> int:
        if size < 0:
            raise ValueError(f"initial_state config 'size' = {size!r}: must be > 0, or 0 for the scenario's default")
        return size

    @field_validator("seed")
    @classmethod
    def _check_seed(cls, seed: int) -> int:
        """Only -1 means "the scenario's own seed": -5 is a typo, not a request for the default."""
        if seed < -1:
            raise ValueError(
                f"initial_state config 'seed' = {seed!r}: must be a non-negative integer, or -1 for the scenario's own"
            )
        return seed


class SimulationConfig(dg.Config):
    """Run configuration of ``<scenario>/simulation``."""

    force: bool = Field(
        default=False,
        description="simulate the days again even when committed and unchanged (by default such a day is kept: "
        "the same world from the same checkpoint gives the same bytes)",
    )


def scenario_partitions(scenario: Scenario) -> dg.DailyPartitionsDefinition:
    """Daily partitions (UTC) from the scenario's start, which must be a midnight."""
    start = pd.Timestamp(scenario.start).tz_convert("UTC")
    if start != start.normalize():
        raise CircusError(f"scenario {scenario.name!r} starts at {start}, not at midnight UTC")
    return dg.DailyPartitionsDefinition(start_date=start.strftime("%Y-%m-%d"), timezone="UTC")


def _hour_chart(per_hour: Sequence[int]) -> dg.MetadataValue:
    """Events per hour of the day as a markdown bar chart (Dagster has no native chart)."""
    peak = max(max(per_hour), 1)
    lines = ["| hour | events | |", "|---:|---:|:---|"]
    lines += [f"| {h:02d}:00 | {n:,} | {'█' * round(30 * n / peak)} |" for h, n in enumerate(per_hour)]
    return dg.MetadataValue.md("\n".join(lines))


def _fail(exc: Exception) -> dg.Failure:
    return dg.Failure(description=str(exc), allow_retries=False)


def build_scenario_definitions(scenario: Scenario) -> dg.Definitions:
    """The assets, checks, job and schedule of one scenario."""
    name = scenario.name
    partitions = scenario_partitions(scenario)
    initial_key = dg.AssetKey([name, "initial_state"])
    sim_key = dg.AssetKey([name, "simulation"])

    # the world's definition is the assets' code version and the initial state's data version is
    # the world's id: a new world, or a changed definition, marks every simulated day stale in the UI
    @dg.asset(
        key=initial_key,
        code_version=scenario.definition_hash,
        group_name=name,
        kinds={"python", "parquet"},
        description=(
            f"{scenario.description}\n\nThe circus at the scenario's start ({scenario.start}): populations, "
            "relationships and generators, built and saved as the checkpoint the first simulated day starts from."
        ),
    )
    def initial_state(
        context: dg.AssetExecutionContext, config: InitialStateConfig, storage: StorageResource, dask: DaskResource
    ) -> dg.MaterializeResult:
        tag_run(context)
        store = DayStore(storage.backend(), scenario)  # a missing bucket fails before the build
        count = config.shards or scenario.shards
        size = config.size or scenario.default_size
        seed = scenario.seed if config.seed == -1 else config.seed
        if store.is_committed(INITIAL) and store.shards(INITIAL) != count and not config.reshard:
            raise dg.Failure(
                description=f"{name}: the stored world at {storage.backend().url(store.checkpoint_key(INITIAL))} "
                f"has {store.shards(INITIAL)} shards; {count} shards make a different world (other members, "
                "other events). Set initial_state config reshard: true to replace it, then simulate every day again.",
                allow_retries=False,
            )
        world = scenario.world_fingerprint(size, seed, count)
        try:
            with store.lease(f"run {context.run.run_id} ({name}/initial_state)"):
                _replace_world(context, store, world, config.reset)
                if count > 1 or dask.address:
                    return _sharded_initial(context, store, dask, count, size, seed, str(world["id"]))
                circus = scenario.create(size, seed)
                marker = store.save_initial(circus, world)
        except CircusError as exc:
            raise _fail(exc) from exc
        metadata: dict[str, object] = {"checkpoint": marker["clock"], "seed": circus.master_seed, "world": world["id"]}
        for pop in circus.populations.values():
            metadata[f"population {pop.name}"] = pop.size
            metadata[f"preview {pop.name}"] = preview(pop.to_dataframe())
            for rel in pop.relationships.values():
                metadata[f"relationship {pop.name}.{rel.name}"] = rel.size
                metadata[f"preview {pop.name}.{rel.name}"] = preview(rel.get_relations())
        context.log.info(
            f"{name}: initial state saved ({', '.join(f'{p.name}={p.size}' for p in circus.populations.values())})"
        )
        return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(str(world["id"])))

    @dg.asset(
        key=sim_key,
        code_version=scenario.definition_hash,
        group_name=name,
        kinds={"python", "parquet"},
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # the newest day is simulated once it exists (after midnight UTC) and its previous day is
        # committed: the `circus_automation` sensor requests it (the daily schedule is the other way)
        automation_condition=dg.AutomationCondition.on_missing(),
        deps=[
            initial_key,
            dg.AssetDep(sim_key, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
        ],
        description=(
            f"One simulated day of {name} per partition: loads the previous day's end-of-day checkpoint "
            "(the initial state for the first day), runs that day, and writes the day's logs (one Parquet "
            "dataset per log, logs/<log_id>/date=YYYY-MM-DD/) and its end-of-day checkpoint, committed by a "
            "marker written last. Backfills run the days in order, in one run."
        ),
    )
    def simulation(
        context: dg.AssetExecutionContext, config: SimulationConfig, storage: StorageResource, dask: DaskResource
    ) -> dg.MaterializeResult:
        """Each day is reported as its own partition's materialization the moment it commits (a
        killed backfill shows exactly the committed days), with that day's metadata; the run's
        closing events carry the same per-partition metadata (`add_asset_metadata`), no totals."""
        tag_run(context)
        store = DayStore(storage.backend(), scenario)
        count = store.shards(INITIAL) if store.is_committed(INITIAL) else 1
        days = sorted(context.partition_keys)

        def commit(result: DayResult | ShardedResult) -> None:
            metadata = _day_metadata(store, result, count)
            context.add_asset_metadata(metadata, partition_key=result.day)
            context.log_event(dg.AssetMaterialization(asset_key=sim_key, partition=result.day, metadata=metadata))

        def skip(day: str) -> bool:
            """A committed day of this world from the same checkpoint gives the same bytes again:
            it is kept as it is (re-simulating would un-commit it first)."""
            if config.force or not store.unchanged(day):
                return False
            context.log.info(
                f"{name} {day}: committed and unchanged (same world, same input): kept; force: true redoes it"
            )
            commit(committed_day(store, day))
            return True

        try:
            with store.lease(f"run {context.run.run_id} ({name}/simulation {days[0]}..{days[-1]})") as lease:
                if count == 1 and not dask.address:
                    for day in days:
                        if not skip(day):
                            commit(simulate_day(store, day, log=context.log.info))
                        lease.renew()
                else:
                    with dask.runner(count) as runner:
                        for day in days:
                            if not skip(day):
                                commit(run_sharded(store, day, count, runner, log=context.log.info))
                            lease.renew()
        except CircusError as exc:
            raise _fail(exc) from exc
        return dg.MaterializeResult()

    log_assets = [build_log_asset(scenario, log_id, partitions, sim_key) for log_id in scenario.log_ids]
    job = dg.define_asset_job(
        f"{name}_daily",
        selection=dg.AssetSelection.assets(sim_key, *(a.key for a in log_assets)),
        description=f"One simulated day of {name} and its log streams.",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        job, hour_of_day=1, description=f"Every day at 01:00 UTC, simulates the previous day of {name}."
    )
    assets: list[dg.AssetsDefinition] = [initial_state, simulation, *log_assets]
    if scenario.fitted is not None:  # a world fitted to a real log: how close it comes
        from pipelines.fidelity_asset import build_fidelity_asset

        assets.append(build_fidelity_asset(scenario))
    return dg.Definitions(assets=assets, jobs=[job], schedules=[schedule])


def _sharded_initial(
    context: dg.AssetExecutionContext,
    store: DayStore,
    dask: DaskResource,
    count: int,
    size: int,
    seed: int,
    world_id: str,
) -> dg.MaterializeResult:
    """The initial state as ``count`` shard tasks on the Dask cluster (`pipelines.shards`)."""
    try:
        with dask.runner(count) as runner:
            result = run_sharded(store, INITIAL, count, runner, log=context.log.info, build=(size, seed))
    except CircusError as exc:
        raise _fail(exc) from exc
    metadata: dict[str, object] = {"checkpoint": result.marker["clock"], "seed": seed, "shards": count}
    members: dict[str, int] = {}
    for part in result.shards:
        for pop, n in part["members"].items():
            members[pop] = members.get(pop, 0) + n
    metadata.update({f"population {pop}": n for pop, n in members.items()})
    metadata["per shard"] = _shard_table([result])
    context.log.info(f"{store.scenario.name}: initial state saved in {count} shards")
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(world_id))


def _replace_world(context: dg.AssetExecutionContext, store: DayStore, world: dict[str, object], reset: bool) -> None:
    """A new initial state of *another* world may not silently sit under days of the stored one:
    refused while such days are committed, unless ``reset`` removes them (counted in the log)."""
    if not store.is_committed(INITIAL) or (store.world(INITIAL) or {}).get("id") == world["id"]:
        return  # nothing stored, or the same world again (the same bytes)
    days = store.committed_days()
    if not days:
        return
    stored = describe_world(store.world(INITIAL))
    if not reset:
        raise dg.Failure(
            description=f"{store.scenario.name}: {len(days)} committed day(s) ({days[0]} to {days[-1]}) belong to "
            f"{stored}; this run would build {describe_world(world)}. Set initial_state config reset: true to "
            "remove those days and start over, or build the stored world again.",
            allow_retries=False,
        )
    store.remove_days(days)
    context.log.warning(
        f"{store.scenario.name}: reset: removed {len(days)} day(s) of {stored} ({days[0]} to {days[-1]})"
    )


def _day_metadata(store: DayStore, result: DayResult | ShardedResult, shards: int) -> dict[str, object]:
    """One committed day, as its partition shows it: rows per log (one line per log in the Plots
    tab), ``dagster/row_count``, events per hour, wall time, rows/s, and where its files are."""
    total = sum(result.rows.values())
    metadata: dict[str, object] = {f"rows {k}": v for k, v in sorted(result.rows.items())}
    metadata.update(
        {
            "dagster/row_count": total,
            "wall time (s)": round(result.seconds, 2),
            "rows/s": round(total / result.seconds) if result.seconds else 0,
            "events per hour of day": _hour_chart(result.rows_per_hour),
            "checkpoint": dg.MetadataValue.path(store.backend.url(store.checkpoint_key(result.day))),
            "files": dg.MetadataValue.md(
                "\n".join(
                    f"- {log_id}: `{store.backend.url(store.log_key(log_id, result.day))}`"
                    for log_id in sorted(result.rows)
                )
            ),
        }
    )
    if shards > 1:
        metadata["shards"] = shards
        metadata["per shard"] = _shard_table([result])
    return metadata


#: a shard task's phases (`pipelines.shards.simulate_shard`)
_PHASES = ("load_s", "simulate_s", "stage_s")


def _shard_table(results: Sequence[object]) -> dg.MetadataValue:
    """Rows, seconds (and where they went: checkpoint read, simulation, staging) and worker of
    every shard of every day, as a markdown table: a slow shard shows which phase was slow."""
    lines = [
        "| day | shard | rows | seconds | load / simulate / stage s | worker |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        for part in getattr(r, "shards", []):
            rows = sum(part["rows"].values()) if part["rows"] else sum(part.get("members", {}).values())
            phases = " / ".join(f"{part[k]:.1f}" for k in _PHASES) if all(k in part for k in _PHASES) else ""
            lines.append(
                f"| {r.day} | {part['shard']} | {rows:,} | {part['seconds']:.1f} | {phases} | {part['worker']} |"
            )
    return dg.MetadataValue.md("\n".join(lines))
