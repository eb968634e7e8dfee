"""Checkpoint saves (in the background or not), a full disk, and restarts
after a pod's transient errors."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import checkpoints
from bigbigan_tf import config
from bigbigan_tf import lease
from bigbigan_tf import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_GIN = os.path.join(ROOT, "gin", "smoke.gin")


def _parse(data_dir, *bindings):
  config.parse([SMOKE_GIN], [
      "make_dataset.name = 'mnist5k'", f"make_dataset.data_dir = '{data_dir}'",
      "train.batch_size = 4", "train.steps_per_loop = 1",
      "train.max_loop_seconds = None", "train.image_every = 1000",
      "trainer.d_steps = 1", "trainer.gradient_diagnostics = False",
      *bindings])


def _values(path):
  reader = tf.train.load_checkpoint(path)
  # The input pipeline's state is a variant tensor, not readable here;
  # save_counter counts the saves of the writer (a background save has its
  # own).
  skip = ("_CHECKPOINTABLE_OBJECT_GRAPH", "data_iterator", "save_counter")
  return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if not any(part in n for part in skip)}


def _assert_same(path_a, path_b):
  a, b = _values(path_a), _values(path_b)
  assert a.keys() == b.keys() and len(a) > 100
  for name, value in a.items():
    np.testing.assert_array_equal(b[name], value, err_msg=name)


def test_save_options_ask_for_a_background_save_on_this_tensorflow():
  assert checkpoints.save_options(True).experimental_enable_async_checkpoint
  assert not checkpoints.save_options(False).experimental_enable_async_checkpoint


@pytest.mark.parametrize("async_checkpoints", [False, True])
def test_a_full_disk_ends_training_with_one_message_and_keeps_the_checkpoints(
    tmp_path, data_dir, monkeypatch, async_checkpoints):
  """The second checkpoint's files fail to write for space (in the
  background thread when saves are asynchronous): the error names the
  directory and the last good checkpoint, which is still the latest."""
  model_dir = str(tmp_path / "full")
  _parse(data_dir, "train.train_steps = 2", "train.checkpoint_every = 1",
         f"train.async_checkpoints = {async_checkpoints}")
  write = tf.train.Checkpoint._write  # pylint: disable=protected-access
  writes = []

  def write_until_full(checkpoint, prefix, options=None):
    if options is not None and options.experimental_enable_async_checkpoint:
      return write(checkpoint, prefix, options)  # Hands over to the thread.
    writes.append(prefix)
    if len(writes) > 1:
      raise tf.errors.ResourceExhaustedError(
          None, None, "Write failed: No space left on device")
    return write(checkpoint, prefix, options)

  monkeypatch.setattr(tf.train.Checkpoint, "_write", write_until_full)
  with pytest.raises(checkpoints.CheckpointSaveError) as raised:
    training.train(model_dir)
  checkpoint_dir = os.path.join(model_dir, "checkpoints")
  assert [os.path.basename(p) for p in writes] == ["ckpt-1", "ckpt-2"]
  assert raised.value.summary == (
      f"No space left to save the checkpoint of step 2 in {checkpoint_dir}. "
      f"Last good checkpoint (untouched): {checkpoint_dir}/ckpt-1. Free space "
      "there and rerun the same command to resume from it.")
  assert tf.train.latest_checkpoint(checkpoint_dir).endswith("ckpt-1")
  assert lease.LEASE_FILE not in os.listdir(model_dir)  # Released.


@pytest.mark.slow
def test_background_saves_and_a_restart_after_a_transient_error(
    tmp_path, data_dir, monkeypatch):
  """Run A saves synchronously, uninterrupted. Run B saves in the background
  while training goes on, and its loop fails once with UnavailableError at
  step 3: it restarts on a new strategy from ckpt-2 and ends at step 6. Its
  checkpoints hold the values of their own steps: equal to A's."""
  settings = ("train.train_steps = 6", "train.checkpoint_every = 2")
  _parse(data_dir, *settings, "train.async_checkpoints = False")
  keras.utils.set_random_seed(0)  # The same initial weights in both runs.
  training.train(str(tmp_path / "a"))

  inner_loop = training._inner_loop  # pylint: disable=protected-access
  faults = []

  def lose_a_worker_once(trainer, *args):
    if trainer.step() == 3 and not faults:
      faults.append(trainer.step())
      raise tf.errors.UnavailableError(None, None, "Socket closed")
    return inner_loop(trainer, *args)

  strategies = []

  def make_strategy():
    strategies.append(tf.distribute.get_strategy())
    return strategies[-1]

  monkeypatch.setattr(training, "_inner_loop", lose_a_worker_once)
  _parse(data_dir, *settings, "train.async_checkpoints = True")
  keras.utils.set_random_seed(0)
  metrics = training.train(str(tmp_path / "b"), make_strategy=make_strategy)
  assert faults == [3]
  assert len(strategies) == 2  # The first, and one for the restart.
  assert checkpoints.checkpoint_step(
      tf.train.latest_checkpoint(str(tmp_path / "b" / "checkpoints"))) == 6
  assert "preempted_at_step" not in metrics
  dirs = [str(tmp_path / run / "checkpoints") for run in ("a", "b")]
  for directory in dirs:
    state = tf.train.get_checkpoint_state(directory)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "ckpt-2", "ckpt-4", "ckpt-6"]
  for step in (2, 4, 6):
    _assert_same(*(os.path.join(d, f"ckpt-{step}") for d in dirs))


def test_transient_errors_beyond_the_retries_are_raised(
    tmp_path, data_dir, monkeypatch):
  calls = []

  def always_unavailable(trainer, *args):
    del trainer, args
    calls.append(1)
    raise tf.errors.UnavailableError(None, None, "Socket closed")

  monkeypatch.setattr(training, "_inner_loop", always_unavailable)
  _parse(data_dir, "train.train_steps = 2",
         "train.transient_error_retries = 2")
  with pytest.raises(tf.errors.UnavailableError):
    training.train(str(tmp_path / "run"))
  assert len(calls) == 3  # The first attempt and two restarts.
  assert lease.LEASE_FILE not in os.listdir(str(tmp_path / "run"))
