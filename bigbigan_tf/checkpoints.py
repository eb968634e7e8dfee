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

import json
import os
from typing import Mapping, Optional

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


def variables_checkpoint(network: keras.Model) -> tf.train.Checkpoint:
  """A checkpoint of every weight of `network`, keyed by its Keras path.

  A checkpoint of another architecture then fails to restore with the names
  of the variables that do not match.

  Raises:
    ValueError: two variables share a path.
  """
  by_path = {v.path: v for v in network.weights}
  if len(by_path) != len(network.weights):
    raise ValueError(f"{network.name}: variable paths are not unique.")
  return tf.train.Checkpoint(**by_path)


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
