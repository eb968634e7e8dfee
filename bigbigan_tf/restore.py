"""The inference model of a training run: EMA weights, standing statistics.

Evaluation and export both start here: the run's own config.gin is parsed,
the networks are built, the latest (or a given) checkpoint is restored, and
the EMA copies of G and E get batch-norm statistics recomputed on real data
and prior samples ("standing statistics"; EMA weights do not match the
moving statistics of the live weights).

The standing passes run in training mode, so every batch norm after the
first sees inputs normalised by the batch's own moments: with small batches
the statistics depend on the batch size. `STANDING_BATCH_SIZE` is where
they stop moving on the MNIST reference runs (docs/evaluation.md, standing
statistics).
"""

from __future__ import annotations

import numbers
import os
from typing import Optional

import tensorflow as tf

from bigbigan_tf import bindings
from bigbigan_tf import checkpoints
from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import model as model_lib
from bigbigan_tf import training

# Images (and prior samples) per standing batch. With 64 the EMA encoder of a
# latent-regression run kept the class in 82-87% of reconstructions depending
# on the number of batches; with 128 or 256, 90-91% (docs/experiments.md, Q16).
STANDING_BATCH_SIZE = 256


def restore_inference_model(model_dir: str,
                            checkpoint: Optional[str] = None,
                            standing_stats_batches: int = 10,
                            batch_size: int = STANDING_BATCH_SIZE
                           ) -> model_lib.BigBiGAN:
  """The BigBiGAN of `model_dir` with EMA G and E and standing BN statistics.

  Parses model_dir/config.gin (the config the run was trained with).

  Args:
    model_dir: a training run's directory.
    checkpoint: a checkpoint path; default the latest in model_dir.
    standing_stats_batches: batches of real data and prior samples used to
      recompute the EMA copies' BN statistics.
    batch_size: batch size of those batches (the passes run on one device:
      for paper-size models on a host short of memory, a smaller one, at
      the cost above).

  Raises:
    ValueError: model_dir has no config or no checkpoint, or the batch counts
      are not positive integers.
  """
  return restore_trainer(model_dir, checkpoint, standing_stats_batches,
                         batch_size).ema_model()


def restore_trainer(model_dir: str,
                    checkpoint: Optional[str] = None,
                    standing_stats_batches: int = 10,
                    batch_size: int = STANDING_BATCH_SIZE
                   ) -> training.Trainer:
  """The Trainer of `model_dir` restored from its checkpoint: live networks,
  optimisers, and EMA copies with standing statistics (arguments as
  `restore_inference_model`)."""
  for name, value in (("standing_stats_batches", standing_stats_batches),
                      ("batch_size", batch_size)):
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
        or value < 1):
      raise ValueError(f"{name} must be a positive integer; got {value!r}.")
  config_path = os.path.join(model_dir, checkpoints.CONFIG_FILE)
  if not tf.io.gfile.exists(config_path):
    raise ValueError(f"{model_dir} is not a training directory: no "
                     f"{checkpoints.CONFIG_FILE} in it.")
  checkpoint = checkpoint or checkpoints.latest_checkpoint(model_dir)
  if not checkpoint:
    raise ValueError("No checkpoint in "
                     f"{os.path.join(model_dir, checkpoints.CHECKPOINT_DIR)}.")
  config.parse([config_path])
  strategy = tf.distribute.get_strategy()
  model = config.build_model()
  trainer = training.Trainer(model, strategy, batch_size)
  trainer.checkpoint().restore(checkpoint).expect_partial()
  split = bindings.bound_value("train.dataset_split", "train")
  iterator = iter(data.distributed_dataset(
      strategy, batch_size, split=split, resolution=model.encoder_resolution,
      training=True, seed=1))
  trainer.standing_statistics(iterator, standing_stats_batches)
  return trainer
