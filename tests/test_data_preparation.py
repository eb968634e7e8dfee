"""Tests for bigbigan_tf/data/preparation.py: TFDS datasets prepared one
process at a time (on the real mnist5k digits, offline)."""

import logging
import threading

from bigbigan_tf import data
from bigbigan_tf.data import preparation


def test_concurrent_preparation_waits_for_the_first(tmp_path):
  # Two processes (two quickstarts, two test workers) preparing one data_dir
  # at once used to fail in TFDS's final rename. The second now waits for
  # the first and reads what it wrote; both builders exist before the files.
  first = data.Mnist5k(data_dir=str(tmp_path))
  second = data.Mnist5k(data_dir=str(tmp_path))
  errors = []

  def prepare_second():
    try:
      preparation.prepare_exclusively(second,
                                      preparation.offline_download_config())
    except Exception as err:  # pylint: disable=broad-except
      errors.append(err)

  waiter = threading.Thread(target=prepare_second)
  with preparation.preparation_lock(first):
    waiter.start()
    waiter.join(timeout=2.0)
    assert waiter.is_alive(), "the second preparation did not wait"
    assert not second.is_prepared()
    first.download_and_prepare(
        download_config=preparation.offline_download_config())
  waiter.join(timeout=60.0)
  assert not waiter.is_alive() and not errors, errors
  assert second.info.splits["train"].num_examples == 4000
  assert sum(1 for _ in second.as_dataset(split="test")) == 1000
  assert sorted(p.name for p in (tmp_path / "mnist5k").iterdir()) == ["1.0.0"]


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


def test_is_prepared_asks_tfds_only_once_the_files_exist(tmp_path, caplog):
  builder = data.Mnist5k(data_dir=str(tmp_path))
  with caplog.at_level(logging.INFO):
    assert not preparation.is_prepared(builder)
  assert "Variant folder" not in caplog.text
  # TFDS's own check warns on the same unprepared folder.
  with caplog.at_level(logging.INFO):
    assert not builder.is_prepared()
  assert "Variant folder" in caplog.text
  data.prepare_mnist5k(str(tmp_path))
  assert preparation.is_prepared(data.Mnist5k(data_dir=str(tmp_path)))
