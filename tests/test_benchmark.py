"""Tests of bigbigan_tf/benchmark.py and tools/benchmark.py.

No timed assertions: the tests check that FLOPs are counted correctly and
consistently, and that the tool's figures agree with each other. Step times
are checked against the clock readings the benchmark took (its `time` is
replaced by a clock that records them), host memory against a known
resident-set reading.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import benchmark
from bigbigan_tf import bindings
from bigbigan_tf import config
from bigbigan_tf import training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(REPO, "gin", "smoke.gin")


class _RecordingClock:
  """Stands in for benchmark's `time` module: real perf_counter readings,
  each one kept."""

  def __init__(self):
    self.readings = []

  def perf_counter(self):
    self.readings.append(time.perf_counter())
    return self.readings[-1]

  def loop_times(self, loops):
    """(first loop, timed loops) from the readings of a benchmark whose
    warm-up loops are 0: a (start, end) pair per loop."""
    assert len(self.readings) == 2 * (1 + loops), self.readings
    spans = [end - start for start, end in
             zip(self.readings[0::2], self.readings[1::2])]
    return spans[0], spans[1:]


@pytest.fixture
def clock(monkeypatch):
  recording = _RecordingClock()
  monkeypatch.setattr(benchmark, "time", recording)
  return recording


# ru_maxrss of the stand-in resource module: Linux reports KiB.
MAXRSS_KIB = 345_678


@pytest.fixture
def known_host_memory(monkeypatch):
  usage = types.SimpleNamespace(ru_maxrss=MAXRSS_KIB)
  monkeypatch.setattr(benchmark, "resource", types.SimpleNamespace(
      RUSAGE_SELF=resource.RUSAGE_SELF, getrusage=lambda who: usage))


def _check_step_times(result, clock, loops, steps_per_loop):
  """The step-time figures are those of the recorded clock readings."""
  first_loop, loop_times = clock.loop_times(loops)
  median = statistics.median(loop_times)
  assert result["first_loop_s"] == first_loop
  assert result["step_time_s"] == median / steps_per_loop
  assert result["step_time_min_s"] == min(loop_times) / steps_per_loop
  assert result["step_time_max_s"] == max(loop_times) / steps_per_loop
  assert result["compile_time_s"] == max(first_loop - median, 0.0)


def _flops(fn, *specs):
  return benchmark.graph_flops(
      tf.function(fn).get_concrete_function(*specs).graph)


def test_conv_forward_and_gradients_counted_from_shapes():
  kernel = tf.Variable(tf.ones([3, 3, 5, 7]))

  def step(x):
    with tf.GradientTape() as tape:
      y = tf.nn.conv2d(x, kernel, strides=2, padding="SAME")
      loss = tf.reduce_sum(y)
    return tape.gradient(loss, [x, kernel])

  counts = _flops(step, tf.TensorSpec([4, 16, 16, 5]))
  forward = 2 * 4 * 8 * 8 * 3 * 3 * 5 * 7   # output 8x8 at stride 2
  assert counts["Conv2D"] == forward
  assert counts["Conv2DBackpropInput"] == forward
  assert counts["Conv2DBackpropFilter"] == forward
  assert counts["total"] == 3 * forward


def test_matmul_transposes_and_batches():
  def products(a, b, c):
    return (tf.matmul(a, b, transpose_a=True),        # [6, 3] x [3, 4]
            tf.matmul(c, c, transpose_b=True))        # [2, 5, 9] x [2, 9, 5]

  counts = _flops(products, tf.TensorSpec([3, 6]), tf.TensorSpec([3, 4]),
                  tf.TensorSpec([2, 5, 9]))
  assert counts["MatMul"] == 2 * 6 * 4 * 3
  assert counts["BatchMatMulV2"] == 2 * 2 * 5 * 5 * 9


def test_nested_functions_and_cond_branches():
  inner = tf.function(lambda x: tf.matmul(x, x), jit_compile=True)

  def outer(x, flag):
    y = inner(x) + inner(x)          # Two call sites: counted twice.
    return tf.cond(flag, lambda: tf.matmul(y, y),
                   lambda: tf.matmul(tf.matmul(y, y), y))  # Larger: 2x.

  counts = _flops(outer, tf.TensorSpec([8, 8]), tf.TensorSpec([], tf.bool))
  one = 2 * 8 * 8 * 8
  assert counts["total"] == 2 * one + 2 * one


def test_unknown_shapes_are_an_error():
  with pytest.raises(ValueError, match="not fully known"):
    _flops(lambda x: tf.matmul(x, x), tf.TensorSpec([None, None]))


def test_settings_reject_bad_values():
  with pytest.raises(ValueError, match="per_replica_batch must be >= 1"):
    benchmark.Settings(per_replica_batch=0)
  with pytest.raises(ValueError, match="data must be one of"):
    benchmark.Settings(data="imagenet")


# A smaller E, D and step than smoke.gin's: tracing a step costs seconds per
# layer, and linearity does not depend on the depth.
SMALL = ["encoder.units_per_stage = (1, 1)", "encoder.mlp_blocks = 1",
         "discriminator.mlp_blocks = 1", "trainer.gradient_diagnostics = False"]


@pytest.mark.slow
def test_step_flops_linear_in_batch_and_d_steps():
  """FLOPs(b) = a b + c (c: spectral-norm power iterations, which do not
  depend on the batch, and are small), so FLOPs nearly double from b = 2 to
  4; and each extra D step adds the same amount. One model, a trainer per
  (batch, d_steps)."""
  config.parse([SMOKE], SMALL)
  setup = benchmark.build(benchmark.Settings(per_replica_batch=2, d_steps=1))

  def step_flops(per_replica_batch, d_steps):
    if (per_replica_batch, d_steps) == (2, 1):
      trainer, iterator = setup.trainer, setup.iterator
    else:
      trainer = training.Trainer(setup.model, setup.strategy,
                                 per_replica_batch, d_steps=d_steps)
      iterator = iter(benchmark._synthetic_dataset(  # pylint: disable=protected-access
          setup.strategy, per_replica_batch, setup.model.encoder_resolution))
    return benchmark.step_flops(trainer, iterator)["total"]

  by_batch = [step_flops(b, 1) for b in (2, 4)]
  assert 2 * by_batch[0] > by_batch[1] > by_batch[0]
  assert by_batch[1] / by_batch[0] == pytest.approx(2.0, rel=0.02)
  by_d_steps = [by_batch[0]] + [step_flops(2, d) for d in (2, 3)]
  assert by_d_steps[2] - by_d_steps[1] == by_d_steps[1] - by_d_steps[0] > 0


@pytest.mark.slow
def test_run_figures_are_consistent(tmp_path, clock, known_host_memory):
  config.parse([SMOKE], SMALL)
  settings = benchmark.Settings(per_replica_batch=4, d_steps=1,
                                steps_per_loop=2, loops=3, warmup_loops=0)
  result = benchmark.run(settings, peak_flops=1e12,
                         profile_dir=str(tmp_path / "profile"))
  assert keras.mixed_precision.global_policy().name == "float32"
  # The profiled loop after the timed ones reads no clock.
  _check_step_times(result, clock, loops=3, steps_per_loop=2)
  assert result["global_batch"] == 4 and result["d_steps"] == 1
  assert result["images_per_second"] == pytest.approx(
      4 * (1 + 1) / result["step_time_s"])
  assert result["steps_per_second"] == pytest.approx(
      1 / result["step_time_s"])
  assert result["flops_per_step"] == sum(result["flops_by_op"].values()) > 0
  assert result["achieved_flops_per_second"] == pytest.approx(
      result["flops_per_step"] / result["step_time_s"])
  assert result["fraction_of_peak"] == pytest.approx(
      result["achieved_flops_per_second"] / 1e12)
  assert result["peak_host_memory_bytes"] == MAXRSS_KIB * 1024
  # The first loop traces and compiles the step: it is the slowest, by the
  # compile time reported.
  assert result["first_loop_s"] > result["step_time_max_s"] * 2
  json.dumps(result)  # Serialisable as it is.

  # The profiled loop: op time split by type, network and phase.
  breakdown = benchmark.op_time_breakdown(str(tmp_path / "profile"))
  for table in ("by_type", "by_network", "by_phase"):
    assert sum(breakdown[table].values()) == pytest.approx(1.0)
  assert {"generator", "encoder", "discriminator"} <= set(
      breakdown["by_network"])
  assert breakdown["by_phase"]["gradient"] > 0.1
  assert any("Conv2D" in op for op in breakdown["by_type"])
  assert "Op time" in benchmark.format_breakdown(breakdown)
  with pytest.raises(ValueError, match="No profiler trace"):
    benchmark.op_time_breakdown(str(tmp_path))


@pytest.mark.slow
def test_mixed_precision_counts_the_same_flops_and_restores_policy(
    monkeypatch):
  config.parse([SMOKE], SMALL)
  settings = benchmark.Settings(per_replica_batch=2, d_steps=1,
                                mixed_precision=True, steps_per_loop=1,
                                loops=1, warmup_loops=0)
  policies = []
  build = benchmark.build

  def recorded_build(*args):
    policies.append(keras.mixed_precision.global_policy().name)
    return build(*args)

  monkeypatch.setattr(benchmark, "build", recorded_build)
  result = benchmark.run(settings, peak_flops=1e12)
  monkeypatch.undo()
  # The networks were built under mixed bfloat16; the policy is back after.
  assert policies == ["mixed_bfloat16"]
  assert keras.mixed_precision.global_policy().name == "float32"
  assert result["mixed_precision"] is True
  float32 = benchmark.build(benchmark.Settings(per_replica_batch=2, d_steps=1))
  assert result["flops_per_step"] == benchmark.step_flops(
      float32.trainer, float32.iterator)["total"]


@pytest.mark.slow
def test_tool_runs_each_variant_keeps_results_of_a_failed_one(tmp_path):
  # generator.resolution=16 parses but the generator rejects it when built;
  # the variant after it still runs and both results reach the JSON.
  output = tmp_path / "bench.json"
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "benchmark.py"),
       f"--gin_file={SMOKE}", "--variant=generator.resolution=16",
       "--variant=discriminator.ch=16", "--per_replica_batch=2",
       "--d_steps=1", "--steps_per_loop=1", "--loops=1", "--warmup_loops=0",
       "--peak_flops=1e12", f"--output={output}"],
      capture_output=True, text=True, check=False, cwd=REPO)
  assert process.returncode != 0
  assert "1 of 2 benchmark runs failed" in process.stderr, (
      process.stderr[-3000:])
  assert "FAILED: ValueError: Generator resolution must be one of" in (
      process.stdout)
  failed, wider = json.loads(output.read_text())
  assert failed["variant"] == "generator.resolution=16"
  assert "Generator resolution" in failed["error"]
  assert failed["per_replica_batch"] == 2
  assert wider["variant"] == "discriminator.ch=16"
  assert "error" not in wider
  # The table printed is that of the figures written.
  assert benchmark.format_table([wider]) in process.stdout
  assert wider["flops_per_step"] > 0
  assert wider["config"].split(", ")[-1] == "D ch16"
  # The variant's binding reached the model: more parameters than the
  # configured (ch 8) D gives.
  config.parse([SMOKE])
  configured = sum(int(np.prod(v.shape))
                   for n in config.build_model().networks().values()
                   for v in n.trainable_variables)
  assert wider["trainable_parameters"] > configured
  for word in ("GFLOP/step", "img/s", "discriminator.ch=16"):
    assert word in process.stdout


def test_tool_rejects_bad_flag_values(tmp_path):
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "benchmark.py"),
       f"--gin_file={SMOKE}", "--jit_compile=maybe",
       f"--output={tmp_path / 'x.json'}"],
      capture_output=True, text=True, check=False, cwd=REPO)
  assert process.returncode != 0
  assert "--jit_compile takes true/false values" in process.stderr
  process = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "benchmark.py"),
       f"--gin_file={SMOKE}", "--variant=discriminator.chh=16",
       f"--output={tmp_path / 'x.json'}"],
      capture_output=True, text=True, check=False, cwd=REPO)
  assert process.returncode != 0 and "chh" in process.stderr
  assert not (tmp_path / "x.json").exists()


def test_bound_value_resolves_macros():
  config.parse([SMOKE], ["generator.ch = 8"])
  assert bindings.bound_value("generator.resolution") == 32
  assert bindings.bound_value("generator.ch") == 8
  assert bindings.bound_value("generator.not_bound", "default") == "default"


def test_input_only_times_the_configured_pipeline_on_tfds_imagenet(
    tmp_path, clock, known_host_memory, monkeypatch):
  """benchmark.run_input on ImageNet prepared by TFDS from made-up tars (the
  table configs' pipeline: ResNet crop at E's resolution, 128): batch
  times from the clock, images/s of the host and per core it may use."""
  import imagenet_files  # pylint: disable=g-import-not-at-top
  imagenet_files.write_manual_dir(str(tmp_path / "manual"), classes=2,
                                  images=4, validation_images=2)
  config.parse([os.path.join(REPO, "gin", "table1", "base.gin")], [
      f"DATA_DIR = '{tmp_path / 'tfds'}'",
      f"make_dataset.manual_dir = '{tmp_path / 'manual'}'",
      "make_dataset.shuffle_buffer_size = 8"])
  monkeypatch.setattr(benchmark, "host_cores", lambda: 3)
  settings = benchmark.Settings(per_replica_batch=4, steps_per_loop=3,
                                loops=2, warmup_loops=0)
  result = benchmark.run_input(settings)
  first_loop, loop_times = clock.loop_times(2)
  assert result["first_loop_s"] == first_loop
  assert result["step_time_s"] == statistics.median(loop_times) / 3
  assert result["images_per_second"] == 4 / result["step_time_s"]
  assert result["host_cores"] == 3
  assert result["images_per_second_per_core"] == (
      result["images_per_second"] / 3)
  assert result["input_only"] and result["peak_host_memory_bytes"] == (
      MAXRSS_KIB * 1024)
  json.dumps(result)
  per_core = result["images_per_second_per_core"]
  table = benchmark.format_table([result])
  assert "img/s/core" in table
  assert (f"{per_core:.0f}" if per_core >= 100 else f"{per_core:.3g}") in table


def test_encoder_only_step_figures(clock, known_host_memory):
  """benchmark.run_encoder: one device, E alone, forward + backward."""
  config.parse([], [
      "encoder.resolution = 32", "encoder.architecture = 'revnet'",
      "encoder.base_channels = 4", "encoder.units_per_stage = (1, 1)",
      "encoder.stem = 'small'", "encoder.z_dim = 4", "encoder.mlp_width = 8",
      "encoder.reversible_backprop = True"])
  settings = benchmark.Settings(per_replica_batch=2, steps_per_loop=2,
                                loops=2, warmup_loops=0)
  result = benchmark.run_encoder(settings)
  assert result["encoder_only"] and result["global_batch"] == 2
  assert "reversible-backprop" in result["config"]
  _check_step_times(result, clock, loops=2, steps_per_loop=2)
  assert result["peak_host_memory_bytes"] == MAXRSS_KIB * 1024
  assert result["images_per_second"] == pytest.approx(
      2 / result["step_time_s"])
  # Forward, both gradients of every convolution, and the recomputation.
  assert result["flops_by_op"]["Conv2D"] > result["flops_by_op"][
      "Conv2DBackpropFilter"]
  assert result["trainable_parameters"] > 0
  json.dumps(result)
  assert result["config"] in benchmark.format_table([result])


def test_encoder_only_builds_under_mixed_precision_and_restores_policy(
    monkeypatch):
  config.parse([], [
      "encoder.resolution = 32", "encoder.architecture = 'revnet'",
      "encoder.base_channels = 4", "encoder.units_per_stage = (1, 1)",
      "encoder.stem = 'small'", "encoder.z_dim = 4", "encoder.mlp_width = 8"])
  policies = []
  encoder_class = benchmark.networks.Encoder

  def recorded_encoder():
    encoder = encoder_class()
    policies.append(encoder.dtype_policy.name)
    return encoder

  monkeypatch.setattr(benchmark.networks, "Encoder", recorded_encoder)
  result = benchmark.run_encoder(
      benchmark.Settings(per_replica_batch=2, mixed_precision=True,
                         steps_per_loop=1, loops=1, warmup_loops=0),
      count_flops=False)
  assert policies == ["mixed_bfloat16"]
  assert result["mixed_precision"] is True
  assert keras.mixed_precision.global_policy().name == "float32"
