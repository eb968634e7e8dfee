r"""Trains BigBiGAN: parses flags and gin, picks the strategy, calls the loop.

  python tools/train.py --model_dir=/tmp/quickstart \
      --gin_file=gin/quickstart_mnist.gin

On a Cloud TPU VM: add --tpu=local (or the TPU's name). Rerunning the same
command resumes from the latest checkpoint in --model_dir.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bigbigan_tf import config  # pylint: disable=g-import-not-at-top
from bigbigan_tf import distribute
from bigbigan_tf import evaluate
from bigbigan_tf import training

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Checkpoints, summaries, images.")
flags.DEFINE_multi_string("gin_file", [], "gin config files.")
flags.DEFINE_multi_string("gin_bindings", [], "gin bindings (win over files).")
flags.DEFINE_enum("strategy", distribute.DEFAULT, distribute.STRATEGIES,
                  "Distribution strategy (--tpu implies tpu).")
flags.DEFINE_string("tpu", None, "TPU name/address ('local' on a TPU VM).")
flags.DEFINE_bool("evaluate", True,
                  "Run the gin-bound evaluation after training and print it.")
flags.mark_flag_as_required("model_dir")


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  config.parse(FLAGS.gin_file, FLAGS.gin_bindings)
  strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
  training.train(FLAGS.model_dir, strategy)
  if FLAGS.evaluate:
    results = evaluate.evaluate_model_dir(FLAGS.model_dir)
    print(evaluate.format_results(results) if results else
          "Nothing to evaluate: no encoder and no sample feature extractor "
          "bound (evaluation.sample_feature_extractor).")


if __name__ == "__main__":
  app.run(main)
