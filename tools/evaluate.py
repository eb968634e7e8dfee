r"""Evaluates a trained BigBiGAN: a training run's checkpoint or a Hub module.

  bigbigan-evaluate --model_dir=/tmp/bigbigan_quickstart
  bigbigan-evaluate --hub_module=/tmp/export/bigbigan \
      --gin_file=quickstart_mnist.gin --output_json=/tmp/hub_eval.json

Figures: linear probe (AvePool, BN+CReLU; top-1/top-5), kNN top-1,
reconstruction score, the random-encoder baseline, and FID/IS/KID when a
feature extractor is bound (e.g. --gin_bindings="evaluation.
sample_feature_extractor=@inception_extractor()" with
--gin_bindings="inception_extractor.handle='/path/to/tfgan_inception'").
Writes a JSON of all figures and TensorBoard summaries (for --model_dir).

Labelled folders of your own images (class folders ROOT/<class>/<images>),
e.g. an encoder trained on one dataset measured on another:
  bigbigan-evaluate --model_dir=/tmp/run \
      --gin_bindings='evaluation.dataset = "image_dir"' \
      --gin_bindings='evaluation.image_dir = "/data/labelled"' \
      --gin_bindings='evaluation.validation_fraction = 0.2'
(or evaluation.train_image_dir and evaluation.test_image_dir). The class
index goes to model_dir/eval/classes.json, or for --hub_module to
classes.json beside --output_json.

Large datasets (ImageNet): --feature_dir=/local/disk/features (the same as
--gin_bindings="evaluation.feature_dir='/local/disk/features'") streams the
evaluation splits batch by batch and keeps E's features on that local disk
instead of in memory (10 GB for ResNet-50 AvePool features of ImageNet's
training split), e.g.
  bigbigan-evaluate --model_dir=gs://BUCKET/bigbigan/table2/resnet50 \
      --feature_dir=/mnt/disks/eval/features
"""


import os

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import config
  from bigbigan_tf import checkpoints
  from bigbigan_tf import export
  from bigbigan_tf.evaluation import evaluator
  from bigbigan_tf.evaluation import model_dir as model_dir_eval
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A training run's directory.")
flags.DEFINE_string("checkpoint", None, "Checkpoint path (default: latest).")
flags.DEFINE_string("hub_module", None,
                    "Path or handle of an exported bigbigan SavedModel.")
flags.DEFINE_multi_string("gin_file", [], "gin files (evaluation settings; "
                          "with --model_dir, applied after the run's config).")
flags.DEFINE_multi_string("gin_bindings", [], "gin bindings.")
flags.DEFINE_string("feature_dir", None,
                    "Local directory for streamed evaluation (features on "
                    "disk, see bigbigan_tf/evaluation/evaluator.py); default in memory.")
flags.DEFINE_string("output_json", None,
                    "Also write the figures here (with --model_dir they are always in "
                    "model_dir/eval.json); local path or gs://. With --hub_module "
                    "and image folders, their class index goes to classes.json "
                    "in the same directory.")


def main(argv):
  del argv
  log_progress()
  if (FLAGS.model_dir is None) == (FLAGS.hub_module is None):
    raise app.UsageError("Give exactly one of --model_dir and --hub_module.")
  gin_bindings = list(FLAGS.gin_bindings)
  if FLAGS.feature_dir:
    gin_bindings.append(f"evaluation.feature_dir = {FLAGS.feature_dir!r}")
  if FLAGS.model_dir:
    results = model_dir_eval.evaluate_model_dir(
        FLAGS.model_dir, FLAGS.checkpoint, FLAGS.gin_file, gin_bindings)
  else:
    try:
      config.parse(FLAGS.gin_file, gin_bindings)
    except ValueError as error:
      raise app.UsageError(str(error)) from error
    class_index_path = None
    if FLAGS.output_json:
      class_index_path = os.path.join(os.path.dirname(FLAGS.output_json),
                                      checkpoints.CLASSES_FILE)
    results = evaluator.evaluate_model(
        export.ExportedBigBiGAN(FLAGS.hub_module),
        class_index_path=class_index_path)
  # With --model_dir the figures are already in model_dir/eval.json.
  if FLAGS.output_json:
    checkpoints.write_json(FLAGS.output_json, results)
  print(evaluator.format_results(results))


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
