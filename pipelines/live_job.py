"""``<scenario>_live``: live mode (`pipelines.live`) as a long-running Dagster job.

One op that runs until its ``until`` time, or until the run is terminated from the UI: the
interrupt reaches the publisher, which saves its progress on the way out, and launching the job
again with the same configuration resumes from there.  It simulates the days it needs with the
same storage and code as ``<scenario>/simulation``, so its days are the batch partitions.
"""

import dagster as dg
from pydantic import Field

from circus_core import CircusError
from pipelines.daystore import DayStore
from pipelines.live import PAST, Destination, FileDestination, LiveOptions, PubSubDestination, lag_line, run_live
from pipelines.scenarios import Scenario
from resources.pubsub import PubSubResource
from resources.storage import StorageResource

__all__ = ["LiveConfig", "build_live_job"]


class LiveConfig(dg.Config):
    """How the live run goes (see `pipelines.live`)."""

    to: str = Field(
        default="pubsub",
        description="'pubsub' (the CIRCUS_PUBSUB_* topic) or a folder: JSON lines <folder>/<scenario>/<log>/date=D/",
    )
    speed: float = Field(default=1.0, description="simulated seconds per second (1 = real time)")
    start: str = Field(default="", description="simulated time the clock starts at (ISO 8601; empty: now)")
    until: str = Field(default="", description="stop when the clock reaches this time (empty: run until terminated)")
    past: str = Field(default="skip", description=f"events of the first day already past: one of {list(PAST)}")
    catchup_rate: float = Field(default=0.0, description="events/s while catching up (0 = no limit)")
    restart_clock: bool = Field(default=False, description="start a new clock even if an earlier run saved one")

    def options(self) -> LiveOptions:
        return LiveOptions(
            speed=self.speed,
            start=self.start or None,
            until=self.until or None,
            past=self.past,
            catchup_rate=self.catchup_rate,
            restart_clock=self.restart_clock,
        ).checked()


def build_live_job(scenario: Scenario) -> dg.JobDefinition:
    """``<scenario>_live``: one op delivering the world's events as they happen."""

    @dg.op(name=f"{scenario.name}_live_events", tags={"kind": "live"})
    def live(
        context: dg.OpExecutionContext, config: LiveConfig, storage: StorageResource, pubsub: PubSubResource
    ) -> dg.Output[None]:
        try:
            options = config.options()  # a bad option fails before anything is touched
            destination: Destination = (
                PubSubDestination(pubsub.settings()) if config.to == "pubsub" else FileDestination(config.to)
            )
            report = run_live(DayStore(storage.backend(), scenario), destination, options, context.log.info)
        except CircusError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        lag = report.lag_summary()
        context.log.info(f"live {scenario.name}: {report.sent:,} events, {lag_line(report)}")
        return dg.Output(
            None,
            metadata={
                "destination": report.target,
                "events sent": report.sent,
                "skipped or sent before": report.skipped,
                "days": ", ".join(r.day for r in report.days),
                "days simulated": ", ".join(report.simulated) or "none",
                "lag p50 (ms)": round(lag["p50"] * 1000, 2) if report.sent else 0.0,
                "lag p99 (ms)": round(lag["p99"] * 1000, 2) if report.sent else 0.0,
            },
        )

    @dg.job(
        name=f"{scenario.name}_live",
        description=(
            f"Live mode: the events of {scenario.name} delivered as the clock reaches them (Pub/Sub or JSON-lines "
            "files), the world simulated ahead; terminate the run to stop, launch it again to resume."
        ),
        tags={"circus/live": scenario.name},
    )
    def live_job() -> None:
        live()

    return live_job
