"""Throughput, FLOPs and memory of a training configuration.

`run(settings)` builds the gin-bound BigBiGAN and Trainer under a strategy,
feeds them synthetic images (or the gin-bound dataset) and measures:

  * step time: the median over `loops` timed calls of `Trainer.train_loop`
    (each `steps_per_loop` outer steps, i.e. d_steps D updates + one E+G
    update each), after `warmup_loops` untimed calls; a loop's time ends when
    its metrics reach the host, so asynchronous execution is counted;
  * images/second: real images consumed per second, (d_steps + 1) x global
    batch per outer step (the figure the trainer logs);
  * compile time: the first call (tracing, graph optimisation or XLA
    compilation, plus one loop) minus one steady-state loop;
  * FLOPs of one outer step counted from the traced graph (`graph_flops`):
    2 x multiply-accumulates of every convolution (forward and both
    gradients) and matrix product, in every replica's function, nested
    functions included. Element-wise work (BN, activations, optimisers,
    spectral-norm power iterations' vector ops) is not counted, the usual
    convention for training FLOPs;
  * achieved FLOP/s = FLOPs / step time, and its fraction of a peak: the
    one the caller passes, or a measured matmul peak (`matmul_peak`);
  * peak host memory (the process's maximum resident set size; one
    configuration per process gives a clean figure, which tools/benchmark.py
    does) and peak device memory where the device reports it (GPUs; None on
    CPU and on TPUs through this API).

`run_encoder(settings)` measures the gin-bound encoder E alone: forward and
backward of E on synthetic images, no G, D or optimiser. It is how E's
memory is compared where a whole BigBiGAN step is too slow to time on a CPU
(RevNet-50 x4 at 256x256 with and without `encoder.reversible_backprop`,
docs/benchmarks.md). Its memory figure is the peak of TensorFlow's CPU
allocator during the timed steps, which the allocator reports only when
TF_CPU_ALLOCATOR_USE_BFC=true is set before TensorFlow starts
(tools/benchmark.py sets it for --encoder_only).

Library code takes arguments; the flags live in tools/benchmark.py.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from typing import Any, Iterable, NamedTuple, Optional

import numpy as np
import tensorflow as tf

from bigbigan_tf import bindings
from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import distribute
from bigbigan_tf import networks
from bigbigan_tf import training

SYNTHETIC = "synthetic"
CONFIGURED = "config"
DATA_SOURCES = (SYNTHETIC, CONFIGURED)

# Ops whose FLOPs are counted, and the function that counts them.
_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
_MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
# Attributes through which an op calls other functions of the graph.
_FUNCTION_ATTRS = ("f", "then_branch", "else_branch", "body", "cond",
                   "branches")


@dataclasses.dataclass(frozen=True)
class Settings:
  """One benchmark configuration (the gin config supplies the rest).

  Attributes:
    strategy: distribute.make_strategy name ("default", "mirrored", ...).
    tpu: TPU name for strategy "tpu".
    per_replica_batch: images per replica per update.
    d_steps: D updates per E+G update; None keeps the gin-bound value.
    jit_compile: XLA-compile the per-replica step.
    mixed_precision: mixed bfloat16 compute.
    steps_per_loop: outer steps per timed call of the compiled loop.
    loops: timed calls (the median is reported).
    warmup_loops: untimed calls after the first (compiling) one.
    data: "synthetic" (random images, no input pipeline cost) or "config"
      (the gin-bound make_dataset, training split).
  """
  strategy: str = distribute.DEFAULT
  tpu: Optional[str] = None
  per_replica_batch: int = 32
  d_steps: Optional[int] = None
  jit_compile: bool = False
  mixed_precision: bool = False
  steps_per_loop: int = 10
  loops: int = 5
  warmup_loops: int = 1
  data: str = SYNTHETIC

  def __post_init__(self):
    for name in ("per_replica_batch", "steps_per_loop", "loops"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"Benchmark {name} must be >= 1, got "
                         f"{getattr(self, name)}.")
    if self.warmup_loops < 0:
      raise ValueError(f"Benchmark warmup_loops must be >= 0, got "
                       f"{self.warmup_loops}.")
    if self.d_steps is not None and self.d_steps < 1:
      raise ValueError(f"Benchmark d_steps must be >= 1, got {self.d_steps}.")
    if self.data not in DATA_SOURCES:
      raise ValueError(f"Benchmark data must be one of {DATA_SOURCES}, got "
                       f"{self.data!r}.")


# -- FLOPs ---------------------------------------------------------------------
def _dims(tensor_or_shape, op) -> list[int]:
  shape = tf.TensorShape(getattr(tensor_or_shape, "shape", tensor_or_shape))
  if shape.rank is None or None in shape.as_list():
    raise ValueError(f"Cannot count FLOPs of {op.type} op {op.name!r}: "
                     f"shape {shape} is not fully known (static shapes "
                     f"expected).")
  return shape.as_list()


def _conv_flops(op) -> int:
  """2 x MACs of a 2-D convolution or either of its gradients."""
  if op.type == "Conv2D":
    output, kernel = op.outputs[0], op.inputs[1]
  elif op.type == "Conv2DBackpropInput":   # (input_sizes, filter, out_grad)
    output, kernel = op.inputs[2], op.inputs[1]
  else:                                    # (input, filter_sizes, out_grad)
    output, kernel = op.inputs[2], op.outputs[0]
  kh, kw, cin, cout = _dims(kernel, op)
  out = _dims(output, op)
  channels_first = op.get_attr("data_format") == b"NCHW"
  spatial = out[2] * out[3] if channels_first else out[1] * out[2]
  if out[1 if channels_first else 3] != cout:
    raise ValueError(f"Unexpected shapes in {op.type} op {op.name!r}: "
                     f"output {out}, kernel {[kh, kw, cin, cout]}.")
  return 2 * out[0] * spatial * kh * kw * cin * cout


def _matmul_flops(op) -> int:
  """2 x MACs of a (batched) matrix product."""
  a = _dims(op.inputs[0], op)
  out = _dims(op.outputs[0], op)
  transpose_a = (op.get_attr("transpose_a") if op.type == "MatMul"
                 else op.get_attr("adj_x"))
  inner = a[-2] if transpose_a else a[-1]
  return 2 * int(np.prod(out)) * inner


def graph_flops(graph: tf.Graph, _seen: Optional[dict] = None) -> dict[str, int]:
  """FLOPs of the convolutions and matrix products of a traced graph.

  Functions the graph calls (tf.function calls, XLA-compiled replica steps,
  cond branches, loop bodies) are counted once per call site; a loop body
  counts once (not times its trip count), and of a cond's branches the
  larger counts.

  Returns:
    A dict op type -> FLOPs, and "total".

  Raises:
    ValueError: a counted op has a shape that is not fully known.
  """
  counts: dict[str, int] = {}
  functions = getattr(graph, "_functions", {})
  memo = {} if _seen is None else _seen

  def function_counts(name: str) -> dict[str, int]:
    if name not in memo:
      function = functions.get(name)
      if function is None or not hasattr(function, "graph"):
        memo[name] = {}
      else:
        memo[name] = graph_flops(function.graph, memo)
    return memo[name]

  def add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
      if key != "total":
        into[key] = into.get(key, 0) + value

  for op in graph.get_operations():
    if op.type in _CONV_OPS:
      add(counts, {op.type: _conv_flops(op)})
    elif op.type in _MATMUL_OPS:
      add(counts, {op.type: _matmul_flops(op)})
    branches = []
    for attr in _FUNCTION_ATTRS:
      try:
        value = op.get_attr(attr)
      except ValueError:
        continue
      values = value if isinstance(value, list) else [value]
      names = [getattr(v, "name", None) for v in values]
      branches += [function_counts(n) for n in names if n]
    if op.type in ("If", "StatelessIf", "Case", "StatelessCase") and branches:
      add(counts, max(branches, key=lambda c: sum(c.values())))
    else:
      for branch in branches:
        add(counts, branch)
  counts["total"] = sum(counts.values())
  return counts


def step_flops(trainer: training.Trainer, iterator) -> dict[str, int]:
  """FLOPs of one outer training step (all replicas), from its traced graph.

  The graph is train_loop's: its loop body is one outer step (counted once)
  and the rest adds no products. A loop that already ran is not retraced.
  """
  traced = trainer.train_loop.get_concrete_function(iterator, tf.constant(1))
  return graph_flops(traced.graph)


# -- peaks and memory ------------------------------------------------------------
def matmul_peak(size: int = 2048, dtype: str = "float32",
                repeats: int = 10) -> float:
  """Measured FLOP/s of square matrix products on the default device.

  The best of `repeats` timed products after a warm-up: an attainable peak
  of this machine for dense math in `dtype`.
  """
  a = tf.random.stateless_uniform([size, size], [1, 2], dtype=tf.float32)
  a = tf.cast(a, dtype)
  product = tf.function(lambda m: tf.reduce_sum(tf.matmul(m, m)))
  product(a).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    product(a).numpy()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size**3 / best


def peak_host_memory_bytes() -> int:
  """The process's maximum resident set size so far (Linux: KiB units)."""
  return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _replica_devices(strategy: tf.distribute.Strategy) -> list[str]:
  try:
    return list(strategy.extended.worker_devices)
  except RuntimeError:  # The default strategy: TF's default placement.
    gpus = tf.config.list_logical_devices("GPU")
    return [gpus[0].name if gpus else "/device:CPU:0"]


def _device_peak_memory(devices: Iterable[str]) -> Optional[int]:
  peaks = []
  for device in devices:
    try:
      spec = tf.DeviceSpec.from_string(device)
      info = tf.config.experimental.get_memory_info(
          f"{spec.device_type}:{spec.device_index}")
    except (ValueError, tf.errors.OpError):
      return None
    peaks.append(int(info["peak"]))
  return max(peaks) if peaks else None


# -- the benchmark --------------------------------------------------------------
def _synthetic_dataset(strategy, per_replica_batch: int, resolution: int):
  def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
    images = tf.random.stateless_uniform(
        [per_replica_batch, resolution, resolution, 3],
        [7, context.input_pipeline_id], minval=-1.0, maxval=1.0)
    return tf.data.Dataset.from_tensors({data.IMAGE: images}).repeat()
  return strategy.distribute_datasets_from_function(dataset_fn)


class Setup(NamedTuple):
  strategy: tf.distribute.Strategy
  model: Any
  trainer: training.Trainer
  iterator: Any


def build(settings: Settings) -> Setup:
  """Strategy, gin-bound model, Trainer and input iterator for `settings`.

  The networks take the global Keras precision policy in force: `run` calls
  this inside `training._precision_policy(settings.mixed_precision)`.
  """
  strategy = distribute.make_strategy(settings.strategy, settings.tpu)
  global_batch = settings.per_replica_batch * strategy.num_replicas_in_sync
  trainer_args = {}
  if settings.d_steps is not None:
    trainer_args["d_steps"] = settings.d_steps
  with strategy.scope():
    model = config.build_model()
    trainer = training.Trainer(model, strategy, global_batch,
                               jit_compile=settings.jit_compile,
                               **trainer_args)
  if settings.data == SYNTHETIC:
    dataset = _synthetic_dataset(strategy, settings.per_replica_batch,
                                 model.encoder_resolution)
  else:
    dataset = data.distributed_dataset(
        strategy, global_batch, split="train",
        resolution=model.encoder_resolution, training=True, seed=0)
  return Setup(strategy, model, trainer, iter(dataset))


def _sync(outputs) -> None:
  for value in tf.nest.flatten(outputs):
    value.numpy()


def _timed_loops(loop, settings: Settings) -> tuple[float, list[float]]:
  """Runs `loop` once (tracing, building), `warmup_loops` times untimed and
  `loops` times timed: (the first call's seconds, each timed call's)."""
  start = time.perf_counter()
  loop()
  first_loop = time.perf_counter() - start
  for _ in range(settings.warmup_loops):
    loop()
  loop_times = []
  for _ in range(settings.loops):
    start = time.perf_counter()
    loop()
    loop_times.append(time.perf_counter() - start)
  return first_loop, loop_times


def _step_times(first_loop: float, loop_times: list[float],
                steps_per_loop: int) -> dict[str, float]:
  """The median step time (and the fastest and slowest loops' per step)."""
  return {"step_time_s": statistics.median(loop_times) / steps_per_loop,
          "step_time_min_s": min(loop_times) / steps_per_loop,
          "step_time_max_s": max(loop_times) / steps_per_loop,
          "first_loop_s": first_loop}


def run(settings: Settings,
        peak_flops: Optional[float] = None,
        measure_peak: bool = True,
        count_flops: bool = True,
        profile_dir: Optional[str] = None) -> dict[str, Any]:
  """Benchmarks the gin-bound config (gin must be parsed) with `settings`.

  Args:
    settings: the configuration.
    peak_flops: FLOP/s of all replicas together to compare against (for a
      TPU slice: per-chip peak x chips); None measures a matmul peak (if
      `measure_peak`) in the compute dtype.
    measure_peak: measure the matmul peak when `peak_flops` is None.
    count_flops: count the step's FLOPs from its traced graph.
    profile_dir: if set, one more loop (after the timed ones) runs under
      the TensorFlow profiler, which writes its trace there (TensorBoard's
      profile plugin shows it).

  Returns:
    A flat dict of settings and figures (JSON-serialisable).
  """
  with training._precision_policy(settings.mixed_precision):  # pylint: disable=protected-access
    strategy, model, trainer, iterator = build(settings)
    replicas = strategy.num_replicas_in_sync
    global_batch = trainer.global_batch_size
    loop_steps = tf.constant(settings.steps_per_loop)

    first_loop, loop_times = _timed_loops(
        lambda: _sync(trainer.train_loop(iterator, loop_steps)), settings)
    if profile_dir:
      tf.profiler.experimental.start(profile_dir)
      try:
        _sync(trainer.train_loop(iterator, loop_steps))
      finally:
        tf.profiler.experimental.stop()
    loop_time = statistics.median(loop_times)
    step_time = loop_time / settings.steps_per_loop
    images_per_step = global_batch * (trainer.d_steps + 1)

    results: dict[str, Any] = {
        "config": _config_summary(),
        "machine": machine_description(),
        **dataclasses.asdict(settings),
        "d_steps": trainer.d_steps,
        "jit_compile": trainer.jit_compile,
        "replicas": replicas,
        "global_batch": global_batch,
        **_step_times(first_loop, loop_times, settings.steps_per_loop),
        "steps_per_second": 1.0 / step_time,
        "images_per_second": images_per_step / step_time,
        "compile_time_s": max(first_loop - loop_time, 0.0),
        "trainable_parameters": sum(
            int(np.prod(v.shape)) for n in model.networks().values()
            for v in n.trainable_variables),
    }
    if count_flops:
      flops = step_flops(trainer, iterator)
      results["flops_per_step"] = flops["total"]
      results["flops_by_op"] = {k: v for k, v in flops.items()
                                if k != "total"}
      results["achieved_flops_per_second"] = flops["total"] / step_time
    dtype = "bfloat16" if settings.mixed_precision else "float32"
    if peak_flops is None and measure_peak:
      # One device's matmul; accelerator replicas add up, logical CPU
      # devices share the same cores.
      on_cpu = all("CPU" in d for d in _replica_devices(strategy))
      peak_flops = matmul_peak(dtype=dtype) * (1 if on_cpu else replicas)
      results["peak_source"] = f"measured {dtype} matmul 2048x2048"
    elif peak_flops is not None:
      results["peak_source"] = "given"
    results["peak_flops_per_second"] = peak_flops
    if peak_flops and count_flops:
      results["fraction_of_peak"] = (
          results["achieved_flops_per_second"] / peak_flops)
    results["peak_host_memory_bytes"] = peak_host_memory_bytes()
    results["peak_device_memory_bytes"] = _device_peak_memory(
        _replica_devices(strategy))
    return results


# -- the encoder alone ------------------------------------------------------------
def _reset_device_peaks(devices: Iterable[str]) -> None:
  for device in devices:
    spec = tf.DeviceSpec.from_string(device)
    try:
      tf.config.experimental.reset_memory_stats(
          f"{spec.device_type}:{spec.device_index}")
    except (ValueError, tf.errors.OpError):
      pass  # This device keeps no statistics; nothing to reset.


def _device_memory_in_use(devices: Iterable[str]) -> Optional[int]:
  in_use = []
  for device in devices:
    spec = tf.DeviceSpec.from_string(device)
    try:
      info = tf.config.experimental.get_memory_info(
          f"{spec.device_type}:{spec.device_index}")
    except (ValueError, tf.errors.OpError):
      return None
    in_use.append(int(info["current"]))
  return max(in_use) if in_use else None


def run_encoder(settings: Settings,
                count_flops: bool = True) -> dict[str, Any]:
  """Benchmarks one training step of the gin-bound encoder alone.

  A step is E's training-mode forward pass on `per_replica_batch` synthetic
  images and the gradients of the sum of its latent sample and pooled
  features with respect to every trainable variable (nothing is applied),
  in one tf.function (XLA with `jit_compile`), on TensorFlow's default
  device; `strategy`, `d_steps` and `data` are not used. Each timed loop
  runs `steps_per_loop` steps; the median of `loops` loops is reported
  after the first (tracing) call and `warmup_loops` untimed ones.

  Memory: `peak_device_memory_bytes` is the allocator's peak during the
  warm-up and timed loops (statistics reset after E is built and its step
  traced), `resident_device_memory_bytes` what it held before the first
  step (E's weights; the step's own memory is the difference). Both are
  None where the device keeps no statistics (a CPU without
  TF_CPU_ALLOCATOR_USE_BFC=true). `peak_host_memory_bytes` is the process's
  peak resident set, building E included.

  Returns:
    A flat dict of settings and figures (JSON-serialisable); the timing and
    memory keys are those of `run`.
  """
  with training._precision_policy(settings.mixed_precision):  # pylint: disable=protected-access
    encoder = networks.Encoder()  # Arguments from the gin bindings.
    devices = _replica_devices(tf.distribute.get_strategy())
    images = tf.random.stateless_uniform(
        [settings.per_replica_batch, encoder.resolution, encoder.resolution,
         3], [7, 0], minval=-1.0, maxval=1.0)
    variables = encoder.trainable_variables

    @tf.function(jit_compile=settings.jit_compile)
    def step(x):
      with tf.GradientTape() as tape:
        out = encoder(x, training=True)
        loss = (tf.reduce_sum(tf.cast(out["z_sample"], tf.float32))
                + tf.reduce_sum(tf.cast(out["avepool_feat"], tf.float32)))
      gradients = tape.gradient(loss, variables)
      # Returning a function of every gradient keeps them all computed.
      return loss, tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32)))
                             for g in gradients])

    def loop():
      for _ in range(settings.steps_per_loop):
        outputs = step(images)
      _sync(outputs)

    flops = (graph_flops(step.get_concrete_function(images).graph)
             if count_flops else None)
    resident = _device_memory_in_use(devices)
    _reset_device_peaks(devices)
    first_loop, loop_times = _timed_loops(loop, settings)
    loop_time = statistics.median(loop_times)
    step_time = loop_time / settings.steps_per_loop
    results: dict[str, Any] = {
        "config": _config_summary(),
        "machine": machine_description(),
        **dataclasses.asdict(settings),
        "encoder_only": True,
        "d_steps": None,
        "replicas": 1,
        "global_batch": settings.per_replica_batch,
        **_step_times(first_loop, loop_times, settings.steps_per_loop),
        "steps_per_second": 1.0 / step_time,
        "images_per_second": settings.per_replica_batch / step_time,
        "compile_time_s": max(first_loop - loop_time, 0.0),
        "trainable_parameters": sum(int(np.prod(v.shape)) for v in variables),
        "peak_host_memory_bytes": peak_host_memory_bytes(),
        "peak_device_memory_bytes": _device_peak_memory(devices),
        "resident_device_memory_bytes": resident,
    }
    if flops is not None:
      results["flops_per_step"] = flops["total"]
      results["flops_by_op"] = {k: v for k, v in flops.items()
                                if k != "total"}
      results["achieved_flops_per_second"] = flops["total"] / step_time
    return results


def host_cores() -> int:
  """CPU cores this process may run on."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


def _configured_resolution() -> int:
  """E's input side (else G's) from the gin bindings, without building."""
  resolution = (bindings.bound_value("encoder.resolution")
                or bindings.bound_value("generator.resolution"))
  if resolution is None:
    raise ValueError("Expected encoder.resolution or generator.resolution "
                     "in the gin config, got neither.")
  return int(resolution)


def run_input(settings: Settings) -> dict[str, Any]:
  """Benchmarks the gin-bound training input pipeline alone, on this host.

  One pipeline (what each host of a pod runs for its cores: see
  bigbigan_tf.data.distributed_dataset) of the training split at E's
  resolution, batches of `per_replica_batch` images. Each timed loop takes
  `steps_per_loop` batches; the median of `loops` loops is reported after
  the first (building) loop and `warmup_loops` untimed ones (the shuffle
  buffer fills then). `strategy`, `d_steps` and `jit_compile` are not used.

  Returns:
    A flat dict of settings and figures: images_per_second of the host and
    per core it may use (`host_cores`), the median batch time.
  """
  dataset = data.make_dataset(
      split="train", resolution=_configured_resolution(),
      batch_size=settings.per_replica_batch, training=True, seed=0)
  iterator = iter(dataset)

  def loop():
    for _ in range(settings.steps_per_loop):
      batch = next(iterator)
    _sync(batch)

  times = _step_times(*_timed_loops(loop, settings), settings.steps_per_loop)
  images_per_second = settings.per_replica_batch / times["step_time_s"]
  cores = host_cores()
  return {
      "config": _config_summary(),
      "machine": machine_description(),
      **dataclasses.asdict(settings),
      "input_only": True,
      "d_steps": None,
      "replicas": 1,
      "global_batch": settings.per_replica_batch,
      **times,
      "images_per_second": images_per_second,
      "host_cores": cores,
      "images_per_second_per_core": images_per_second / cores,
      "peak_host_memory_bytes": peak_host_memory_bytes(),
  }


def machine_description() -> str:
  """CPU model, core count, accelerators and TensorFlow version."""
  cpu = "unknown CPU"
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          cpu = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  accelerators = [d.device_type for d in tf.config.list_physical_devices()
                  if d.device_type not in ("CPU",)]
  return (f"{cpu}, {os.cpu_count()} cores"
          + (f", {len(accelerators)} x {accelerators[0]}" if accelerators
             else "") + f", TF {tf.__version__}")


def _config_summary() -> str:
  """Short description of the gin-bound networks, e.g.
  "G32 ch8, E resnet_v2 base16, D ch8" (unbound parts are left out)."""
  value = lambda name: bindings.bound_value(name)
  parts = []
  if value("generator.resolution") is not None:
    parts.append(f"G{value('generator.resolution')} ch{value('generator.ch')}")
  encoder = [str(v) for v in (
      value("encoder.architecture"), value("encoder.depth"),
      value("encoder.width") and f"x{value('encoder.width')}",
      value("encoder.base_channels") and
      f"base{value('encoder.base_channels')}",
      value("encoder.reversible_backprop") and "reversible-backprop") if v]
  if encoder:
    parts.append("E " + " ".join(encoder))
  if value("discriminator.ch") is not None:
    parts.append(f"D ch{value('discriminator.ch')}")
  return ", ".join(parts)


# -- profiles ---------------------------------------------------------------------
_NETWORKS = ("generator", "encoder", "discriminator")


def op_time_breakdown(profile_dir: str) -> dict[str, Any]:
  """Where a profiled loop spent its op time (from the profiler's XPlane).

  Reads the newest trace under `profile_dir` (written by `run(...,
  profile_dir=...)`) and sums the durations of TensorFlow ops executed by the
  graph executor's compute threads, grouped three ways. XLA-compiled steps
  appear as their cluster ops. Threads run concurrently, so the sums are op
  time, not wall time; fractions are of the total op time.

  Returns:
    {"by_type": {op type: fraction}, "by_network": {generator / encoder /
    discriminator / other: fraction}, "by_phase": {forward / gradient /
    other: fraction}, "total_op_seconds": seconds}.

  Raises:
    ValueError: no trace under profile_dir.
  """
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  traces = sorted(tf.io.gfile.glob(os.path.join(
      profile_dir, "plugins", "profile", "*", "*.xplane.pb")))
  if not traces:
    raise ValueError(f"No profiler trace (plugins/profile/*/*.xplane.pb) "
                     f"under {profile_dir}.")
  space = xplane_pb2.XSpace()
  with tf.io.gfile.GFile(traces[-1], "rb") as f:
    space.ParseFromString(f.read())
  by_type, by_network, by_phase = {}, {}, {}
  total = 0
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" not in name or name.startswith("ExecutorState"):
          continue
        path, op_type = name.rsplit(":", 1)
        op_type = op_type.replace("_MklNative", "").replace("_Mkl", "")
        parts = path.split("/")
        network = next((n for n in _NETWORKS
                        if any(p.split("_")[0] == n for p in parts)), "other")
        phase = ("gradient" if "gradient_tape" in parts else
                 "forward" if network != "other" else "other")
        for table, key in ((by_type, op_type), (by_network, network),
                           (by_phase, phase)):
          table[key] = table.get(key, 0) + event.duration_ps
        total += event.duration_ps
  if not total:
    raise ValueError(f"The trace {traces[-1]} holds no TensorFlow op events.")
  fractions = lambda table: dict(sorted(
      ((k, v / total) for k, v in table.items()), key=lambda kv: -kv[1]))
  return {"by_type": fractions(by_type), "by_network": fractions(by_network),
          "by_phase": fractions(by_phase),
          "total_op_seconds": total * 1e-12}


def format_breakdown(breakdown: dict[str, Any],
                     top: int = 12) -> str:
  """The op-time breakdown as text: the `top` op types, networks, phases."""
  lines = [f"Op time {breakdown['total_op_seconds']:.2f} s "
           f"(summed over compute threads):"]
  for title in ("by_type", "by_network", "by_phase"):
    items = list(breakdown[title].items())[:top]
    lines.append(f"  {title[3:]:<8} " + ", ".join(
        f"{k} {100 * v:.1f}%" for k, v in items))
  return "\n".join(lines)


# -- reporting ------------------------------------------------------------------
_COLUMNS = (
    ("variant", "variant", lambda v: v or "(as configured)"),
    ("config", "config", "{}"),
    ("jit", "jit_compile", "{}"),
    ("bf16", "mixed_precision", "{}"),
    ("batch/rep", "per_replica_batch", "{}"),
    ("d_steps", "d_steps", "{}"),
    ("step ms", "step_time_s", lambda v: f"{1e3 * v:.1f}"),
    ("img/s", "images_per_second",
     lambda v: f"{v:.0f}" if v >= 100 else f"{v:.3g}"),
    ("img/s/core", "images_per_second_per_core",
     lambda v: f"{v:.0f}" if v >= 100 else f"{v:.3g}"),
    ("compile s", "compile_time_s", lambda v: f"{v:.1f}"),
    ("GFLOP/step", "flops_per_step", lambda v: f"{v / 1e9:.2f}"),
    ("GFLOP/s", "achieved_flops_per_second", lambda v: f"{v / 1e9:.1f}"),
    ("% peak", "fraction_of_peak", lambda v: f"{100 * v:.1f}"),
    ("host MiB", "peak_host_memory_bytes", lambda v: f"{v / 2**20:.0f}"),
    ("dev MiB", "peak_device_memory_bytes",
     lambda v: "n/a" if v is None else f"{v / 2**20:.0f}"),
)


def format_table(results: list[dict[str, Any]]) -> str:
  """A fixed-width table of benchmark results, one row per configuration."""
  def cell(result, key, fmt):
    value = result.get(key)
    if value is None and key not in ("peak_device_memory_bytes", "variant"):
      return "-"
    return fmt(value) if callable(fmt) else fmt.format(value)
  rows = [[title for title, _, _ in _COLUMNS]]
  rows += [[cell(r, key, fmt) for _, key, fmt in _COLUMNS] for r in results]
  widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
  lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)
