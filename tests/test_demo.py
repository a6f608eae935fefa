"""``make demo``: the whole graph against the emulators the demo starts itself, and a report of
where the objects and messages went."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_demo_delivers_a_day_to_the_bucket_and_the_topic(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "pipelines.demo", "--days", "1", "--size", "200", "--out", str(tmp_path / "demo")]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    objects = re.findall(r"gs://circus-demo-deliveries/circus/telecom/(\w+)/date=2026-01-05/part-00000.parquet", out)
    assert sorted(objects) == ["sms_cdr", "voice_cdr"]
    total = int(re.search(r"Messages on \S+ \(Pub/Sub emulator\): ([\d,]+)", out).group(1).replace(",", ""))
    per_log = {k: int(v.replace(",", "")) for k, v in re.findall(r"^  (\w+_cdr): ([\d,]+)$", out, re.M)}
    assert total > 0 and sum(per_log.values()) == total
    published = re.search(r"published ([\d,]+) events", out)
    assert published is not None and int(published.group(1).replace(",", "")) == total
