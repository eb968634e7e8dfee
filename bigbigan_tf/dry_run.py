"""A dry run of a training configuration: build, one step, one save, sizes.

`bigbigan-train --dry_run` calls `dry_run`: on the configured strategy it
builds the gin-bound model at its full size, runs one compiled training step
on synthetic images at a small per-replica batch, writes one checkpoint
under `model_dir/dry_run/`, and reports parameter counts, the per-core batch
the configuration asks for and the memory the variables take on every core.
A user checks a TPU slice this way for a few minutes before a run of days.
"""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf

from bigbigan_tf import benchmark
from bigbigan_tf import bindings
from bigbigan_tf import model as model_lib
from bigbigan_tf import training
from bigbigan_tf.networks import common

DRY_RUN_DIR = "dry_run"


def _count(variables) -> int:
  return int(sum(np.prod(v.shape) for v in variables))


def _bytes(variables) -> int:
  return int(sum(np.prod(v.shape) * tf.as_dtype(v.dtype).size
                 for v in variables))


def dry_run(model_dir: str, strategy: tf.distribute.Strategy,
            per_replica_batch: int = 2) -> dict:
  """Builds, steps once, saves once; returns the report (see module doc).

  Raises:
    ValueError: per_replica_batch < 1; a non-finite metric in the step.
  """
  common.check_int(per_replica_batch, "per_replica_batch")
  replicas = strategy.num_replicas_in_sync
  configured_batch = bindings.bound_value("train.batch_size")
  mixed = bool(bindings.bound_value("train.mixed_precision") or False)
  with training._precision_policy(mixed):  # pylint: disable=protected-access
    start = time.time()
    with strategy.scope():
      model = model_lib.configured_bigbigan()
      trainer = training.Trainer(model, strategy,
                                 per_replica_batch * replicas)
    build_seconds = time.time() - start
    iterator = iter(benchmark._synthetic_dataset(  # pylint: disable=protected-access
        strategy, per_replica_batch, model.encoder_resolution))
    start = time.time()
    metrics = {k: float(v) for k, v in
               trainer.train_loop(iterator, tf.constant(1)).items()}
    step_seconds = time.time() - start
  bad = sorted(k for k, v in metrics.items() if not np.isfinite(v))
  if bad:
    raise ValueError(f"The dry-run step gave non-finite {bad}.")
  path = trainer.checkpoint().write(
      os.path.join(model_dir, DRY_RUN_DIR, "ckpt"))
  networks = model.networks()
  every_variable = (
      [w for net in networks.values() for w in net.weights]
      + [w for copy in trainer.ema.values() for w in copy.weights]
      + [v for optimizer in trainer.optimizers.values()
         for v in optimizer.variables])
  report = {
      "replicas": replicas,
      "dry_run_per_replica_batch": per_replica_batch,
      "configured_global_batch": configured_batch,
      "configured_per_replica_batch": (
          configured_batch / replicas if configured_batch else None),
      "parameters": {role: _count(net.trainable_variables)
                     for role, net in networks.items()},
      "variables_bytes_per_replica": _bytes(every_variable),
      "build_seconds": build_seconds,
      "first_step_seconds": step_seconds,
      "checkpoint": path,
      "step": trainer.step(),
  }
  return report


def format_report(report: dict) -> str:
  """The report as the lines `bigbigan-train --dry_run` prints."""
  per_replica = report["configured_per_replica_batch"]
  lines = [
      f"replicas: {report['replicas']}",
      "parameters: " + ", ".join(f"{role} {count:,}" for role, count in
                                 report["parameters"].items())
      + f" (total {sum(report['parameters'].values()):,})",
      "variables on every replica (weights, Adam slots, EMA copies, "
      f"statistics): {report['variables_bytes_per_replica'] / 2**20:,.1f} MiB",
      f"configured batch: {report['configured_global_batch']} global, "
      + (f"{per_replica:g} per replica" if per_replica is not None
         else "not bound")
      + ("" if per_replica is None or per_replica == int(per_replica)
         else " (does not divide: training will refuse it)"),
      f"dry-run step: {report['dry_run_per_replica_batch']} images per "
      f"replica, build {report['build_seconds']:.1f} s, first step (trace, "
      f"compile, run) {report['first_step_seconds']:.1f} s",
      f"checkpoint written: {report['checkpoint']}",
      "Activation memory is not estimated: it grows with the per-replica "
      "batch; the dry-run step shows the configuration fits at its batch.",
  ]
  return "\n".join(lines)
