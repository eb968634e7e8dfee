r"""Trains BigBiGAN: parses flags and gin, picks the strategy, calls the loop.

  bigbigan-train --model_dir=/tmp/quickstart --gin_file=quickstart_mnist.gin

(or `python -m bigbigan_tf.tools.train`, or `python tools/train.py` in a
checkout). --gin_file takes a path or the name of a shipped config.

On a Cloud TPU VM: add --tpu=local (or the TPU's name). Rerunning the same
command resumes from the latest checkpoint in --model_dir.
"""

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import checkpoints
  from bigbigan_tf import config
  from bigbigan_tf import distribute
  from bigbigan_tf import dry_run
  from bigbigan_tf import lease
  from bigbigan_tf.evaluation import evaluator
  from bigbigan_tf.evaluation import model_dir as model_dir_eval
  from bigbigan_tf import training
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Checkpoints, summaries, images.")
flags.DEFINE_multi_string("gin_file", [], "gin config files.")
flags.DEFINE_multi_string("gin_bindings", [], "gin bindings (win over files).")
flags.DEFINE_enum("strategy", distribute.DEFAULT, distribute.STRATEGIES,
                  "Distribution strategy (--tpu implies tpu).")
flags.DEFINE_string("tpu", None, "TPU name/address ('local' on a TPU VM).")
flags.DEFINE_bool("force", False,
                  "Take over the model_dir's lease if the trainer that held "
                  "it stopped without releasing it (a live one is refused).")
flags.DEFINE_bool("dry_run", False,
                  "Build the configured model at full size on the strategy, "
                  "run one compiled step on synthetic images at "
                  "--dry_run_batch per replica, write one checkpoint under "
                  "MODEL_DIR/dry_run, print sizes, and stop.")
flags.DEFINE_integer("dry_run_batch", 2, "Images per replica of --dry_run.")
flags.DEFINE_bool("evaluate", True,
                  "Run the gin-bound evaluation after training and print it.")
flags.mark_flag_as_required("model_dir")


def main(argv):
  del argv
  log_progress()
  try:
    config.parse(FLAGS.gin_file, FLAGS.gin_bindings)
  except ValueError as error:  # A missing file or a typo: say which.
    raise app.UsageError(str(error)) from error
  make_strategy = lambda: distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
  strategy = make_strategy()
  if FLAGS.dry_run:
    print(dry_run.format_report(dry_run.dry_run(
        FLAGS.model_dir, strategy, FLAGS.dry_run_batch)))
    return
  try:
    # After a pod's transient error, a TPU is connected and initialised
    # again (its variables are lost); other strategies are reused (a
    # process holds one MultiWorkerMirroredStrategy).
    metrics = training.train(
        FLAGS.model_dir, strategy,
        make_strategy=make_strategy if distribute.is_tpu(strategy) else None,
        take_over_stale_lease=FLAGS.force)
  except lease.LeaseHeldError as error:
    raise app.UsageError(str(error)) from error
  except checkpoints.CheckpointSaveError as error:
    raise SystemExit(f"bigbigan-train: {error.summary}") from None
  if "preempted_at_step" in metrics:
    print(f"Preempted at step {int(metrics['preempted_at_step'])}: "
          "checkpoint saved. Rerun the same command to resume; evaluate with "
          f"bigbigan-evaluate --model_dir={FLAGS.model_dir}")
    return
  if FLAGS.evaluate:
    results = model_dir_eval.evaluate_after_training(
        strategy, FLAGS.model_dir)
    if results is not None:
      print(evaluator.format_results(results) if results else
            "Nothing to evaluate: no encoder and no sample feature extractor "
            "bound (evaluation.sample_feature_extractor).")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
