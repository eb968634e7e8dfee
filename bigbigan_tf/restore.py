"""The inference model of a training run: EMA weights, standing statistics.

Evaluation and export both start here: the run's own config.gin is parsed,
the networks are built, the latest (or a given) checkpoint is restored, and
the EMA copies of G and E get batch-norm statistics recomputed on real data
and prior samples ("standing statistics"; EMA weights do not match the
moving statistics of the live weights).
"""

from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf

from bigbigan_tf import bindings
from bigbigan_tf import checkpoints
from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import model as model_lib
from bigbigan_tf import training


def restore_inference_model(model_dir: str,
                            checkpoint: Optional[str] = None,
                            standing_stats_batches: int = 10,
                            batch_size: int = 64) -> model_lib.BigBiGAN:
  """The BigBiGAN of `model_dir` with EMA G and E and standing BN statistics.

  Parses model_dir/config.gin (the config the run was trained with).

  Args:
    model_dir: a training run's directory.
    checkpoint: a checkpoint path; default the latest in model_dir.
    standing_stats_batches: batches of real data and prior samples used to
      recompute the EMA copies' BN statistics.
    batch_size: batch size of those batches.

  Raises:
    ValueError: model_dir has no config or no checkpoint.
  """
  return restore_trainer(model_dir, checkpoint, standing_stats_batches,
                         batch_size).ema_model()


def restore_trainer(model_dir: str,
                    checkpoint: Optional[str] = None,
                    standing_stats_batches: int = 10,
                    batch_size: int = 64) -> training.Trainer:
  """The Trainer of `model_dir` restored from its checkpoint: live networks,
  optimisers, and EMA copies with standing statistics (arguments as
  `restore_inference_model`)."""
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
