"""Tests of the dry run (`bigbigan-train --dry_run`)."""

import os

import numpy as np
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import dry_run
from bigbigan_tf import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dry_run_of_table1_base_at_reduced_width_reports_its_sizes(tmp_path):
  bindings = ["RESOLUTION = 32", "ENCODER_RESOLUTION = 32",
              "generator.ch = 8", "generator.embedding_dim = 8",
              "generator.attention_resolutions = (16,)",
              "discriminator.ch = 8", "discriminator.attention_resolutions = (16,)",
              "discriminator.mlp_width = 32", "discriminator.mlp_blocks = 1",
              "encoder.base_channels = 4", "encoder.mlp_width = 32",
              "encoder.mlp_blocks = 1", "encoder.units_per_stage = (1, 1, 1, 1)"]
  config.parse(["table1/base.gin"], bindings)
  strategy = tf.distribute.get_strategy()
  report = dry_run.dry_run(str(tmp_path), strategy, per_replica_batch=2)

  # The same configuration built again gives the counts the report states.
  config.parse(["table1/base.gin"], bindings)
  with strategy.scope():
    model = config.build_model()
    trainer = training.Trainer(model, strategy, 2)
  expected = {role: int(sum(np.prod(v.shape) for v in net.trainable_variables))
              for role, net in model.networks().items()}
  assert report["parameters"] == expected
  every = ([w for n in model.networks().values() for w in n.weights]
           + [w for c in trainer.ema.values() for w in c.weights]
           + [v for o in trainer.optimizers.values() for v in o.variables])
  assert report["variables_bytes_per_replica"] == sum(
      int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in every)
  # table1/base.gin's batch: 2048 on one replica here.
  assert report["configured_global_batch"] == 2048
  assert report["configured_per_replica_batch"] == 2048
  assert report["step"] == 1
  # The checkpoint restores into the fresh trainer: the step it holds.
  trainer.checkpoint().read(report["checkpoint"]).expect_partial()
  assert trainer.step() == 1
  text = dry_run.format_report(report)
  total = sum(expected.values())
  assert f"(total {total:,})" in text
  assert "2048 global, 2048 per replica" in text
