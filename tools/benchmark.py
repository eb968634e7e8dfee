r"""Benchmarks training steps of a gin config: time, images/s, FLOPs, memory.

  bigbigan-benchmark --gin_file=quickstart_mnist.gin \
      --jit_compile=false,true --output=/tmp/benchmark.json

Every combination of the list-valued flags (--jit_compile,
--mixed_precision, --per_replica_batch, --d_steps) runs in a fresh process
(clean compile time and peak memory); the tool prints a table and writes all
figures as JSON. Synthetic images by default (--data=config reads the
gin-bound dataset). The gin config's training schedule is not used; only its
networks and trainer settings.

--encoder_only times forward and backward of the gin-bound encoder alone
(one device, no G, D or optimiser) and reports the peak of TensorFlow's CPU
allocator during the step, e.g. RevNet-50 x4 at 256x256 with and without
reversible back-propagation:

  bigbigan-benchmark --encoder_only --per_replica_batch=4 \
      --gin_bindings="encoder.architecture='revnet'" \
      --gin_bindings="encoder.width=4" --gin_bindings="encoder.resolution=256" \
      --variant="encoder.reversible_backprop=False" \
      --variant="encoder.reversible_backprop=True"

--input_only times the gin-bound training input pipeline alone, as one host
of a pod runs it (reading, decoding, cropping, batching; no model), and
reports images/s of the host and per CPU core it may use, e.g. for ImageNet
prepared with TFDS:

  bigbigan-benchmark --input_only --gin_file=table1/base.gin \
      --gin_bindings="DATA_DIR='/data/tfds'" --per_replica_batch=256
"""

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import tempfile
import traceback

from absl import app
from absl import flags

from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import benchmark
  from bigbigan_tf import config
  from bigbigan_tf import distribute
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "gin config files.")
flags.DEFINE_multi_string("gin_bindings", [], "gin bindings (win over files).")
flags.DEFINE_enum("strategy", distribute.DEFAULT, distribute.STRATEGIES,
                  "Distribution strategy (--tpu implies tpu).")
flags.DEFINE_string("tpu", None, "TPU name/address ('local' on a TPU VM).")
flags.DEFINE_list("jit_compile", ["false"], "XLA on/off, e.g. false,true.")
flags.DEFINE_list("mixed_precision", ["false"],
                  "Mixed bfloat16 on/off, e.g. false,true.")
flags.DEFINE_list("per_replica_batch", ["32"], "Images per replica, e.g. 16,32.")
flags.DEFINE_list("d_steps", ["config"],
                  "D steps per E+G step; 'config' keeps the gin value.")
flags.DEFINE_multi_string(
    "variant", [],
    "A set of extra gin bindings separated by ';' (repeatable; '' is the "
    "config as it is). Each variant is combined with every value of the "
    "list flags, e.g. --variant='generator.ch=16;discriminator.ch=16' "
    "--variant='' compares before and after a change in one run.")
flags.DEFINE_integer("steps_per_loop", 10, "Outer steps per timed loop.")
flags.DEFINE_integer("loops", 5, "Timed loops (the median is reported).")
flags.DEFINE_integer("warmup_loops", 1, "Untimed loops after compilation.")
flags.DEFINE_enum("data", benchmark.SYNTHETIC, benchmark.DATA_SOURCES,
                  "Synthetic images or the gin-bound dataset.")
flags.DEFINE_float("peak_flops", None,
                   "Peak FLOP/s of all replicas together; default: a "
                   "measured matmul peak.")
flags.DEFINE_bool("count_flops", True, "Count FLOPs from the traced graph.")
flags.DEFINE_bool("encoder_only", False,
                  "Time forward + backward of the gin-bound encoder alone "
                  "(benchmark.run_encoder) and report the CPU allocator's "
                  "peak memory.")
flags.DEFINE_bool("input_only", False,
                  "Time the gin-bound training input pipeline alone "
                  "(benchmark.run_input): images/s of this host and per "
                  "core; no model is built.")
flags.DEFINE_string("profile_dir", None,
                    "Profile one more loop of each configuration (trace in "
                    "PROFILE_DIR/<index>, for TensorBoard) and print where "
                    "its op time went.")
flags.DEFINE_string("output", "benchmark.json", "JSON file of all results.")
flags.DEFINE_string("single_run_output", None,
                    "Internal: run only combination --single_run_index in "
                    "this process and write its result here.")
flags.DEFINE_integer("single_run_index", 0,
                     "Internal: which combination --single_run_output runs.")

_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _bools(name):
  values = getattr(FLAGS, name)
  try:
    return [_BOOLS[v.strip().lower()] for v in values]
  except KeyError as error:
    raise app.UsageError(f"--{name} takes true/false values, got "
                         f"{values}.") from error


def _ints(name, allow_config=False):
  out = []
  for value in getattr(FLAGS, name):
    if allow_config and value == "config":
      out.append(None)
      continue
    try:
      out.append(int(value))
    except ValueError as error:
      raise app.UsageError(f"--{name} takes integers"
                           f"{' or config' if allow_config else ''}, got "
                           f"{value!r}.") from error
  return out


def _variants():
  """Each --variant as a list of gin bindings (one empty variant if none)."""
  return [[b.strip() for b in v.split(";") if b.strip()]
          for v in (FLAGS.variant or [""])]


def _settings():
  for variant, jit, bf16, batch, d_steps in itertools.product(
      _variants(), _bools("jit_compile"), _bools("mixed_precision"),
      _ints("per_replica_batch"), _ints("d_steps", allow_config=True)):
    yield variant, benchmark.Settings(
        strategy=FLAGS.strategy, tpu=FLAGS.tpu, per_replica_batch=batch,
        d_steps=d_steps, jit_compile=jit, mixed_precision=bf16,
        steps_per_loop=FLAGS.steps_per_loop, loops=FLAGS.loops,
        warmup_loops=FLAGS.warmup_loops, data=FLAGS.data)


def _profile_dir(index):
  return FLAGS.profile_dir and os.path.join(FLAGS.profile_dir, str(index))


def _failed_result(variant, settings, error: str) -> dict:
  """The JSON entry of a combination that did not finish."""
  return dict(dataclasses.asdict(settings), variant=";".join(variant),
              error=error)


def _single_run(index, variant, settings):
  """Runs one combination; a failure is written as the result's `error`."""
  try:
    config.parse(FLAGS.gin_file, FLAGS.gin_bindings + variant)
    profile_dir = _profile_dir(index)
    if FLAGS.input_only:
      result = benchmark.run_input(settings)
    elif FLAGS.encoder_only:
      result = benchmark.run_encoder(settings, count_flops=FLAGS.count_flops)
    else:
      result = benchmark.run(settings, peak_flops=FLAGS.peak_flops,
                             count_flops=FLAGS.count_flops,
                             profile_dir=profile_dir)
    if profile_dir and not (FLAGS.encoder_only or FLAGS.input_only):
      result["op_time"] = benchmark.op_time_breakdown(profile_dir)
  except Exception as e:  # Reported by the parent; the other runs go on.
    traceback.print_exc()
    result = _failed_result(variant, settings, f"{type(e).__name__}: {e}")
  result["variant"] = ";".join(variant)
  with open(FLAGS.single_run_output, "w") as f:
    json.dump(result, f)
  if "error" in result:
    raise SystemExit(1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.input_only and FLAGS.encoder_only:
    raise app.UsageError("Give at most one of --input_only and "
                         "--encoder_only.")
  variants = list(_settings())
  if FLAGS.single_run_output:
    _single_run(FLAGS.single_run_index, *variants[FLAGS.single_run_index])
    return
  # Fail on a bad config here, before starting any subprocess.
  for variant in _variants():
    config.parse(FLAGS.gin_file, FLAGS.gin_bindings + variant)
  results = []
  # TensorFlow's CPU allocator keeps statistics only as a BFC allocator.
  env = (dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true")
         if FLAGS.encoder_only else None)
  with tempfile.TemporaryDirectory() as tmp:
    for i, (variant, settings) in enumerate(variants):
      output = os.path.join(tmp, f"{i}.json")
      print(f"[{i + 1}/{len(variants)}] {variant} {settings}", flush=True)
      # The child gets this command's flags and picks combination i.
      process = subprocess.run(
          [sys.executable, "-m", "bigbigan_tf.tools.benchmark"] + sys.argv[1:]
          + [f"--single_run_index={i}", f"--single_run_output={output}"],
          check=False, env=env)
      if os.path.exists(output):
        with open(output) as f:
          results.append(json.load(f))
      else:  # The child died before writing (a crash, out of memory, ...).
        results.append(_failed_result(
            variant, settings, f"the benchmark process exited with status "
            f"{process.returncode} (its output is above)"))
  failures = [(i, r) for i, r in enumerate(results) if "error" in r]
  finished = [r for r in results if "error" not in r]
  print()
  if finished:
    print(f"{' + '.join(FLAGS.gin_file)}  |  {finished[0]['machine']}")
    print(benchmark.format_table(finished))
  for i, result in enumerate(results):
    if "op_time" in result:
      print(f"\n[{i + 1}] profile in {_profile_dir(i)}"
            f"\n{benchmark.format_breakdown(result['op_time'])}")
  for i, result in failures:
    print(f"\n[{i + 1}] {result['variant'] or '(as configured)'} FAILED: "
          f"{result['error']}")
  with open(FLAGS.output, "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  print(f"Wrote {os.path.abspath(FLAGS.output)}")
  if failures:
    raise SystemExit(f"{len(failures)} of {len(results)} benchmark runs "
                     f"failed (listed above; results of the others are in "
                     f"{FLAGS.output}).")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
