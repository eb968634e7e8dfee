"""Tests of the one-trainer-per-model_dir lease."""

import json
import os
import socket
import subprocess
import time

import pytest
import tensorflow as tf

from bigbigan_tf import checkpoints
from bigbigan_tf import config
from bigbigan_tf import lease
from bigbigan_tf import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_GIN = os.path.join(ROOT, "gin", "smoke.gin")


def _write_record(model_dir, **fields):
  os.makedirs(model_dir, exist_ok=True)
  now = time.time()
  record = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": now - 5, "heartbeat": now}
  record.update(fields)
  with open(os.path.join(model_dir, lease.LEASE_FILE), "w") as f:
    json.dump(record, f)
  return record


def _dead_pid():
  process = subprocess.Popen(["true"])
  process.wait()
  return process.pid


def test_a_second_trainer_on_a_live_model_dir_is_refused_naming_the_holder(
    tmp_path):
  model_dir = str(tmp_path / "run")
  _write_record(model_dir, host="tpu-vm-7", pid=4242)
  config.parse([SMOKE_GIN], [])
  with pytest.raises(lease.LeaseHeldError,
                     match="in use by another trainer.*host tpu-vm-7, pid 4242"):
    training.train(model_dir, take_over_stale_lease=True)
  # Nothing was written: the refusal comes before the run is built.
  assert sorted(os.listdir(model_dir)) == [lease.LEASE_FILE]


def test_a_stale_lease_is_taken_over_only_when_asked(tmp_path):
  model_dir = str(tmp_path / "run")
  _write_record(model_dir, pid=_dead_pid())  # This host, process gone.
  with pytest.raises(lease.LeaseHeldError, match="--force"):
    lease.Lease(model_dir).acquire()
  holder = lease.Lease(model_dir)
  holder.acquire(take_over_stale=True)
  record = lease.read(model_dir)
  assert (record["host"], record["pid"]) == (socket.gethostname(),
                                             os.getpid())
  holder.release()
  assert lease.read(model_dir) is None


@pytest.mark.parametrize("age_s, host, stale", [
    (30, "other-host", False),        # Fresh heartbeat elsewhere: live.
    (601, "other-host", True),        # No heartbeat for 10 minutes.
    (30, None, False),                # This host, this (live) process.
])
def test_staleness_by_heartbeat_age_and_process(age_s, host, stale):
  now = 1_000_000.0
  record = {"host": host or socket.gethostname(), "pid": os.getpid(),
            "started": now - 1000, "heartbeat": now - age_s}
  assert lease.is_stale(record, now=now) == stale


def test_heartbeat_is_refreshed_and_release_keeps_a_successors_lease(
    tmp_path):
  model_dir = str(tmp_path / "run")
  holder = lease.Lease(model_dir, refresh_every_s=60)
  holder.acquire()
  first = lease.read(model_dir)["heartbeat"]
  holder.refresh(now=first + 30)
  assert lease.read(model_dir)["heartbeat"] == first
  holder.refresh(now=first + 61)
  assert lease.read(model_dir)["heartbeat"] == first + 61
  # Another trainer took the directory over: release leaves its record.
  successor = _write_record(model_dir, host="other-host", pid=1)
  holder.release()
  assert lease.read(model_dir) == successor


def test_a_finished_run_leaves_no_lease(smoke_run_dir):
  assert lease.LEASE_FILE not in os.listdir(smoke_run_dir)
