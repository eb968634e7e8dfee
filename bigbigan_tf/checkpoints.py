"""What a training run's model_dir holds, and how its checkpoints are found.

    model_dir/
      config.gin             the gin config the run was started with
      operative_config.gin   the bindings actually used (after the first loop)
      architecture.json      every variable's path and shape, by network
      checkpoints/ckpt-N     networks, optimisers, EMA copies, global step
                             (and the input pipeline's position)
      classes.json           with make_dataset.name = "image_dir": the
                             folder's class names in index order, images
                             per class, files skipped (data.image_dir)
      images/                PNG grids; eval/ and the top level: TensorBoard
      eval.json              the figures of the last evaluation
      eval/classes.json      the same for the folder(s) of the last
                             evaluation, when it was on an image folder

Networks are saved as flat {Keras variable path: variable} maps
(`variables_checkpoint`): Keras 3 layers kept in Python lists or dicts (our
architecture tables) are invisible to tf.train.Checkpoint's object graph.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import json
import os
from typing import Iterator, Mapping, Optional

from absl import logging

import keras
import tensorflow as tf

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.gin"
OPERATIVE_CONFIG_FILE = "operative_config.gin"
ARCHITECTURE_FILE = "architecture.json"
IMAGE_DIR = "images"
RESULTS_FILE = "eval.json"
EVAL_DIR = "eval"
CLASSES_FILE = "classes.json"


def _backing_variables(value):
  """`value` with each Keras variable replaced by the tf.Variable holding it
  (in lists and dicts too; other trackables unchanged)."""
  if isinstance(value, keras.Variable):
    inner = value.value
    if not isinstance(inner, tf.Variable):
      raise TypeError(f"{value.path}: expected a tf.Variable behind the Keras "
                      f"variable, got {type(inner).__name__}.")
    return inner
  if isinstance(value, (list, tuple)):
    return [_backing_variables(v) for v in value]
  if isinstance(value, Mapping):
    return {k: _backing_variables(v) for k, v in value.items()}
  return value


def variables_checkpoint(network: keras.Model) -> tf.train.Checkpoint:
  """A checkpoint of every weight of `network`, keyed by its Keras path.

  A checkpoint of another architecture then fails to restore with the names
  of the variables that do not match. It holds the tf.Variables behind the
  Keras variables, which TF's asynchronous save can copy (Keras 3's
  `Variable._copy_trackable_to_cpu` makes a new tf.Variable on every call,
  which fails inside the tf.function that copies).

  Raises:
    ValueError: two variables share a path.
  """
  by_path = {v.path: _backing_variables(v) for v in network.weights}
  if len(by_path) != len(network.weights):
    raise ValueError(f"{network.name}: variable paths are not unique.")
  return tf.train.Checkpoint(**by_path)


def optimizer_checkpoint(optimizer: keras.optimizers.Optimizer
                        ) -> tf.train.Checkpoint:
  """The optimizer's checkpoint entries (the same names and values as the
  optimizer saved as such) over the tf.Variables behind them, as in
  `variables_checkpoint`. The optimizer must be built."""
  return tf.train.Checkpoint(**{
      name: _backing_variables(child)
      for name, child in optimizer._trackable_children().items()})  # pylint: disable=protected-access


class CheckpointSaveError(RuntimeError):
  """A checkpoint could not be written for lack of space.

  Attributes:
    summary: the one-line message (gin adds the configurable's name to the
      exception's own text).
  """

  def __init__(self, summary: str):
    super().__init__(summary)
    self.summary = summary


def _is_out_of_space(error: BaseException) -> bool:
  if isinstance(error, tf.errors.ResourceExhaustedError):
    return True
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return True
  return "No space left" in str(error)


def save_options(asynchronous: bool) -> tf.train.CheckpointOptions:
  """CheckpointOptions that save in a background thread (or not).

  TF 2.21 names the option `enable_async`; earlier releases only
  `experimental_enable_async_checkpoint` (deprecated in 2.21).
  """
  parameters = inspect.signature(tf.train.CheckpointOptions).parameters
  name = ("enable_async" if "enable_async" in parameters
          else "experimental_enable_async_checkpoint")
  return tf.train.CheckpointOptions(**{name: asynchronous})


class CheckpointWriter:
  """Saves a run's checkpoints through its CheckpointManager.

  Asynchronous saves copy the variables to host memory and write them from a
  background thread while training goes on; the manager records a checkpoint
  as the latest only once its files are written. At most one save is in
  flight: `save` first waits for the previous one, and `wait` (called before
  the run ends) surfaces its failure. A failure for lack of space becomes
  CheckpointSaveError; the checkpoints already written are never touched.
  """

  def __init__(self, manager: tf.train.CheckpointManager,
               asynchronous: bool = True):
    self._manager = manager
    self._options = save_options(asynchronous)
    self._pending: Optional[tuple[str, int]] = None
    self._last_good = manager.latest_checkpoint

  @property
  def last_good(self) -> Optional[str]:
    """The newest checkpoint known to be complete on disk."""
    return self._last_good

  def save(self, step: int) -> str:
    """Starts (or, synchronous, makes) the save of `step`; returns its path.

    Raises:
      CheckpointSaveError: this save or the previous one ran out of space.
    """
    self.wait()
    with self._space_errors(step):
      path = self._manager.save(checkpoint_number=step, options=self._options)
    self._pending = (path, step)
    return path

  def wait(self) -> Optional[str]:
    """Waits for the save in flight; returns the newest complete checkpoint.

    Raises:
      CheckpointSaveError: the save ran out of space.
      RuntimeError: it did not write its files, for another reason.
    """
    if self._pending is None:
      return self._last_good
    path, step = self._pending
    self._pending = None
    with self._space_errors(step):
      self._manager.sync()
      _raise_background_error(self._manager.checkpoint)
    if not tf.io.gfile.exists(path + ".index"):
      raise RuntimeError(f"The checkpoint of step {step} was not written "
                         f"({path}.index is missing).")
    self._last_good = path
    return path

  def close(self) -> None:
    """Waits for a save in flight on the way out of a failed run: logs its
    failure instead of raising over the run's own error."""
    try:
      self.wait()
    except (CheckpointSaveError, RuntimeError, tf.errors.OpError) as error:
      logging.error("The last checkpoint save failed: %s", error)

  @contextlib.contextmanager
  def _space_errors(self, step: int) -> Iterator[None]:
    try:
      yield
    except (tf.errors.OpError, OSError) as error:
      if not _is_out_of_space(error):
        raise
      raise CheckpointSaveError(
          f"No space left to save the checkpoint of step {step} in "
          f"{self._manager.directory}. Last good checkpoint (untouched): "
          f"{self._last_good or 'none'}. Free space there and rerun the "
          "same command to resume from it.") from None


def _raise_background_error(checkpoint: tf.train.Checkpoint) -> None:
  """Raises the error of the checkpoint's background save, if it had one.

  tf.train.Checkpoint.sync() waits without raising it; the helper that ran
  the save keeps it (TF 2.20 and 2.21 alike) until the next save.
  """
  helper = getattr(checkpoint, "_async_checkpointer_impl", None)
  error = getattr(helper, "_async_error", None)
  if error is not None:
    helper._async_error = None  # pylint: disable=protected-access
    raise error


def latest_checkpoint(model_dir: str) -> Optional[str]:
  """The newest checkpoint of a run, or None."""
  return tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))


def checkpoint_step(path: str) -> int:
  """The global step a checkpoint was saved at (its number, ckpt-N)."""
  return int(path.rsplit("-", 1)[-1])


def architecture(networks: Mapping[str, keras.Model]) -> dict:
  """Every variable's path and shape, by network role."""
  return {role: [[v.path, list(v.shape)] for v in net.weights]
          for role, net in networks.items()}


def check_architecture(model_dir: str,
                       networks: Mapping[str, keras.Model]) -> None:
  """Records the architecture in a new model_dir; refuses one of another.

  Raises:
    ValueError: model_dir holds a run of a different architecture (the
      message names the first variables that differ).
  """
  path = os.path.join(model_dir, ARCHITECTURE_FILE)
  current = architecture(networks)
  if not tf.io.gfile.exists(path):
    tf.io.gfile.makedirs(model_dir)
    with tf.io.gfile.GFile(path, "w") as f:
      json.dump(current, f)
    return
  with tf.io.gfile.GFile(path) as f:
    saved = json.load(f)
  if saved == current:
    return
  diffs = []
  for role in sorted(set(saved) | set(current)):
    old = {p: s for p, s in saved.get(role, [])}
    new = {p: s for p, s in current.get(role, [])}
    for p in sorted(set(old) | set(new)):
      if old.get(p) != new.get(p):
        diffs.append(f"{p}: checkpoint {old.get(p)}, config {new.get(p)}")
  raise ValueError(
      f"model_dir {model_dir} holds a checkpoint of a different "
      f"architecture than the current gin config ({len(diffs)} variables "
      f"differ, e.g. {'; '.join(diffs[:3])}). Use a new model_dir or the "
      f"config it was trained with ({os.path.join(model_dir, CONFIG_FILE)}).")


def write_json(path: str, values: dict) -> None:
  """Writes `values` as sorted, indented JSON (local paths or gs://)."""
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(values, f, indent=2, sort_keys=True)
