r"""Plots a training run's learning curves from its TensorBoard events.

  bigbigan-curves --model_dir=/tmp/bigbigan_reference \
      --output=/tmp/bigbigan_reference/curves.png

Four panels against the training step: the BN+CReLU linear probe of the
trained encoder and of the random encoder (evaluations during training,
train.eval_every), how often reconstructions keep the class, the inversion
error, and the fraction of examples whose hinge is still active per loss
term and pair type. --scalars_json also writes every scalar the run logged.
"""

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import checkpoints
  from bigbigan_tf.evaluation import curves
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's directory.")
flags.DEFINE_string("output", None, "The PNG to write (default: "
                    "model_dir/learning_curves.png).")
flags.DEFINE_string("title", None, "Figure title (default: model_dir).")
flags.DEFINE_string("scalars_json", None,
                    "Also write {tag: [[step, value], ...]} here.")
flags.mark_flag_as_required("model_dir")


def main(argv):
  del argv
  log_progress()
  try:
    scalars = curves.read_scalars(FLAGS.model_dir)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  output = FLAGS.output or f"{FLAGS.model_dir.rstrip('/')}/learning_curves.png"
  plotted = curves.plot_learning_curves(
      scalars, output, title=FLAGS.title or FLAGS.model_dir)
  if FLAGS.scalars_json:
    checkpoints.write_json(FLAGS.scalars_json, {
        tag: [[int(s), float(v)] for s, v in zip(*scalars[tag])]
        for tag in sorted(scalars)})
  print(f"{len(plotted)} curves: {output}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
