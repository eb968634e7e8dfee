"""Evaluating a training run in place: its EMA model, figures into model_dir.

`evaluate_model_dir` restores the run's inference model
(`restore.restore_inference_model`: EMA weights, standing statistics),
measures it with the gin-bound `evaluation` settings
(`evaluator.evaluate_model`) and writes the figures to model_dir/eval.json
and to TensorBoard under model_dir/eval, at the checkpoint's step; an
evaluation on image folders also writes their class index to
model_dir/eval/classes.json.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from absl import logging
import tensorflow as tf

from bigbigan_tf import checkpoints
from bigbigan_tf import config
from bigbigan_tf import distribute
from bigbigan_tf import restore
from bigbigan_tf.evaluation import evaluator


def evaluate_model_dir(model_dir: str,
                       checkpoint: Optional[str] = None,
                       gin_files: Sequence[str] = (),
                       gin_bindings: Sequence[str] = ()) -> dict[str, float]:
  """Evaluates the EMA model of a training run; writes eval.json there.

  The run's config.gin is parsed first, then `gin_files` and `gin_bindings`
  (evaluation settings such as the feature extractor).

  Args:
    model_dir: a training run's directory.
    checkpoint: a checkpoint path; default the latest in model_dir.
    gin_files, gin_bindings: evaluation settings on top of the run's config.

  Returns:
    The figures (also written to model_dir/eval.json; with
    evaluation.dataset = "image_dir" the folders' classes go to
    model_dir/eval/classes.json).

  Raises:
    ValueError: model_dir has no config or no checkpoint.
  """
  checkpoint = checkpoint or checkpoints.latest_checkpoint(model_dir)
  model = restore.restore_inference_model(model_dir, checkpoint)
  if gin_files or gin_bindings:
    config.parse(gin_files, gin_bindings, clear=False)
  class_index_path = os.path.join(model_dir, checkpoints.EVAL_DIR,
                                  checkpoints.CLASSES_FILE)
  if tf.io.gfile.exists(class_index_path):  # Of an earlier evaluation.
    tf.io.gfile.remove(class_index_path)
  results = evaluator.evaluate_model(model, class_index_path=class_index_path)
  checkpoints.write_json(os.path.join(model_dir, checkpoints.RESULTS_FILE),
                         results)
  writer = tf.summary.create_file_writer(
      os.path.join(model_dir, checkpoints.EVAL_DIR))
  with writer.as_default(step=checkpoints.checkpoint_step(checkpoint)):
    for key, value in results.items():
      tf.summary.scalar(f"eval/{key}", value)
  writer.flush()
  return results


def evaluate_after_training(strategy: tf.distribute.Strategy,
                            model_dir: str):
  """The gin-bound evaluation of a finished run (model_dir.eval.json).

  Not on a TPU: the evaluation runs its networks and probes on the host, so
  there it would keep a TPU VM busy on its CPU for hours. It is skipped with
  the command that runs it (anywhere the model_dir is readable).

  Returns:
    The figures, or None where skipped.
  """
  if distribute.is_tpu(strategy):
    logging.warning(
        "Training ran on a TPU: skipping the evaluation on this host. Run it "
        "with: bigbigan-evaluate --model_dir=%s", model_dir)
    return None
  return evaluate_model_dir(model_dir)
