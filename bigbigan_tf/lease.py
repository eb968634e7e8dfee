"""One trainer per model_dir: a lease record in the directory.

A trainer writes `model_dir/lease.json` (host, process id, start time and a
heartbeat time) before it builds anything, refreshes the heartbeat while it
trains, and removes the record when it stops. Files go through tf.io.gfile,
so the lease works on gs:// as on local disks. A second trainer on the same
model_dir finds the record and is refused with the holder named; without
that, two runs would resume from the same checkpoint and interleave their
checkpoints and event files.

A lease counts as stale when its heartbeat is older than `stale_after_s`
(10 minutes by default: a trainer refreshes it at every inner loop, which
lasts at most `train.max_loop_seconds`), or when its holder ran on this
host and that process no longer exists. A stale lease is taken over only
when asked (`bigbigan-train --force`); a live one never is.

The check and the write are two steps, not one atomic operation: two
trainers started within the same second can both pass. It guards against
the common mistake (a second launch on a directory in use), not a race.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Optional

import tensorflow as tf

LEASE_FILE = "lease.json"
STALE_AFTER_S = 600.0
REFRESH_EVERY_S = 60.0


class LeaseHeldError(RuntimeError):
  """The model_dir is held by another trainer."""


def _path(model_dir: str) -> str:
  return os.path.join(model_dir, LEASE_FILE)


def read(model_dir: str) -> Optional[dict]:
  """The lease record of model_dir, or None."""
  path = _path(model_dir)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    try:
      return json.load(f)
    except ValueError:  # A torn write: treat as a record of unknown age.
      return {"host": "?", "pid": -1, "started": 0.0, "heartbeat": 0.0}


def _process_exists(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Exists, owned by someone else.
    return True
  return True


def is_stale(record: dict, now: Optional[float] = None,
             stale_after_s: float = STALE_AFTER_S) -> bool:
  """Whether a lease record's holder has stopped (see the module doc)."""
  now = time.time() if now is None else now
  if now - float(record.get("heartbeat", 0.0)) > stale_after_s:
    return True
  same_host = record.get("host") == socket.gethostname()
  return same_host and not _process_exists(int(record.get("pid", -1)))


def describe(record: dict, now: Optional[float] = None) -> str:
  now = time.time() if now is None else now
  return (f"host {record.get('host')}, pid {record.get('pid')}, started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(float(record.get('started', 0.0))))}, "
          f"last heartbeat {now - float(record.get('heartbeat', 0.0)):.0f} s ago")


class Lease:
  """The lease of one trainer on a model_dir (acquire, refresh, release)."""

  def __init__(self, model_dir: str, stale_after_s: float = STALE_AFTER_S,
               refresh_every_s: float = REFRESH_EVERY_S):
    self.model_dir = model_dir
    self.stale_after_s = stale_after_s
    self.refresh_every_s = refresh_every_s
    self._record: Optional[dict] = None

  def acquire(self, take_over_stale: bool = False) -> None:
    """Takes the lease.

    Raises:
      LeaseHeldError: another trainer holds it (live), or it is stale and
        `take_over_stale` is False; the message names the holder.
    """
    record = read(self.model_dir)
    if record is not None:
      stale = is_stale(record, stale_after_s=self.stale_after_s)
      if not stale:
        raise LeaseHeldError(
            f"{self.model_dir} is in use by another trainer ({describe(record)}"
            f"). Use another --model_dir, or wait for that run to stop.")
      if not take_over_stale:
        raise LeaseHeldError(
            f"{self.model_dir} has the lease of a trainer that stopped "
            f"without releasing it ({describe(record)}; stale after "
            f"{self.stale_after_s:.0f} s without a heartbeat, or at once if "
            "its process is gone from this host). If no trainer uses this "
            "directory, rerun with --force to take it over.")
    tf.io.gfile.makedirs(self.model_dir)
    now = time.time()
    self._record = {"host": socket.gethostname(), "pid": os.getpid(),
                    "started": now, "heartbeat": now}
    self._write()

  def refresh(self, now: Optional[float] = None) -> None:
    """Updates the heartbeat if it is older than refresh_every_s."""
    if self._record is None:
      return
    now = time.time() if now is None else now
    if now - self._record["heartbeat"] >= self.refresh_every_s:
      self._record["heartbeat"] = now
      self._write()

  def release(self) -> None:
    """Removes the record if it is still this trainer's."""
    if self._record is None:
      return
    current = read(self.model_dir)
    if current is not None and (current.get("host"), current.get("pid"),
                                current.get("started")) == (
                                    self._record["host"], self._record["pid"],
                                    self._record["started"]):
      tf.io.gfile.remove(_path(self.model_dir))
    self._record = None

  def _write(self) -> None:
    with tf.io.gfile.GFile(_path(self.model_dir), "w") as f:
      json.dump(self._record, f)
