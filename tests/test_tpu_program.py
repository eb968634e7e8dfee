"""The training program as a TPU runs it, checked on CPUs.

On a TPU, the compiled inner loop is one program per step on every core;
a write to a distributed variable made outside `strategy.run` is host work
sent to every core, once per step. These tests trace the loop under a
2-replica MirroredStrategy and count such writes, compile the replica step
with XLA with the multi-replica code paths taken (cross-replica moments,
gradient all-reduces) and check its HLO, and count the eager ops of the host
actions between loops.
"""

import contextlib
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.distribute import values as values_lib
from tensorflow.python.distribute import values_util

from bigbigan_tf import config
from bigbigan_tf import training

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # pylint: disable=g-import-not-at-top,wrong-import-position
import training_worker  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_GIN = os.path.join(ROOT, "gin", "smoke.gin")
GLOBAL_BATCH = 8
# Writes outside the replica step a traced loop may make: the metric
# accumulator's reset (once per loop, not per step).
MAX_WRITES_OUTSIDE_REPLICA_STEP = 3
# Model sizes: the smoke model, and one with a deeper encoder and wider G.
SIZES = {
    "smoke": (),
    "deeper": ("encoder.units_per_stage = (2, 2, 2, 2)", "generator.ch = 16"),
}


def _trainer(strategy, *bindings):
  config.parse([SMOKE_GIN], ["trainer.d_steps = 2",
                             "trainer.gradient_diagnostics = True",
                             *bindings])
  with strategy.scope():
    return training.Trainer(config.build_model(), strategy, GLOBAL_BATCH)


def _iterator(strategy):
  return iter(strategy.distribute_datasets_from_function(
      lambda ctx: training_worker.synthetic_dataset(GLOBAL_BATCH, ctx)))


@contextlib.contextmanager
def _writes_outside_run(strategy):
  """Records the distributed variables written outside `strategy.run`."""
  inside = []
  writes = []
  run = strategy.run

  def counting_run(fn, args=(), kwargs=None, options=None):
    inside.append(True)
    try:
      return run(fn, args=args, kwargs=kwargs, options=options)
    finally:
      inside.pop()

  def record(original):
    def wrapper(var, *args, **kwargs):
      if not inside:
        writes.append(var.name)
      return original(var, *args, **kwargs)
    return wrapper

  patches = [
      (values_lib.DistributedVariable, "_update_cross_replica"),
      (values_util, "on_read_assign_cross_replica"),
      (values_util, "on_read_assign_add_cross_replica"),
      (values_util, "on_read_assign_sub_cross_replica"),
  ]
  originals = [getattr(owner, name) for owner, name in patches]
  strategy.run = counting_run
  for (owner, name), original in zip(patches, originals):
    setattr(owner, name, record(original))
  try:
    yield writes
  finally:
    del strategy.run
    for (owner, name), original in zip(patches, originals):
      setattr(owner, name, original)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_train_loop_writes_distributed_variables_inside_the_replica_step(
    size):
  """Optimiser updates, EMA, power-iteration state, BN statistics, the
  global step, the non-finite flag and metric sums are all written inside
  the replica step; outside it only the once-per-loop metric reset."""
  strategy = conftest.two_replica_strategy()
  trainer = _trainer(strategy, *SIZES[size])
  with _writes_outside_run(strategy) as writes:
    outputs = trainer.train_loop(_iterator(strategy), tf.constant(2))
  assert len(writes) <= MAX_WRITES_OUTSIDE_REPLICA_STEP, writes
  # The loop ran two steps and reported finite means.
  assert trainer.step() == 2
  assert all(np.isfinite(float(v)) for v in outputs.values())
