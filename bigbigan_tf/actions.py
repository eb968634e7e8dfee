"""Host actions of the training loop: what runs between two inner loops.

The compiled inner loop (bigbigan_tf.training.Trainer.train_loop) holds the
input and the replicated step; everything else the trainer does on the host
is a small action here, run by `training.train` between loops (after orbit's
actions): summaries, image grids, the live evaluation, progress, SIGTERM.
Each touches the networks only through compiled calls of the trainer, so on
a TPU an action costs a fixed number of programs, whatever the model's size.
(`trainer` below is a bigbigan_tf.training.Trainer, which imports this module.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Iterator

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from bigbigan_tf import bindings
from bigbigan_tf import checkpoints
from bigbigan_tf import data
from bigbigan_tf import distribute
from bigbigan_tf import model as model_lib
from bigbigan_tf.evaluation import evaluator
from bigbigan_tf.evaluation import images as image_lib
from bigbigan_tf.networks import common


@contextlib.contextmanager
def sigterm_flag() -> Iterator[list]:
  """A list that gets an entry when SIGTERM arrives (a preempted TPU VM)."""
  received = []
  try:
    previous = signal.signal(
        signal.SIGTERM, lambda signum, frame: received.append(signum))
  except ValueError:  # Not the main thread: no preemption handling.
    previous = None
  try:
    yield received
  finally:
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


class Progress:
  """Steps per second since the start, images per second of the last loop,
  and the ETA, for the log line after every inner loop."""

  def __init__(self, trainer, train_steps: int):
    self._trainer = trainer
    self._train_steps = train_steps
    self._start_step = trainer.step()
    self._start_time = time.time()

  def report(self, metrics: dict, num_steps: int, seconds: float) -> float:
    """Logs one line; returns the loop's images per second."""
    trainer = self._trainer
    step = trainer.step()
    images_per_second = (num_steps * trainer.global_batch_size
                         * (trainer.d_steps + 1) / seconds)
    rate = (step - self._start_step) / (time.time() - self._start_time)
    eta = (self._train_steps - step) / max(rate, 1e-9)
    logging.info("step %d/%d | %.1f steps/s | %.0f img/s | loss_d %.3f | "
                 "loss_eg %.3f | ETA %s", step, self._train_steps, rate,
                 images_per_second, metrics["loss/d"], metrics["loss/eg"],
                 time.strftime("%H:%M:%S", time.gmtime(eta)))
    return images_per_second


def gradient_shares(metrics: dict[str, float]) -> dict[str, float]:
  """The share of E's latent gradient that comes from s_xz rather than s_z:
  |dL/dz_hat from s_xz| / (|... from s_xz| + |... from s_z|), from the
  per-example squared norms a step reports (0.5 when both are equal; near 0
  when the joint term gives E almost no signal)."""
  xz = metrics.get(f"grad_sq/z_hat_{common.SCORE_XZ}")
  z = metrics.get(f"grad_sq/z_hat_{common.SCORE_Z}")
  if xz is None or z is None:
    return {}
  total = np.sqrt(xz) + np.sqrt(z)
  return {"grad_share/z_hat_from_score_xz":
              float(np.sqrt(xz) / total) if total > 0 else 0.5}


def write_class_index(model_dir: str, split: str) -> None:
  """model_dir/classes.json for a run on an image folder: its classes in
  index order, images per class, files skipped (data.image_dir)."""
  if bindings.bound_value("make_dataset.name") != data.IMAGE_DIR:
    return
  image_dir = bindings.bound_value("make_dataset.image_dir")
  if image_dir is None:  # make_dataset names what is missing.
    return
  checkpoints.write_json(
      os.path.join(model_dir, checkpoints.CLASSES_FILE),
      data.folder_record(
          image_dir, split,
          bindings.bound_value("make_dataset.validation_fraction"),
          what="make_dataset.image_dir"))


def fixed_inputs(model: model_lib.BigBiGAN, seed: int, split: str) -> dict:
  """Fixed z and real images for the image grids."""
  z = model.prior.sample(64, seed=tf.constant([seed, 987654321], tf.int64))
  batch = next(iter(data.make_dataset(
      split=split, resolution=model.encoder_resolution, batch_size=16,
      training=False)))
  return {"z": z, "x": data.to_model_range(batch[data.IMAGE])}


def write_scalars(writer, trainer, metrics: dict,
                  step: int) -> None:
  with writer.as_default(step=step):
    for key, value in metrics.items():
      tf.summary.scalar(key, value)
    for role, rate in trainer.current_learning_rates().items():
      tf.summary.scalar(f"learning_rate/{role}", rate)


def write_operative_config(writer, model_dir: str, step: int) -> None:
  text = gin.operative_config_str()
  with tf.io.gfile.GFile(
      os.path.join(model_dir, checkpoints.OPERATIVE_CONFIG_FILE), "w") as f:
    f.write(text)
  with writer.as_default(step=step):
    tf.summary.text("operative_config", text)


def evaluate_live(writer, trainer, step: int) -> None:
  """The gin-bound evaluation of the live networks, as summaries. Not on a
  TPU: the evaluation runs its networks on the host (logged, skipped)."""
  if distribute.is_tpu(trainer.strategy):
    logging.info("step %d: skipping the live evaluation (train.eval_every) on "
                 "a TPU; evaluate checkpoints with bigbigan-evaluate.", step)
    return
  results = evaluator.evaluate_model(trainer.model,
                                     random_encoder_baseline=False)
  with writer.as_default(step=step):
    for key, value in results.items():
      tf.summary.scalar(f"eval/{key}", value)
  logging.info("step %d evaluation: %s", step, results)


def _is_grayscale(images: np.ndarray) -> bool:
  """Whether a batch of RGB images has three equal channels."""
  return bool(np.all(images[..., :1] == images[..., 1:]))


def write_images(writer, trainer, fixed: dict,
                 model_dir: str, step: int) -> None:
  """Samples, reconstructions and E's first-layer filters (EMA weights),
  magnified so that a cell is at least 128 pixels wide. The networks run in
  one compiled call (Trainer.image_arrays)."""
  ema = trainer.ema_model()
  zoom = image_lib.display_zoom(ema.resolution)
  arrays = trainer.image_arrays(fixed["z"], fixed["x"])
  grids = {"samples": image_lib.image_grid(arrays["samples"], zoom=zoom)}
  if ema.encoder is not None:
    grids["reconstructions"] = image_lib.reconstruction_grid(
        arrays["real"], arrays["reconstructions"], zoom=zoom)
    kernel = ema.encoder.stem_conv.kernel.numpy()
    grids["encoder_filters"] = image_lib.conv_filter_grid(
        kernel, grayscale=_is_grayscale(np.asarray(fixed["x"])))
  image_dir = os.path.join(model_dir, checkpoints.IMAGE_DIR)
  tf.io.gfile.makedirs(image_dir)
  with writer.as_default(step=step):
    for name, grid in grids.items():
      tf.summary.image(name, grid[None])
      image_lib.write_png(os.path.join(image_dir, f"{name}_{step:08d}.png"),
                          grid)

