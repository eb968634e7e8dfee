"""Learning curves read back from TensorBoard events and plotted."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf.evaluation import curves

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_run(model_dir):
  """Summaries as training writes them: per inner loop and per evaluation,
  with the operative config as text and a sample grid; a resumed run writes
  step 20 again."""
  writer = tf.summary.create_file_writer(str(model_dir))
  with writer.as_default():
    tf.summary.text("operative_config", "train.train_steps = 30", step=0)
    tf.summary.image("samples", tf.zeros([1, 8, 8, 1]), step=10)
    for step in (10, 20, 30):
      tf.summary.scalar("hinge_active/encoder_d_score_x", 1.0 - step / 100,
                        step=step)
      tf.summary.scalar("loss/d", 2.0, step=step)
    for step, probe in ((20, 0.5), (30, 0.7)):
      tf.summary.scalar("eval/linear_probe_bn_crelu_top1", probe, step=step)
      tf.summary.scalar("eval/inversion_error", 1.0 - probe, step=step)
  writer.close()
  writer = tf.summary.create_file_writer(str(model_dir))
  with writer.as_default():
    tf.summary.scalar("eval/linear_probe_bn_crelu_top1", 0.6, step=20)
  writer.close()


def test_scalars_are_read_sorted_with_the_last_write_of_a_step(tmp_path):
  _write_run(tmp_path)
  scalars = curves.read_scalars(str(tmp_path))
  steps, values = scalars["eval/linear_probe_bn_crelu_top1"]
  np.testing.assert_array_equal(steps, [20, 30])
  np.testing.assert_allclose(values, [0.6, 0.7], rtol=1e-6)
  steps, values = scalars["hinge_active/encoder_d_score_x"]
  np.testing.assert_array_equal(steps, [10, 20, 30])
  np.testing.assert_allclose(values, [0.9, 0.8, 0.7], rtol=1e-6)
  assert "operative_config" not in scalars and "samples" not in scalars


def test_figure_is_written_with_the_panels_tags(tmp_path):
  _write_run(tmp_path)
  path = tmp_path / "curves.png"
  plotted = curves.plot_learning_curves(curves.read_scalars(str(tmp_path)),
                                        str(path), title="run")
  assert plotted == ["eval/inversion_error", "eval/linear_probe_bn_crelu_top1",
                     "hinge_active/encoder_d_score_x"]
  image = tf.io.decode_png(path.read_bytes())
  assert image.shape[0] >= 800 and image.shape[1] >= 1100
  # Not a blank canvas: lines and text in several colours.
  assert len(np.unique(image.numpy().reshape(-1, image.shape[-1]), axis=0)) > 50


def test_missing_events_and_curves_are_clear_errors(tmp_path):
  with pytest.raises(ValueError, match="event files.*found none"):
    curves.read_scalars(str(tmp_path))
  with pytest.raises(ValueError, match="train.eval_every"):
    curves.plot_learning_curves({"loss/d": (np.array([1]), np.array([2.0]))},
                                str(tmp_path / "x.png"))
  assert not (tmp_path / "x.png").exists()


def test_tool_writes_png_and_scalars_json(tmp_path):
  _write_run(tmp_path / "run")
  result = subprocess.run(
      [sys.executable, "-m", "bigbigan_tf.tools.curves",
       f"--model_dir={tmp_path / 'run'}",
       f"--scalars_json={tmp_path / 'scalars.json'}"],
      capture_output=True, text=True, check=False, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "run" / "learning_curves.png").exists()
  assert "3 curves" in result.stdout
  scalars = json.loads((tmp_path / "scalars.json").read_text())
  assert scalars["loss/d"] == [[10, 2.0], [20, 2.0], [30, 2.0]]
  missing = subprocess.run(
      [sys.executable, "-m", "bigbigan_tf.tools.curves",
       f"--model_dir={tmp_path / 'nothing'}"],
      capture_output=True, text=True, check=False, cwd=tmp_path)
  assert missing.returncode != 0 and "found none" in missing.stderr


def test_console_script_writes_png_and_scalars_json(tmp_path):
  """bigbigan-curves, the installed command, run from another directory."""
  _write_run(tmp_path / "run")
  command = os.path.join(os.path.dirname(sys.executable), "bigbigan-curves")
  output = tmp_path / "figure.png"
  result = subprocess.run(
      [command, f"--model_dir={tmp_path / 'run'}", f"--output={output}",
       f"--scalars_json={tmp_path / 'scalars.json'}"],
      capture_output=True, text=True, check=False, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"3 curves: {output}" in result.stdout
  assert not (tmp_path / "run" / "learning_curves.png").exists()
  image = tf.io.decode_png(output.read_bytes())
  assert image.shape[0] >= 800 and image.shape[1] >= 1100
  scalars = json.loads((tmp_path / "scalars.json").read_text())
  assert sorted(scalars) == ["eval/inversion_error",
                             "eval/linear_probe_bn_crelu_top1",
                             "hinge_active/encoder_d_score_x", "loss/d"]
  # The last write of step 20 (the resumed run's) wins.
  assert scalars["eval/linear_probe_bn_crelu_top1"] == [
      [20, pytest.approx(0.6)], [30, pytest.approx(0.7)]]
  assert scalars["hinge_active/encoder_d_score_x"] == [
      [10, pytest.approx(0.9)], [20, pytest.approx(0.8)],
      [30, pytest.approx(0.7)]]
  assert scalars["loss/d"] == [[10, 2.0], [20, 2.0], [30, 2.0]]
