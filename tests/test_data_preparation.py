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
