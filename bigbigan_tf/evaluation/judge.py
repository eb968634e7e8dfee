"""A reconstruction judge: a small CNN classifier that says whether G(E(x))
shows the same class as x.

A linear classifier on pixels (the former judge) is right only about 90% of
the time on MNIST digits and is easily fooled by blurry or shifted digits,
so its agreement between x and G(E(x)) mixes its own errors into the score.
The judge here is a two-block CNN trained on the labelled training split
(labels are used by evaluation only, as by the linear probe) that scores
at least 97% on the 1,000 held-out MNIST-5k digits; its held-out accuracy is
reported beside every reconstruction score it gives, so a reader can see how
far to trust it.

Judges are cached per (dataset, split, resolution) as Keras weights under a
cache directory (default: the TFDS data directory's `bigbigan_judges/`), so
every evaluation of every run on a dataset uses the same judge.
"""

from __future__ import annotations

import json
import os
from typing import Optional

import gin
import keras
import numpy as np
import tensorflow as tf

from bigbigan_tf import data

CACHE_SUBDIR = "bigbigan_judges"


class Judge:
  """A trained image classifier with its held-out accuracy.

  Attributes:
    network: the Keras model, images [N, r, r, 3] in [-1, 1] -> logits.
    test_top1: its accuracy on the held-out split it was checked on.
  """

  def __init__(self, network: keras.Model, test_top1: float):
    self.network = network
    self.test_top1 = float(test_top1)
    self._predict = tf.function(lambda x: tf.argmax(
        self.network(x, training=False), axis=-1, output_type=tf.int32))
    # The hidden layer before the logits: the judge's features for FID.
    self._features_and_logits = tf.function(keras.Model(
        network.inputs, [network.layers[-2].output, network.outputs[0]]))

  @property
  def resolution(self) -> int:
    return int(self.network.input_shape[1])

  def classify(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
    """Class indices [N] of images [N, r, r, 3] in [-1, 1].

    Raises:
      ValueError: images of another size than the judge's.
    """
    images = self._checked(images)
    return np.concatenate([
        self._predict(images[i:i + batch_size]).numpy()
        for i in range(0, len(images), batch_size)])

  def _checked(self, images) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[1:3] != (self.resolution,
                                                  self.resolution):
      raise ValueError(
          f"The judge classifies [N, {self.resolution}, {self.resolution}, 3] "
          f"images; received shape {images.shape}.")
    return images

  def features_and_logits(self, images: np.ndarray, batch_size: int = 250
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The judge's penultimate features [N, d] and logits [N, classes]:
    a feature extractor for `evaluator.sample_quality` (a FID and inception
    score on the dataset's own classifier)."""
    images = self._checked(images)
    outputs = [self._features_and_logits(images[i:i + batch_size])
               for i in range(0, len(images), batch_size)]
    return (np.concatenate([f.numpy() for f, _ in outputs]),
            np.concatenate([l.numpy() for _, l in outputs]))

  def agreement(self, images: np.ndarray, others: np.ndarray) -> float:
    """How often the judge gives images[i] and others[i] the same class."""
    return float(np.mean(self.classify(images) == self.classify(others)))


def _network(resolution: int, num_classes: int, seed: int) -> keras.Model:
  """Two conv blocks and a hidden layer: enough for >= 97% on MNIST-5k."""
  init = lambda k: keras.initializers.GlorotUniform(seed=seed + k)
  inputs = keras.Input((resolution, resolution, 3))
  x = keras.layers.Conv2D(32, 3, padding="same", activation="relu",
                          kernel_initializer=init(0))(inputs)
  x = keras.layers.MaxPooling2D()(x)
  x = keras.layers.Conv2D(64, 3, padding="same", activation="relu",
                          kernel_initializer=init(1))(x)
  x = keras.layers.MaxPooling2D()(x)
  x = keras.layers.Flatten()(x)
  x = keras.layers.Dropout(0.3, seed=seed)(x)
  x = keras.layers.Dense(128, activation="relu", kernel_initializer=init(2))(x)
  outputs = keras.layers.Dense(num_classes, kernel_initializer=init(3))(x)
  return keras.Model(inputs, outputs, name="judge")


def _shifted(images: tf.Tensor, seed: tf.Tensor, max_shift: int) -> tf.Tensor:
  """Random translations by up to max_shift pixels (background -1)."""
  size = images.shape[1]
  padded = tf.pad(images, [[0, 0], [max_shift] * 2, [max_shift] * 2, [0, 0]],
                  constant_values=-1.0)
  return tf.image.stateless_random_crop(
      padded, [tf.shape(images)[0], size, size, 3], seed)


@gin.configurable("judge", denylist=["train_images", "train_labels",
                                     "test_images", "test_labels"])
def train_judge(train_images: np.ndarray,
                train_labels: np.ndarray,
                test_images: np.ndarray,
                test_labels: np.ndarray,
                epochs: int = 12,
                batch_size: int = 64,
                learning_rate: float = 1e-3,
                max_shift: int = 2,
                seed: int = 0) -> Judge:
  """Trains a judge on labelled images and checks it on held-out ones.

  Args:
    train_images, test_images: [N, r, r, 3] in [-1, 1].
    train_labels, test_labels: [N] integer classes.
    epochs: passes over the training split.
    batch_size: examples per step.
    learning_rate: Adam's.
    max_shift: random translation (pixels) of training images.
    seed: weights, dropout, order and shifts.

  Raises:
    ValueError: mismatched or empty inputs.
  """
  train_images = np.asarray(train_images, np.float32)
  test_images = np.asarray(test_images, np.float32)
  train_labels = np.asarray(train_labels, np.int64)
  test_labels = np.asarray(test_labels, np.int64)
  if (train_images.ndim != 4 or len(train_images) != len(train_labels)
      or len(test_images) != len(test_labels) or not len(train_images)
      or not len(test_images)):
    raise ValueError(
        "Expected non-empty [N, r, r, 3] images with N labels for both "
        f"splits; received {train_images.shape} / {train_labels.shape} and "
        f"{test_images.shape} / {test_labels.shape}.")
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  network = _network(train_images.shape[1], num_classes, seed)
  optimizer = keras.optimizers.Adam(learning_rate)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function
  def step(images, labels, step_seed):
    images = _shifted(images, step_seed, max_shift) if max_shift else images
    with tf.GradientTape() as tape:
      loss = loss_fn(labels, network(images, training=True))
    grads = tape.gradient(loss, network.trainable_variables)
    optimizer.apply_gradients(zip(grads, network.trainable_variables))
    return loss

  order = np.random.default_rng(seed)
  for epoch in range(epochs):
    permutation = order.permutation(len(train_images))
    for start in range(0, len(permutation) - batch_size + 1, batch_size):
      rows = permutation[start:start + batch_size]
      step(train_images[rows], train_labels[rows],
           tf.constant([seed, epoch * 100_000 + start], tf.int64))
  judge = Judge(network, 0.0)
  judge.test_top1 = float(np.mean(judge.classify(test_images) == test_labels))
  return judge


def _cache_paths(cache_dir: str, dataset: str, split: str,
                 resolution: int) -> tuple[str, str]:
  stem = os.path.join(cache_dir, f"{dataset}_{split}_{resolution}px")
  return stem + ".weights.h5", stem + ".json"


def default_cache_dir(data_dir: Optional[str] = None) -> str:
  """`bigbigan_judges/` in the TFDS data directory (data_dir, else
  $TFDS_DATA_DIR, else ~/tensorflow_datasets)."""
  root = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
  return os.path.join(os.path.expanduser(root), CACHE_SUBDIR)


def cached_judge(dataset: str,
                 resolution: int,
                 train_split: str = "train",
                 test_split: str = "test",
                 data_dir: Optional[str] = None,
                 cache_dir: Optional[str] = None) -> Judge:
  """The judge of a dataset at a resolution: loaded, or trained and saved.

  A cached judge is used as it is (training is deterministic given the
  data and the `judge` gin bindings; delete the cache to retrain).
  """
  cache_dir = cache_dir or default_cache_dir(data_dir)
  weights_path, info_path = _cache_paths(cache_dir, dataset, train_split,
                                         resolution)
  if tf.io.gfile.exists(weights_path) and tf.io.gfile.exists(info_path):
    with tf.io.gfile.GFile(info_path) as f:
      info = json.load(f)
    network = _network(resolution, info["num_classes"], seed=0)
    network.load_weights(weights_path)
    return Judge(network, info["test_top1"])
  train_x, train_y = data.load_arrays(dataset, train_split, resolution,
                                      data_dir=data_dir)
  test_x, test_y = data.load_arrays(dataset, test_split, resolution,
                                    data_dir=data_dir)
  judge = train_judge(train_x, train_y, test_x, test_y)
  tf.io.gfile.makedirs(cache_dir)
  judge.network.save_weights(weights_path)
  with tf.io.gfile.GFile(info_path, "w") as f:
    json.dump({"test_top1": judge.test_top1,
               "num_classes": int(judge.network.output_shape[-1]),
               "test_split": test_split}, f)
  return judge
