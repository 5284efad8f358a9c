"""Atomic, expiring claims on runs, so concurrent drivers and jobs never train a run twice.

A claim on run ``R`` is a file ``<out>/claims/R.<generation>``, created exclusively and whole: its
content is written to a private temporary file that is then hard-linked to the claim's name
(``link`` fails when the name exists; where a file system has no hard links, ``O_CREAT | O_EXCL``).
Of several processes that try the same name exactly one succeeds, on local disks and on NFS
alike. The file records the holder (host, pid, process start time, Slurm job id) and its
modification time is the holder's heartbeat, refreshed by a background thread.

The current claim of a run is its highest generation. A claim is *stale* when

* its heartbeat is further from now than the time-to-live, in the past (the holder hung, or died
  on another host) or in the future (a clock far off; a small skew between hosts is harmless). The
  time-to-live is never taken below :data:`MIN_TTL`, whatever is asked, so a live holder's
  heartbeat (every fifth of it) always keeps its claim;
* it was made on this host by a process that no longer exists (pid gone or reused);
* it was made by an earlier incarnation of this very Slurm job (the job was requeued);
* its content is not a holder (empty or garbage: a process killed while creating it, before
  claims were written whole).

A stale claim is never deleted and re-created (two breakers could then both win); it is taken
over by creating the *next* generation with ``O_EXCL``, so again exactly one process wins. A
holder that finds a higher generation than its own has lost the run and must stop
(:meth:`Claim.check`). Every acquisition is appended to ``<out>/claims/log`` for auditing.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisybench.errors import NoisybenchError

CLAIMS = "claims"
#: Seconds without a heartbeat after which a claim is stale (``$NOISYBENCH_CLAIM_TTL``, read when claiming).
DEFAULT_TTL = 300.0


def claim_ttl() -> float:
    """The claims' time-to-live in this process (:data:`DEFAULT_TTL` or ``$NOISYBENCH_CLAIM_TTL``)."""
    from noisybench.envvars import get

    return float(get("NOISYBENCH_CLAIM_TTL"))
#: Least time-to-live (seconds) a claim is judged by: five heartbeats of a live holder, with room for a
#: busy machine's scheduling delays. A smaller (or zero, negative, NaN) TTL would let a second process
#: take a run over from a live holder between two of its heartbeats.
MIN_TTL = 10.0


def effective_ttl(ttl: float) -> float:
    """The time-to-live claims are judged by: ``ttl``, but at least :data:`MIN_TTL` (NaN counts as 0)."""
    return ttl if ttl >= MIN_TTL else MIN_TTL  # NaN compares false: MIN_TTL


def heartbeat_interval(ttl: float) -> float:
    """Seconds between two heartbeats of a claim judged by ``ttl``: a fifth of it, at most 30 s."""
    return min(30.0, effective_ttl(ttl) / 5)


class ClaimLostError(NoisybenchError):
    """Another process took over a run this process was training (our claim went stale)."""


def slurm_job_id() -> str | None:
    """``<array job>_<task>`` or the plain job id when running inside a Slurm job, else None."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc``), or None if unknown/gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]  # field 22 of stat, counted after "comm)"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_info() -> dict[str, Any]:
    """Who this process is, as written into its claims."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": process_start(pid), "job": slurm_job_id()}


@dataclass
class ClaimInfo:
    """A claim file as read back: run, generation, holder and heartbeat age in seconds.

    ``age`` is how far the heartbeat is from now, in the past or the future; ``damaged`` marks a file
    whose content is no holder (empty or garbage).
    """

    run_id: str
    generation: int
    holder: dict[str, Any]
    age: float
    path: Path
    damaged: bool = False

    def stale(self, ttl: float | None = None, me: dict[str, Any] | None = None) -> bool:
        """Whether this claim may be taken over (see the module docstring); ``ttl`` defaults to :func:`claim_ttl`."""
        ttl = claim_ttl() if ttl is None else ttl
        me = me or holder_info()
        if self.damaged or self.age > effective_ttl(ttl):
            return True
        holder = self.holder
        if holder.get("host") == me["host"] and isinstance(holder.get("pid"), int):
            pid = holder["pid"]
            if pid != me["pid"] and (not pid_alive(pid) or process_start(pid) != holder.get("start")):
                return True
        same_job = holder.get("job") is not None and holder.get("job") == me.get("job")
        return same_job and (holder.get("host"), holder.get("pid")) != (me["host"], me["pid"])

    def describe(self) -> str:
        """``host pid N (Slurm job J), heartbeat 3 s ago``."""
        holder = self.holder
        job = f" (Slurm job {holder['job']})" if holder.get("job") else ""
        return f"{holder.get('host')} pid {holder.get('pid')}{job}, heartbeat {self.age:.0f} s ago"


def _parse_name(name: str) -> tuple[str, int] | None:
    run_id, _, gen = name.rpartition(".")
    if not run_id or run_id.startswith(".") or not (gen.isascii() and gen.isdigit()):
        return None
    return run_id, int(gen)


def read_claims(root: str | Path) -> dict[str, ClaimInfo]:
    """The current (highest-generation) claim of every claimed run under output dir ``root``."""
    folder = Path(root) / CLAIMS
    best: dict[str, tuple[int, os.DirEntry]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return {}
    for entry in entries:
        parsed = _parse_name(entry.name)
        if parsed and (parsed[0] not in best or parsed[1] > best[parsed[0]][0]):
            best[parsed[0]] = (parsed[1], entry)
    claims = {}
    for run_id, (gen, entry) in best.items():
        info = _read_one(run_id, gen, Path(entry.path))
        if info is not None:
            claims[run_id] = info
    return claims


def _read_one(run_id: str, generation: int, path: Path) -> ClaimInfo | None:
    """The claim file at ``path``; None when it vanished. One this user may not read (a teammate's, written
    by an older version) is judged by its heartbeat alone; one whose content is no holder is damaged."""
    try:
        stat = path.stat()
    except OSError:
        return None
    try:
        holder = json.loads(path.read_bytes())
    except PermissionError:
        return ClaimInfo(run_id, generation, {}, abs(time.time() - stat.st_mtime), path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = None
    damaged = not (isinstance(holder, dict) and _is_holder(holder))
    if damaged:
        holder = {}
    return ClaimInfo(run_id, generation, holder, abs(time.time() - stat.st_mtime), path, damaged)


def _is_holder(holder: dict[str, Any]) -> bool:
    return isinstance(holder.get("host"), str) and isinstance(holder.get("pid"), int)


def current_claim(root: str | Path, run_id: str) -> ClaimInfo | None:
    """The highest-generation claim of ``run_id``, or None."""
    folder = Path(root) / CLAIMS
    gens = []
    for path in folder.glob(f"{run_id}.*"):
        parsed = _parse_name(path.name)
        if parsed and parsed[0] == run_id:
            gens.append(parsed[1])
    for gen in sorted(gens, reverse=True):
        info = _read_one(run_id, gen, folder / f"{run_id}.{gen}")
        if info is not None:
            return info
    return None


@dataclass
class Claim:
    """A claim this process holds; keep it alive with :meth:`start_heartbeat`, end it with :meth:`release`."""

    root: Path
    run_id: str
    generation: int
    holder: dict[str, Any]
    interval: float = 30.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        """The claim file."""
        return self.root / CLAIMS / f"{self.run_id}.{self.generation}"

    def owned(self) -> bool:
        """True while no later generation exists and our file is still there."""
        current = current_claim(self.root, self.run_id)
        return current is not None and current.generation == self.generation

    def check(self) -> None:
        """Raise :class:`ClaimLostError` when another process took the run over."""
        if not self.owned():
            current = current_claim(self.root, self.run_id)
            who = current.describe() if current else "nobody (claim file removed)"
            raise ClaimLostError(f"run {self.run_id}: claim lost to {who}; stopping this copy")

    def touch(self) -> None:
        """Refresh the heartbeat (the file's modification time)."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            pass

    def start_heartbeat(self) -> Claim:
        """Touch the claim every ``interval`` seconds from a daemon thread; returns self."""
        def beat() -> None:
            while not self._stop.wait(self.interval):
                self.touch()

        self._thread = threading.Thread(target=beat, name=f"claim-{self.run_id}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and remove our claim file (and older generations) if still ours."""
        self._stop.set()
        if self.owned():
            for path in (self.root / CLAIMS).glob(f"{self.run_id}.*"):
                parsed = _parse_name(path.name)
                if parsed and parsed[0] == self.run_id and parsed[1] <= self.generation:
                    _unlink(path)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()


def try_claim(root: str | Path, run_id: str, ttl: float | None = None,
              interval: float | None = None) -> Claim | ClaimInfo:
    """Claim ``run_id`` under output dir ``root``.

    Returns
    -------
    Claim or ClaimInfo
        A :class:`Claim` (heartbeat running) when this process now owns the run, else the
        live :class:`ClaimInfo` of the process that does.
    """
    root = Path(root)
    ttl = claim_ttl() if ttl is None else ttl
    (root / CLAIMS).mkdir(parents=True, exist_ok=True)
    me = holder_info()
    for _ in range(8):  # retry only when the claim we saw vanished under us
        current = current_claim(root, run_id)
        if current is not None and not current.stale(ttl, me):
            return current
        generation = 0 if current is None else current.generation + 1
        claim = Claim(root, run_id, generation, me, interval or heartbeat_interval(ttl))
        if not _create_exclusive(claim.path, me):
            continue
        if not claim.owned():  # a takeover raced past the generation we saw: theirs wins
            _unlink(claim.path)
            continue
        _log(root, f"acquire {run_id} {generation} {me['host']} {me['pid']} {me.get('job') or '-'}")
        if current is not None:  # tidy the generation we replaced
            _unlink(current.path)
        return claim.start_heartbeat()
    raise NoisybenchError(f"could not claim run {run_id} under {root}: claim files keep changing")


#: ``link`` errors of file systems without hard links: claims are then created with ``O_EXCL`` instead.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _create_exclusive(path: Path, holder: dict[str, Any]) -> bool:
    """Create the claim file ``path`` with ``holder`` inside, whole, unless it exists (then False)."""
    data = json.dumps({**holder, "created": time.time()}).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    _write_new(tmp, data, os.O_TRUNC)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
    finally:
        _unlink(tmp)
    try:
        _write_new(path, data, os.O_EXCL)
    except FileExistsError:
        return False
    return True


def _write_new(path: Path, data: bytes, flag: int) -> None:
    """Write ``data`` to ``path`` (mode from the umask) and flush it to disk."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | flag, 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _log(root: Path, line: str) -> None:
    """Append to the audit log (a log this user may not write, e.g. a teammate's, is skipped)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    try:
        fd = os.open(root / CLAIMS / "log", os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o666)
    except PermissionError:
        return
    try:
        os.write(fd, f"{stamp} {line}\n".encode())
    finally:
        os.close(fd)
