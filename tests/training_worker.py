"""Subprocess entry points for tests/test_training.py.

  python tests/training_worker.py multi_worker OUT.npz      (TF_CONFIG set)
  python tests/training_worker.py train MODEL_DIR DATA_DIR STEPS [bindings...]

`multi_worker` trains the smoke model a few steps under
MultiWorkerMirroredStrategy on synthetic data and saves its weights;
`train` runs training.train() on mnist5k with op determinism on.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

# Graph optimisation costs more than these tiny steps gain from it.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

from bigbigan_tf import config
from bigbigan_tf import training

SMOKE_GIN = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "gin", "smoke.gin")


def synthetic_dataset(global_batch, input_context=None, seed=0):
  """Deterministic images in [-1, 1]; each pipeline reads its own shard."""
  images = tf.random.stateless_uniform([64, 32, 32, 3], [seed, 7], -1.0, 1.0)
  dataset = tf.data.Dataset.from_tensor_slices({"image": images})
  batch = global_batch
  if input_context is not None:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
    batch = input_context.get_per_replica_batch_size(global_batch)
  return dataset.repeat().batch(batch, drop_remainder=True)


def all_weights(trainer):
  weights = {}
  for role, net in list(trainer.model.networks().items()) + [
      (f"ema_{r}", n) for r, n in trainer.ema.items()]:
    for v in net.weights:
      weights[f"{role}/{v.path}"] = v.numpy()
  return weights


# One D step per step: what is checked does not depend on the number, and
# each costs a traced update. A deterministic encoder: the workers' shards
# pair images with other latents' slices than one device does (the batch's
# set of images is the same), and only E's noise would depend on that.
MULTI_WORKER_BINDINGS = ["trainer.d_steps = 1",
                         "trainer.gradient_diagnostics = False",
                         "encoder.latent_mode = 'deterministic'"]
# Prefix of the initial weights in the saved file.
INITIAL = "__initial__/"


def multi_worker(out_path, steps=3, global_batch=8):
  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  config.parse([SMOKE_GIN], MULTI_WORKER_BINDINGS)
  with strategy.scope():
    model = config.build_model()
    trainer = training.Trainer(model, strategy, global_batch)
  initial = all_weights(trainer)
  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: synthetic_dataset(global_batch, ctx))
  iterator = iter(dataset)
  metrics = trainer.train_loop(iterator, tf.constant(steps))
  weights = all_weights(trainer)
  weights.update({f"{INITIAL}{k}": v for k, v in initial.items()})
  weights["__loss_d"] = np.array(float(metrics["loss/d"]))
  weights["__step"] = np.array(trainer.step())
  np.savez(out_path, **weights)


def train(model_dir, data_dir, steps, *bindings):
  logging.set_verbosity(logging.INFO)
  tf.keras.utils.set_random_seed(0)
  tf.config.experimental.enable_op_determinism()
  config.parse([SMOKE_GIN], [
      "make_dataset.name = 'mnist5k'", f"make_dataset.data_dir = '{data_dir}'",
      f"train.train_steps = {steps}", "train.batch_size = 8",
      "train.steps_per_loop = 1", "train.checkpoint_every = 1",
      "train.image_every = 1000", "train.standing_stats_batches = 1",
      "make_dataset.shuffle_buffer_size = 100", "trainer.d_steps = 1",
      # Tested where they are made (test_small_data.py); a smaller step here.
      "trainer.gradient_diagnostics = False"]
      + list(bindings))
  training.train(model_dir)
  print("TRAINING DONE", flush=True)


if __name__ == "__main__":
  if sys.argv[1] == "multi_worker":
    multi_worker(sys.argv[2])
  else:
    train(sys.argv[2], sys.argv[3], int(sys.argv[4]), *sys.argv[5:])
