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
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.distribute import values as values_lib
from tensorflow.python.distribute import values_util
from tensorflow.compiler.tf2xla.ops import gen_xla_ops
from tensorflow.python.framework import config as tf_config
from tensorflow.python.framework import op_callbacks

from bigbigan_tf import actions
from bigbigan_tf import config
from bigbigan_tf import distribute
from bigbigan_tf import layers
from bigbigan_tf import training
from bigbigan_tf.evaluation import model_dir as model_dir_eval
from bigbigan_tf.layers import normalization

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
def _outside_run(strategy):
  """Records, while tracing and running, the writes to distributed variables
  and the cross-replica reductions requested outside `strategy.run`.

  Yields:
    (writes, reductions): the written variables' names and the names of the
    strategy's reduce methods called.
  """
  inside = []
  writes, reductions = [], []
  run = strategy.run

  def counting_run(fn, args=(), kwargs=None, options=None):
    inside.append(True)
    try:
      return run(fn, args=args, kwargs=kwargs, options=options)
    finally:
      inside.pop()

  def recorded(original, log, what):
    def wrapper(*args, **kwargs):
      if not inside:
        log.append(what(args))
      return original(*args, **kwargs)
    return wrapper

  variable_name = lambda args: args[0].name
  patches = [(owner, name, writes, variable_name) for owner, name in (
      (values_lib.DistributedVariable, "_update_cross_replica"),
      (values_util, "on_read_assign_cross_replica"),
      (values_util, "on_read_assign_add_cross_replica"),
      (values_util, "on_read_assign_sub_cross_replica"))]
  patches += [(strategy.extended, name, reductions,
               lambda args, name=name: name)
              for name in ("_reduce_to", "_batch_reduce_to")]
  originals = [getattr(owner, name) for owner, name, _, _ in patches]
  strategy.run = counting_run
  for (owner, name, log, what), original in zip(patches, originals):
    setattr(owner, name, recorded(original, log, what))
  try:
    yield writes, reductions
  finally:
    del strategy.run
    for (owner, name, _, _), original in zip(patches, originals):
      if owner is strategy.extended:
        delattr(owner, name)
      else:
        setattr(owner, name, original)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_train_loop_writes_inside_the_replica_step_and_replicas_agree(size):
  """Optimiser updates, EMA, power-iteration state, BN statistics, the
  global step, the non-finite flag and metric sums are all written inside
  the replica step (outside it only the once-per-loop metric reset); the
  loop reduces its metric sums once; replica-identical variables (BN
  statistics, u, EMA copies, weights, the global step) hold the same value
  on both replicas after the steps."""
  strategy = conftest.two_replica_strategy()
  trainer = _trainer(strategy, *SIZES[size])
  with _outside_run(strategy) as (writes, reductions):
    outputs = trainer.train_loop(_iterator(strategy), tf.constant(2))
  assert len(writes) <= MAX_WRITES_OUTSIDE_REPLICA_STEP, writes
  assert reductions == ["_reduce_to"], reductions
  assert trainer.step() == 2
  assert all(np.isfinite(float(v)) for v in outputs.values())
  variables = [trainer.global_step]
  for net in list(trainer.model.networks().values()) + list(
      trainer.ema.values()):
    variables += net.weights
  kinds = set()
  for variable in variables:
    value = variable.value if isinstance(variable, keras.Variable) else variable
    first, second = strategy.experimental_local_results(value)
    np.testing.assert_array_equal(first.numpy(), second.numpy(),
                                  err_msg=variable.name)
    kinds.add(variable.name.split("/")[-1].split(":")[0])
  # The check covered the kinds of replica-identical state there are.
  assert {"moving_mean", "moving_variance", "sn_u", "kernel",
          "global_step"} <= kinds, kinds
  # And they moved: the statistics are not their initial values.
  moving = [v for v in trainer.model.generator.weights
            if "moving_mean" in v.path]
  assert any(np.any(v.numpy() != 0) for v in moving)


class _XlaReplicaContext(tf.distribute.ReplicaContext):
  """Replica 0 of `replicas`, as a TPU program sees its replica context:
  `num_replicas_in_sync` > 1, so the multi-replica code paths are taken
  (cross-replica moments, gradient all-reduces), and every all-reduce is an
  XLA AllReduce (over this one replica, so the program also runs here).
  merge_call is refused: a TPU step should not need one."""

  def __init__(self, replicas: int):
    super().__init__(tf.distribute.get_strategy(), replica_id_in_sync_group=0)
    self._replicas = replicas
    self.all_reduces = 0
    self.gradient_all_reduces = 0

  @property
  def num_replicas_in_sync(self):
    return self._replicas

  def all_reduce(self, reduce_op, value, options=None):
    del options
    self.all_reduces += 1
    op = "Add" if reduce_op == tf.distribute.ReduceOp.SUM else "Mean"

    def xla_all_reduce(tensor):
      return gen_xla_ops.xla_all_reduce(
          input=tensor, group_assignment=tf.constant([[0]]), reduce_op=op,
          mode="CrossReplica")

    @tf.custom_gradient
    def reduce_with_gradient(tensor):
      # As a TPU's cross-replica sum: the gradient is all-reduced too.
      def gradient(upstream):
        self.gradient_all_reduces += 1
        return xla_all_reduce(upstream)
      return xla_all_reduce(tensor), gradient

    flat = [reduce_with_gradient(t) for t in tf.nest.flatten(value)]
    return tf.nest.pack_sequence_as(value, flat)

  def merge_call(self, merge_fn, args=(), kwargs=None):
    raise AssertionError(f"merge_call({merge_fn}) in the replica step")


def _table1_base_reduced(data_dir):
  """table1/base.gin at test_tables.py's reduced width, with its own
  d_steps (2) and the gradient diagnostics on."""
  import test_tables  # pylint: disable=g-import-not-at-top
  config.parse(["table1/base.gin"], [])
  shrink = [b for b in test_tables._shrinking_bindings(data_dir)  # pylint: disable=protected-access
            if not b.startswith("trainer.d_steps")]
  return shrink + ["trainer.d_steps = 2",
                   "trainer.gradient_diagnostics = True"]


@pytest.fixture
def without_op_determinism():
  """Op determinism (turned on by other tests of the process) makes XLA
  refuse ops without a deterministic lowering (MaxPool's gradient); a TPU
  program does not run under it."""
  enabled = tf_config.is_op_determinism_enabled()
  tf_config.disable_op_determinism()
  yield
  if enabled:
    tf_config.enable_op_determinism()


@pytest.mark.slow
def test_replica_step_of_table1_base_lowers_to_tpu_compatible_hlo(
    tmp_path, without_op_determinism):
  del without_op_determinism
  bindings = _table1_base_reduced(str(tmp_path))
  config.parse(["table1/base.gin"], bindings)
  strategy = tf.distribute.get_strategy()
  batch = 4
  with strategy.scope():
    trainer = training.Trainer(config.build_model(), strategy, batch)
  model = trainer.model
  assert model.encoder.latent_mode == "stochastic"
  assert trainer.d_steps == 2 and trainer._gradient_keys()  # pylint: disable=protected-access
  resolution = model.encoder_resolution
  batches = tuple(
      {"image": tf.random.stateless_uniform([batch, resolution, resolution, 3],
                                            [k, 1], -1.0, 1.0)}
      for k in range(trainer.d_steps + 1))

  moment_calls = []
  moments = normalization.cross_replica_moments

  def counted_moments(x, axes):
    moment_calls.append(x.shape)
    return moments(x, axes)

  context = _XlaReplicaContext(replicas=2)

  def replica_step(batches):
    with context:
      trainer._replica_step_impl(batches)  # pylint: disable=protected-access

  step = tf.function(replica_step, jit_compile=True, autograph=False)
  normalization.cross_replica_moments = counted_moments
  try:
    hlo = step.experimental_get_compiler_ir(batches)(stage="hlo")
  finally:
    normalization.cross_replica_moments = moments

  # Cross-replica reductions: one per batch-norm call (G's conditional BN
  # and E's BN, in every D and E+G update) and one per optimiser update
  # (D twice, then G and E); no merge_call (it would have raised).
  updates = trainer.d_steps + 2
  assert moment_calls
  assert context.all_reduces == len(moment_calls) + updates
  # In the HLO, each is one all-reduce per tensor, plus the all-reduces of
  # the moments' gradients where a loss depends on them.
  assert context.gradient_all_reduces > 0
  all_reduces = hlo.count(" all-reduce(")
  assert all_reduces >= context.all_reduces + context.gradient_all_reduces
  # Nothing a TPU program cannot hold.
  assert "f64" not in hlo
  for forbidden in (" send(", " recv(", " infeed(", " outfeed(",
                    "host", "outside_compilation"):
    assert forbidden not in hlo.lower(), forbidden
  assert "custom-call" not in hlo, [
      line for line in hlo.splitlines() if "custom-call" in line][:3]


def _host_action_ops(tmp_path, *bindings):
  """Eager ops (and eager function calls) of the host actions between two
  inner loops, checkpoint aside: summaries, standing statistics and the
  image grids; counted on their second run (the first one traces)."""
  strategy = tf.distribute.get_strategy()
  trainer = _trainer(strategy, *bindings)
  iterator = _iterator(strategy)
  trainer.train_loop(iterator, tf.constant(1))
  metrics = {key: 0.5 for key in trainer.metric_keys()}
  fixed = {"z": trainer.model.prior.sample(4, seed=[1, 2]),
           "x": tf.random.stateless_uniform([4, 32, 32, 3], [3, 4], -1, 1)}
  writer = tf.summary.create_file_writer(str(tmp_path))

  def actions_between_loops():
    actions.write_scalars(writer, trainer, metrics, trainer.step())
    trainer.standing_statistics(iterator, 2)
    actions.write_images(writer, trainer, fixed, str(tmp_path),
                         trainer.step())

  actions_between_loops()
  eager_ops = []

  def callback(op_type, inputs, attrs, outputs, op_name=None, graph=None):
    del inputs, attrs, op_name
    if graph is None:  # A function's name ends in a unique number.
      name = op_type.decode() if isinstance(op_type, bytes) else op_type
      eager_ops.append(re.sub(r"_\d+$", "", name))
    return outputs

  op_callbacks.add_op_callback(callback)
  try:
    actions_between_loops()
  finally:
    op_callbacks.remove_op_callback(callback)
  return eager_ops


def test_host_actions_run_as_many_eager_ops_at_any_depth(tmp_path):
  shallow = _host_action_ops(tmp_path / "shallow")
  deeper = _host_action_ops(tmp_path / "deeper",
                            "encoder.units_per_stage = (3, 3, 3, 3)")
  # The networks run inside compiled calls: the deeper encoder (three
  # times the BN layers) costs the host the same ops.
  assert sorted(deeper) == sorted(shallow)
  print("host-action eager ops:", len(shallow))
  assert shallow  # The actions were counted at all.


def test_evaluation_after_training_on_a_tpu_is_skipped_with_its_command(
    monkeypatch, caplog, tmp_path):
  """A TPU run does not evaluate on the TPU VM's CPU: it logs the command.
  Elsewhere the evaluation runs (here it fails on an empty model_dir, which
  shows it was attempted)."""
  model_dir = str(tmp_path / "run")
  monkeypatch.setattr(distribute, "is_tpu", lambda strategy: True)
  with caplog.at_level("WARNING"):
    assert model_dir_eval.evaluate_after_training(None, model_dir) is None
  assert f"bigbigan-evaluate --model_dir={model_dir}" in caplog.text
  monkeypatch.setattr(distribute, "is_tpu", lambda strategy: False)
  with pytest.raises(Exception, match="run"):
    model_dir_eval.evaluate_after_training(None, model_dir)


def test_no_nested_jit_on_a_tpu(monkeypatch):
  """On a TPU the replicated step is compiled whole: trainer.jit_compile
  would nest a second XLA function in it, so it applies elsewhere only."""
  strategy = tf.distribute.get_strategy()
  monkeypatch.setattr(distribute, "is_tpu", lambda s: True)
  assert not _trainer(strategy, "trainer.jit_compile = True").jit_compile
  monkeypatch.setattr(distribute, "is_tpu", lambda s: False)
  assert _trainer(strategy, "trainer.jit_compile = True").jit_compile


def test_spectral_norm_runs_in_float32_under_mixed_bfloat16():
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    layer = layers.SNDense(8)
    outputs = layer(tf.ones([2, 4]), training=True)
    sigma = layer.spectral_norm_estimate(training=False)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  assert outputs.dtype == tf.bfloat16  # The layer computes in bfloat16,
  assert sigma.dtype == tf.float32     # its power iteration in float32,
  assert layer.sn_u.dtype == "float32"
  kernel = layer.kernel.numpy().astype(np.float64)
  # and sigma is W's largest singular value to float32 precision after
  # enough power iterations.
  for _ in range(50):
    sigma = layer.spectral_norm_estimate(training=True)
  assert float(sigma) == pytest.approx(
      np.linalg.svd(kernel, compute_uv=False)[0], rel=1e-5)
