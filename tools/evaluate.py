r"""Evaluates a trained BigBiGAN: a training run's checkpoint or a Hub module.

  python tools/evaluate.py --model_dir=/tmp/bigbigan_quickstart
  python tools/evaluate.py --hub_module=/tmp/export/bigbigan \
      --gin_file=gin/quickstart_mnist.gin --output_json=/tmp/hub_eval.json

Figures: linear probe (AvePool, BN+CReLU; top-1/top-5), kNN top-1,
reconstruction score, the random-encoder baseline, and FID/IS/KID when a
feature extractor is bound (e.g. --gin_bindings="evaluation.
sample_feature_extractor=@inception_extractor()" with
--gin_bindings="inception_extractor.handle='/path/to/tfgan_inception'").
Writes a JSON of all figures and TensorBoard summaries (for --model_dir).

Large datasets (ImageNet): --feature_dir=/local/disk/features (the same as
--gin_bindings="evaluation.feature_dir='/local/disk/features'") streams the
evaluation splits batch by batch and keeps E's features on that local disk
instead of in memory (10 GB for ResNet-50 AvePool features of ImageNet's
training split), e.g.
  python tools/evaluate.py --model_dir=gs://BUCKET/bigbigan/table2/resnet50 \
      --feature_dir=/mnt/disks/eval/features
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bigbigan_tf import config  # pylint: disable=g-import-not-at-top
from bigbigan_tf import evaluate

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
                    "disk, see bigbigan_tf/evaluate.py); default in memory.")
flags.DEFINE_string("output_json", None,
                    "Where to write the figures (default: model_dir/eval.json).")


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  if (FLAGS.model_dir is None) == (FLAGS.hub_module is None):
    raise app.UsageError("Give exactly one of --model_dir and --hub_module.")
  gin_bindings = list(FLAGS.gin_bindings)
  if FLAGS.feature_dir:
    gin_bindings.append(f"evaluation.feature_dir = {FLAGS.feature_dir!r}")
  if FLAGS.model_dir:
    results = evaluate.evaluate_model_dir(
        FLAGS.model_dir, FLAGS.checkpoint, FLAGS.gin_file, gin_bindings)
  else:
    config.parse(FLAGS.gin_file, gin_bindings)
    results = evaluate.evaluate_model(
        evaluate.ExportedBigBiGAN(FLAGS.hub_module))
  output = FLAGS.output_json or (
      os.path.join(FLAGS.model_dir, evaluate.RESULTS_FILE)
      if FLAGS.model_dir else None)
  if output:
    with open(output, "w") as f:
      json.dump(results, f, indent=2, sort_keys=True)
  print(evaluate.format_results(results))


if __name__ == "__main__":
  app.run(main)
