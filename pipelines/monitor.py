"""Runs whose process died, marked failed: run monitoring for the runs Dagster's daemon does not
watch.

The daemon's run monitoring (``pipelines/dagster.yaml``) watches the runs its launcher started;
a run of the command line (``dg launch``, ``circus backfill``) executes in that command's process,
and when that process is killed the run stays STARTED for ever.  Every Circus asset tags its run
with the host and pid executing it (`tag_run`); `reconcile` marks the STARTED runs of this host
whose process is gone as failed, and the ``circus_dead_runs`` sensor runs it every 30 s wherever
a daemon runs (``dagster dev``, ``make ui``); the ``circus`` commands run it before they start.
"""

from __future__ import annotations

import os
import socket

import dagster as dg

from pipelines.scratch import pid_alive

__all__ = ["HOST_TAG", "PID_TAG", "dead_runs_sensor", "reconcile", "tag_run"]

HOST_TAG = "circus/host"
PID_TAG = "circus/pid"


def tag_run(context: dg.AssetExecutionContext) -> None:
    """Record which process executes this run (once per run; cheap)."""
    tags = context.run.tags
    if tags.get(PID_TAG) != str(os.getpid()):
        context.instance.add_run_tags(context.run.run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})


def reconcile(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the STARTED runs executed by a process of this host that no longer exists;
    returns their run ids."""
    host = socket.gethostname()
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: host}), limit=1000
    )
    failed = []
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if pid.isdigit() and not pid_alive(int(pid)):
            instance.report_run_failed(
                run, message=f"the process executing this run (pid {pid} on {host}) is gone: killed or crashed"
            )
            failed.append(run.run_id)
    return failed


@dg.sensor(
    name="circus_dead_runs",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process died (command-line runs killed or crashed), "
    "which Dagster's own run monitoring does not watch.",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    failed = reconcile(context.instance)
    return dg.SkipReason(f"marked {len(failed)} dead run(s) failed: {', '.join(failed)}" if failed else "no dead run")
