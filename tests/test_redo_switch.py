"""Issue 13.4: commits never go backwards.  Re-writing a committed day stages the new version
beside the stored one and switches to it in one step (pipelines/daystore.py): a writer that dies
at *any* of its storage writes leaves, once the world's next writer has taken its lease, either
the old committed day or the new one -- byte for byte -- never neither, and nothing hidden.

The writer's death is a `BaseException` raised by the real backend at its n-th write, for every
n: like a SIGKILL it runs no ``except Exception`` clean-up, and unlike random kills it visits
every point between two writes."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.daystore import INITIAL, MARKER, SWITCH, DayNotReadyError, DayStore
from pipelines.scenarios import get_scenario
from pipelines.simulate import load_day_start, run_day, simulate_day
from resources.storage import LocalBackend, StorageBackend

SCENARIO = get_scenario("telecom")
DAYS = ("2026-01-05", "2026-01-06")
SIZE = 200


class Killed(BaseException):
    """The writer's process died (no ``except Exception`` handler runs)."""


class DiesAtWrite(LocalBackend):
    """The real folder, whose writer dies at its ``at``-th write (put, rename or delete)."""

    def __init__(self, root: Path, at: int) -> None:
        super().__init__(root)
        self.at, self.writes = at, 0
        self.log: list[str] = []  # the key of every write, in order

    def _write(self, key: str) -> None:
        self.writes += 1
        self.log.append(key)
        if self.writes == self.at:
            raise Killed(f"killed at write {self.at}")

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key)
        super().put_bytes(key, data)

    def put_file(self, local: Path, key: str) -> None:
        self._write(key)
        super().put_file(local, key)

    def rename(self, src: str, dst: str) -> None:
        self._write(dst)
        super().rename(src, dst)

    def delete(self, key: str) -> None:
        self._write(key)
        super().delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self._write(prefix)
        super().delete_prefix(prefix)


def day_files(root: Path, day: str) -> dict[str, bytes]:
    """Every file of ``day`` under ``root`` (checkpoint, marker, logs), hidden ones included; the
    markers' URLs without their root (trials are copies of one world in other folders)."""
    base = root / SCENARIO.name
    found = {}
    for folder in [base / "checkpoints" / day, *(base / "logs").glob(f"*/date={day}")]:
        for path in folder.rglob("*"):
            if path.is_file():
                data = re.sub(rb'"url": "[^"]*?/telecom/', b'"url": "<root>/telecom/', path.read_bytes())
                found[path.relative_to(root).as_posix()] = data
    return found


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Path], Path]]:
    """A world with its first two days committed, and a *different* version of day 1 ready to be
    committed over it: the same day simulated by a circus of another seed (other logs, other
    checkpoint), so that the old and the new version differ in every file."""
    root = tmp_path_factory.mktemp("world") / "store"
    store = DayStore(LocalBackend(root), SCENARIO)
    store.save_initial(SCENARIO.create(SIZE), SCENARIO.world_fingerprint(SIZE, SCENARIO.seed, 1))
    for day in DAYS:
        simulate_day(store, day, log=lambda _: None)
    other = tmp_path_factory.mktemp("other")
    other_store = DayStore(LocalBackend(other / "store"), SCENARIO)
    other_store.save_initial(SCENARIO.create(SIZE, SCENARIO.seed + 1))
    circus = load_day_start(other_store, DAYS[0])
    files, _, _ = run_day(circus, DAYS[0], other / "logs", "new version", lambda _: None)
    checkpoint = other / "circus"
    circus.save(checkpoint)
    return root, files, checkpoint


def _redo(backend: StorageBackend, files: dict[str, Path], checkpoint: Path) -> None:
    store = DayStore(backend, SCENARIO)
    store.commit_day(DAYS[0], SCENARIO.restore(checkpoint), files=files)


def test_a_redo_killed_at_any_write_leaves_the_old_day_or_the_new_one(
    base: tuple[Path, dict[str, Path], Path], tmp_path: Path
) -> None:
    root, files, checkpoint = base
    old = day_files(root, DAYS[0])
    clean = tmp_path / "clean"
    shutil.copytree(root, clean)
    counter = DiesAtWrite(clean, at=0)
    _redo(counter, files, checkpoint)
    new = day_files(clean, DAYS[0])
    assert set(new) != set(old) or new != old
    changed = [k for k in old.keys() & new.keys() if old[k] != new[k]]
    assert any(k.endswith(".parquet") and "/logs/" in k for k in changed) and any(MARKER in k for k in changed)
    outcomes = []
    for at in range(1, counter.writes + 1):
        trial = tmp_path / f"killed-{at}"
        shutil.copytree(root, trial)
        with pytest.raises(Killed):
            _redo(DiesAtWrite(trial, at), files, checkpoint)
        store = DayStore(LocalBackend(trial), SCENARIO)
        with store.lease("the next run"):  # completes a half-done switch, sweeps the rest
            pass
        after = day_files(trial, DAYS[0])
        assert after in (old, new), f"killed at write {at} of {counter.writes}: neither the old day nor the new"
        assert not list(trial.rglob(".*")), f"killed at write {at}: hidden leftovers"
        assert store.is_committed(DAYS[0])
        outcomes.append("old" if after == old else "new")
        shutil.rmtree(trial)
    # the commit point is the commit record: a kill up to its write keeps the old day, after it
    # the switch is completed
    record_write = counter.log.index(f"{SCENARIO.name}/checkpoints/{DAYS[0]}/{SWITCH}") + 1
    assert outcomes == ["old"] * record_write + ["new"] * (counter.writes - record_write), outcomes


def test_a_half_switched_day_is_not_ready_for_readers_until_the_next_writer(
    base: tuple[Path, dict[str, Path], Path], tmp_path: Path
) -> None:
    """Between a kill during the switch and the next writer, the day is neither old nor new to
    a reader: its marker is not served (the files may be half-switched), and the error says why."""
    root, files, checkpoint = base
    counter = DiesAtWrite(tmp_path / "clean", at=0)
    shutil.copytree(root, counter.root)
    _redo(counter, files, checkpoint)
    record_write = counter.log.index(f"{SCENARIO.name}/checkpoints/{DAYS[0]}/{SWITCH}") + 1
    trial = tmp_path / "trial"
    shutil.copytree(root, trial)
    with pytest.raises(Killed):
        _redo(DiesAtWrite(trial, at=record_write + 2), files, checkpoint)  # two files switched
    store = DayStore(LocalBackend(trial), SCENARIO)
    assert not store.is_committed(DAYS[0])
    with pytest.raises(DayNotReadyError, match=r"half-way through switching .*_COMMITTING\.json"):
        store.marker(DAYS[0])
    assert store.recover() == [DAYS[0]]
    assert store.is_committed(DAYS[0]) and day_files(trial, DAYS[0]) == day_files(counter.root, DAYS[0])


def test_the_next_day_continues_whichever_version_is_committed(base: tuple, tmp_path: Path) -> None:
    """After a switch to a new version of day 1, day 2 is no longer 'unchanged' (its input is
    another day) and is simulated again from the new checkpoint."""
    root, files, checkpoint = base
    trial = tmp_path / "trial"
    shutil.copytree(root, trial)
    store = DayStore(LocalBackend(trial), SCENARIO)
    assert store.unchanged(DAYS[1])
    _redo(store.backend, files, checkpoint)
    assert not store.unchanged(DAYS[1])
    assert store.marker(DAYS[0])["continues"] == INITIAL
