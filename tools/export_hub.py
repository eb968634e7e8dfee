r"""Exports a BigBiGAN as SavedModels for TF-Hub, Keras 3 and tf_keras.

From a training run (EMA weights, standing BN statistics, latest checkpoint
unless --checkpoint names one):

  bigbigan-export --model_dir=/tmp/quickstart \
      --export_dir=/tmp/quickstart_export

From fresh weights of a config (to inspect the interface, and for tests):

  bigbigan-export --gin_file=paper_resnet50.gin \
      --export_dir=/tmp/bigbigan_paper

Writes <export_dir>/bigbigan (signatures generate, encode, discriminate,
reconstruct, serving_default), <export_dir>/encoder and <export_dir>/generator
(TF-Hub Reusable SavedModels); see bigbigan_tf/export.py. Refuses an existing
--export_dir unless --overwrite.

Framework-neutral weights of a run (G, E and D, live and EMA, as named
tensors; layout in docs/export.md):

  bigbigan-export --model_dir=/tmp/quickstart --export_dir=/tmp/weights \
      --weights_format=safetensors

writes <export_dir>/weights.safetensors and weights.safetensors.json.
"""

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import export
  from bigbigan_tf import restore
  from bigbigan_tf import weights
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None,
                    "Training directory to export from (its own config).")
flags.DEFINE_string("checkpoint", None,
                    "Checkpoint path of --model_dir's run; default the latest.")
flags.DEFINE_multi_string("gin_file", [],
                          "Without --model_dir: config of a fresh model.")
flags.DEFINE_multi_string("gin_bindings", [],
                          "Without --model_dir: bindings (win over files).")
flags.DEFINE_string("export_dir", None, "Destination directory.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.")
flags.DEFINE_enum("weights_format", "saved_model",
                  ["saved_model", "safetensors"],
                  "saved_model: the TF-Hub modules; safetensors: a run's "
                  "weights as named tensors (needs --model_dir).")
flags.mark_flag_as_required("export_dir")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  log_progress()
  if FLAGS.weights_format == "safetensors":
    _export_weights()
    return
  try:
    export.check_destination(FLAGS.export_dir, FLAGS.overwrite)
    model = export.model_to_export(FLAGS.model_dir, FLAGS.checkpoint,
                                   FLAGS.gin_file, FLAGS.gin_bindings)
  except (ValueError, FileExistsError) as error:
    raise app.UsageError(str(error)) from error
  paths = export.export_modules(model, FLAGS.export_dir,
                                overwrite=FLAGS.overwrite)
  for part, path in paths.items():
    print(f"{part}: {path}")


def _export_weights():
  if not FLAGS.model_dir or FLAGS.gin_file or FLAGS.gin_bindings:
    raise app.UsageError("--weights_format=safetensors exports a training "
                         "run: give --model_dir (and no --gin_file or "
                         "--gin_bindings).")
  try:
    export.check_destination(FLAGS.export_dir, FLAGS.overwrite)
  except FileExistsError as error:
    raise app.UsageError(str(error)) from error
  trainer = restore.restore_trainer(FLAGS.model_dir, FLAGS.checkpoint)
  path = f"{FLAGS.export_dir.rstrip('/')}/weights.safetensors"
  layout = weights.save(weights.trainer_variables(trainer), path)
  print(f"weights: {path}\nlayout: {layout}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
