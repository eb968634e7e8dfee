"""The console scripts, run as a user runs them: from another directory, in
subprocesses, on the shipped smoke config (train -> evaluate -> export)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

BIN = pathlib.Path(sys.executable).parent
# Lines TensorFlow and TFDS print on their own at start-up and preparation.
NOISE = ("cudart_stub", "cuda_platform", "cpu_feature_guard",
         "Downloading and preparing", "Load dataset info from",
         "Variant folder",
         # Graph optimisation errors (grappler's remapper once failed on
         # D's residual blocks and said so).
         "meta_optimizer",
         # TensorFlow's logger on every SavedModel it writes.
         "Assets written to")


def _check_quiet(result):
  for noise in NOISE:
    assert noise not in _output(result), (noise, _output(result)[-3000:])


def _run(tool, *args, cwd):
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # As a user's shell has it.
  return subprocess.run([str(BIN / tool), *args], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=900,
                        check=False)


def _output(result):
  return result.stdout + result.stderr


# evaluate_model on the run's restored inference model, in a process set up as
# the tool's is (one CPU device, not this process's two), so that float32
# reductions round alike; it writes nothing into model_dir.
_LIBRARY_FIGURES = """
import json, sys
from bigbigan_tf import config, restore
from bigbigan_tf.evaluation import evaluator
model = restore.restore_inference_model(sys.argv[1], None)
config.parse((), json.loads(sys.argv[2]), clear=False)
print(json.dumps(evaluator.evaluate_model(model)))
"""


def _library_figures(model_dir, gin_bindings, cwd):
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)
  result = subprocess.run(
      [sys.executable, "-c", _LIBRARY_FIGURES, model_dir,
       json.dumps(gin_bindings)], cwd=cwd, env=env, capture_output=True,
      text=True, timeout=900, check=False)
  assert result.returncode == 0, _output(result)[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_evaluate_export_through_the_console_scripts(tmp_path):
  model_dir = tmp_path / "run"
  data_dir = tmp_path / "tfds"
  steps = ["--gin_bindings=train.train_steps = 2",
           "--gin_bindings=train.steps_per_loop = 1",
           "--gin_bindings=train.checkpoint_every = 2",
           "--gin_bindings=train.image_every = 2",
           "--gin_bindings=train.batch_size = 8",
           f"--gin_bindings=make_dataset.data_dir = '{data_dir}'"]
  train = _run("bigbigan-train", "--gin_file=smoke.gin",
               f"--model_dir={model_dir}", "--noevaluate", *steps,
               cwd=tmp_path)
  assert train.returncode == 0, _output(train)[-3000:]
  assert "step 2/2" in _output(train)
  # Progress reaches the user; start-up noise does not.
  _check_quiet(train)
  assert (model_dir / "checkpoints" / "ckpt-2.index").exists()
  assert (model_dir / "images" / "samples_00000002.png").exists()

  eval_bindings = ["evaluation.probe_steps = 20",
                   "load_arrays.max_examples = 200",
                   "evaluation.random_encoder_baseline = False"]
  evaluate = _run("bigbigan-evaluate", f"--model_dir={model_dir}",
                  *(f"--gin_bindings={b}" for b in eval_bindings),
                  f"--output_json={tmp_path / 'copy.json'}", cwd=tmp_path)
  assert evaluate.returncode == 0, _output(evaluate)[-3000:]
  _check_quiet(evaluate)
  figures = json.loads((model_dir / "eval.json").read_text())
  assert figures == json.loads((tmp_path / "copy.json").read_text())
  # The figures are the library's for that checkpoint and those settings:
  # the evaluation run again on the restored run, in a process like the
  # tool's (it is seeded, and the judge is read from the cache the tool
  # wrote), gives each of them: identical in three runs on one machine;
  # rel=1e-6 leaves room for last bits only.
  expected = _library_figures(str(model_dir), eval_bindings, tmp_path)
  assert figures.keys() == expected.keys()
  for key, value in expected.items():
    assert figures[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
  for key in figures:
    assert key in evaluate.stdout

  export_dir = tmp_path / "export"
  export = _run("bigbigan-export", f"--model_dir={model_dir}",
                f"--export_dir={export_dir}", cwd=tmp_path)
  assert export.returncode == 0, _output(export)[-3000:]
  _check_quiet(export)
  for part in ("bigbigan", "encoder", "generator"):
    assert (export_dir / part / "saved_model.pb").exists(), part
    assert f"{part}: {export_dir / part}" in export.stdout


@pytest.mark.slow
def test_module_entry_point_and_bad_config_name(tmp_path):
  bad = subprocess.run(
      [sys.executable, "-m", "bigbigan_tf.tools.train",
       "--gin_file=no_such.gin", f"--model_dir={tmp_path / 'run'}"],
      cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
  assert bad.returncode != 0
  assert "no_such.gin" in bad.stderr and "smoke.gin" in bad.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_benchmark_through_the_console_script(tmp_path):
  """bigbigan-benchmark on the shipped smoke config: one loop of one step,
  FLOPs not counted, a given peak (nothing measured besides the step)."""
  from bigbigan_tf import benchmark  # pylint: disable=g-import-not-at-top
  from bigbigan_tf import config  # pylint: disable=g-import-not-at-top
  output = tmp_path / "bench.json"
  result = _run("bigbigan-benchmark", "--gin_file=smoke.gin",
                "--per_replica_batch=2", "--d_steps=1", "--steps_per_loop=1",
                "--loops=1", "--warmup_loops=0", "--count_flops=false",
                "--peak_flops=1e12", f"--output={output}", cwd=tmp_path)
  assert result.returncode == 0, _output(result)[-3000:]
  _check_quiet(result)
  (figures,) = json.loads(output.read_text())
  assert "error" not in figures
  assert figures["global_batch"] == 2 and figures["replicas"] == 1
  assert figures["d_steps"] == 1 and figures["steps_per_loop"] == 1
  assert figures["variant"] == ""
  assert "flops_per_step" not in figures
  assert figures["peak_source"] == "given"
  assert figures["peak_flops_per_second"] == 1e12
  # One timed loop of one step: its time is the median, minimum and maximum.
  assert (figures["step_time_s"] == figures["step_time_min_s"]
          == figures["step_time_max_s"] > 0)
  assert figures["images_per_second"] == pytest.approx(
      2 * (1 + 1) / figures["step_time_s"])
  assert figures["config"] == "G32 ch8, E resnet_v2 base4, D ch8"
  # The smoke networks' parameters, counted here from the same config.
  config.parse(["smoke.gin"], [])
  assert figures["trainable_parameters"] == sum(
      int(np.prod(v.shape)) for n in config.build_model().networks().values()
      for v in n.trainable_variables)
  # The table printed is that of the figures written.
  assert benchmark.format_table([figures]) in result.stdout
  assert f"Wrote {output}" in result.stdout
