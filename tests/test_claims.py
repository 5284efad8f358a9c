"""Atomic, expiring run claims (noisybench.claims)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noisybench.store.claims import (
    CLAIMS,
    Claim,
    ClaimInfo,
    ClaimLostError,
    current_claim,
    holder_info,
    process_start,
    read_claims,
    try_claim,
)


def _forge(root: Path, run_id: str, generation: int, age: float = 0.0, **holder: object) -> Path:
    """A claim file as another process would have left it, with a heartbeat ``age`` seconds old."""
    (root / CLAIMS).mkdir(parents=True, exist_ok=True)
    path = root / CLAIMS / f"{run_id}.{generation}"
    path.write_text(json.dumps(holder))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_is_exclusive_until_released(tmp_path: Path) -> None:
    first = try_claim(tmp_path, "r1")
    assert isinstance(first, Claim) and first.owned()
    second = try_claim(tmp_path, "r1")  # even this process may not claim it twice
    assert isinstance(second, ClaimInfo) and second.holder["pid"] == os.getpid()
    first.release()
    assert current_claim(tmp_path, "r1") is None
    third = try_claim(tmp_path, "r1")
    assert isinstance(third, Claim) and third.generation == 0
    third.release()
    log = (tmp_path / CLAIMS / "log").read_text().splitlines()
    assert [line.split()[1:4] for line in log] == [["acquire", "r1", "0"], ["acquire", "r1", "0"]]


def test_claim_of_dead_local_process_is_taken_over(tmp_path: Path) -> None:
    _forge(tmp_path, "r1", 0, host=socket.gethostname(), pid=_dead_pid(), start="1", job=None)
    claim = try_claim(tmp_path, "r1")
    assert isinstance(claim, Claim) and claim.generation == 1
    assert not (tmp_path / CLAIMS / "r1.0").exists()  # the replaced generation is tidied
    claim.release()


def test_pid_reuse_is_detected_by_start_time(tmp_path: Path) -> None:
    parent = os.getppid()  # alive, but the claim says it started at another time
    _forge(tmp_path, "r1", 0, host=socket.gethostname(), pid=parent, start="12345", job=None)
    assert process_start(parent) != "12345"
    claim = try_claim(tmp_path, "r1")
    assert isinstance(claim, Claim)
    claim.release()


def test_live_claim_of_another_process_is_respected(tmp_path: Path) -> None:
    parent = os.getppid()
    _forge(tmp_path, "r1", 0, host=socket.gethostname(), pid=parent, start=process_start(parent), job=None)
    got = try_claim(tmp_path, "r1")
    assert isinstance(got, ClaimInfo) and got.holder["pid"] == parent
    assert f"pid {parent}" in got.describe()


def test_remote_claim_expires_only_after_ttl(tmp_path: Path) -> None:
    _forge(tmp_path, "r1", 0, age=5, host="elsewhere", pid=1, start="1", job=None)
    assert isinstance(try_claim(tmp_path, "r1", ttl=60), ClaimInfo)
    _forge(tmp_path, "r2", 3, age=120, host="elsewhere", pid=1, start="1", job=None)
    claim = try_claim(tmp_path, "r2", ttl=60)
    assert isinstance(claim, Claim) and claim.generation == 4
    claim.release()


def test_earlier_incarnation_of_same_slurm_job_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    _forge(tmp_path, "r1", 0, host="node9", pid=4242, start="1", job="77_3")  # fresh heartbeat
    _forge(tmp_path, "r2", 0, host="node9", pid=4242, start="1", job="77_4")  # another task: live
    assert holder_info()["job"] == "77_3"
    claim = try_claim(tmp_path, "r1")
    assert isinstance(claim, Claim)
    claim.release()
    assert isinstance(try_claim(tmp_path, "r2"), ClaimInfo)


def test_heartbeat_refreshes_and_loser_notices(tmp_path: Path) -> None:
    claim = try_claim(tmp_path, "r1", interval=0.1)
    assert isinstance(claim, Claim)
    time.sleep(0.4)
    assert read_claims(tmp_path)["r1"].age < 0.3  # heartbeat every 0.1 s
    _forge(tmp_path, "r1", claim.generation + 1, host="elsewhere", pid=1, start="1", job=None)
    with pytest.raises(ClaimLostError, match="claim lost to elsewhere"):
        claim.check()
    claim.release()  # not ours any more: must leave the newer claim alone
    assert current_claim(tmp_path, "r1").holder["host"] == "elsewhere"


def _race(root: str, run_ids: list[str], ttl: float, barrier: multiprocessing.Barrier,
          queue: multiprocessing.Queue) -> None:
    barrier.wait()
    won = []
    for run_id in run_ids:
        got = try_claim(root, run_id, ttl=ttl)
        if isinstance(got, Claim):
            won.append(run_id)
    barrier.wait()  # hold every claim until all contenders have tried
    queue.put(won)


@pytest.mark.parametrize("stale_first", [False, True], ids=["fresh", "takeover"])
def test_racing_processes_each_run_claimed_once(tmp_path: Path, stale_first: bool) -> None:
    run_ids = [f"run{i:02d}" for i in range(25)]
    if stale_first:  # every run starts with a dead holder: contenders race to take it over
        for run_id in run_ids:
            _forge(tmp_path, run_id, 2, age=1000, host="gone", pid=1, start="1", job=None)
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), run_ids[::step], 60.0, barrier, queue))
             for step in (1, 1, 1, -1, -1, -1)]
    for proc in procs:
        proc.start()
    wins = [queue.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    flat = [r for won in wins for r in won]
    assert sorted(flat) == run_ids  # every run won exactly once
    log = [line.split() for line in (tmp_path / CLAIMS / "log").read_text().splitlines()]
    assert sorted(entry[2] for entry in log) == run_ids


def test_release_of_a_claim_with_a_huge_generation_returns_at_once(tmp_path: Path) -> None:
    import threading

    huge = 10**18
    _forge(tmp_path, "r1", huge - 3, age=1000, host="gone", pid=1, start="1", job=None)  # an older generation
    claim = try_claim(tmp_path, "r1", ttl=60)
    assert isinstance(claim, Claim) and claim.generation == huge - 2
    done = threading.Event()
    thread = threading.Thread(target=lambda: (claim.release(), done.set()), daemon=True)
    thread.start()
    assert done.wait(5), "release() walks every generation number down to 0"
    assert not list((tmp_path / CLAIMS).glob("r1.*"))


@pytest.mark.parametrize("content", ["", "{trunc", "[1, 2]", "null", '"text"'])
def test_an_empty_or_garbage_claim_does_not_block_the_run(tmp_path: Path, content: str) -> None:
    """What a process killed between creating its claim file and writing it leaves behind: never a live claim."""
    (tmp_path / CLAIMS).mkdir()
    (tmp_path / CLAIMS / "r1.0").write_text(content)  # fresh mtime: only its content says it is dead
    claim = try_claim(tmp_path, "r1", ttl=300)
    assert isinstance(claim, Claim) and claim.generation == 1
    claim.release()


def test_a_claim_is_never_seen_half_written(tmp_path: Path) -> None:
    """A claim file appears with its content in one step (no window in which it is empty)."""
    claim = try_claim(tmp_path, "r1")
    assert isinstance(claim, Claim)
    seen = json.loads((tmp_path / CLAIMS / "r1.0").read_text())
    assert seen["pid"] == os.getpid() and seen["host"] == socket.gethostname()
    assert not [p.name for p in (tmp_path / CLAIMS).iterdir() if p.name not in ("r1.0", "log")]  # no temp left
    claim.release()


def test_a_heartbeat_in_the_future_does_not_block_the_run(tmp_path: Path) -> None:
    _forge(tmp_path, "r1", 0, age=-3600, host="elsewhere", pid=1, start="1", job=None)  # clock far ahead
    claim = try_claim(tmp_path, "r1", ttl=60)
    assert isinstance(claim, Claim) and claim.generation == 1
    claim.release()
    _forge(tmp_path, "r2", 0, age=-5, host="elsewhere", pid=1, start="1", job=None)  # a few seconds of skew
    assert isinstance(try_claim(tmp_path, "r2", ttl=60), ClaimInfo)


_HOLD = """
import sys, time
from noisybench.store.claims import try_claim, Claim
claim = try_claim(sys.argv[1], "r1", ttl=float(sys.argv[2]))
print("won" if isinstance(claim, Claim) else "lost", flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("ttl", [0.0, 0.001, -1.0, float("nan")])
def test_no_ttl_lets_two_processes_hold_one_run(tmp_path: Path, ttl: float) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path), repr(ttl)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "won"
        time.sleep(0.5)  # the holder is alive and beating; a TTL of (about) zero must not expire it
        got = try_claim(tmp_path, "r1", ttl=ttl)
        assert isinstance(got, ClaimInfo) and got.holder["pid"] == holder.pid
        _forge(tmp_path, "r2", 0, age=0.5, host="elsewhere", pid=1, start="1", job=None)  # a fresh remote heartbeat
        assert isinstance(try_claim(tmp_path, "r2", ttl=ttl), ClaimInfo)
    finally:
        holder.kill()
        holder.wait()
