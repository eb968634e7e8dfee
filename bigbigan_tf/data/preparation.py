"""Preparing a TFDS dataset: offline, quietly, one process at a time.

Every TFDS dataset the pipelines read (mnist5k, ImageNet, any other) is
prepared through `prepare_exclusively`: under a file lock beside its data,
so that two processes starting together (two tests, two workers) do not both
write it, with TFDS's own progress output kept from the user, and with a
download config that never asks Google Cloud Storage. `is_prepared` checks
for the files without TFDS's warning on a dataset not prepared yet.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Iterator

from absl import logging
import tensorflow_datasets as tfds


def offline_download_config(
    manual_dir: str | os.PathLike[str] | None = None
) -> tfds.download.DownloadConfig:
  """A TFDS download config that never asks Google Cloud Storage."""
  return tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False)


def is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
  """``builder.is_prepared()``, without TFDS's warning on a first run.

  TFDS logs "Variant folder ... has no dataset_info.json" whenever it checks
  a dataset that is not prepared yet, which is the normal first run here.
  """
  if not (builder.data_path / "dataset_info.json").exists():
    return False
  return builder.is_prepared()


@contextlib.contextmanager
def preparation_lock(builder: tfds.core.DatasetBuilder) -> Iterator[None]:
  """Holds an exclusive lock on a file beside ``builder``'s data.

  TFDS writes a dataset into a temporary directory and renames it at the
  end; a second process preparing the same dataset at the same time fails
  on that rename. Under this lock only one process prepares; the others
  wait and then find the dataset prepared. Local data directories only
  (POSIX file locks): remote ones (gs://) and platforms without fcntl get
  no lock.
  """
  root = os.fspath(builder.data_dir_root)
  try:
    import fcntl  # pylint: disable=g-import-not-at-top
  except ImportError:  # Windows.
    fcntl = None
  if fcntl is None or "://" in root:
    yield
    return
  os.makedirs(root, exist_ok=True)
  lock_path = os.path.join(root, f".{builder.name}-{builder.version}.lock")
  with open(lock_path, "a", encoding="utf-8") as lock_file:
    fcntl.flock(lock_file, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet_preparation() -> Iterator[None]:
  """Keeps TFDS's own preparation output (its "Downloading and preparing
  dataset Unknown size ..." lines on stdout and progress bars) from the user;
  warnings and errors still reach them through logging."""
  was_active = tfds.core.utils.tqdm_utils._active  # pylint: disable=protected-access
  tfds.core.utils.tqdm_utils.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    tfds.core.utils.tqdm_utils.display_progress_bar(was_active)


def prepare_exclusively(builder: tfds.core.DatasetBuilder,
                        download_config: tfds.download.DownloadConfig) -> None:
  """Prepares ``builder``'s files unless another process did meanwhile."""
  with preparation_lock(builder):
    if is_prepared(builder):
      # Prepared by another process while this one waited: this builder
      # was created before the files existed, so load what was written.
      builder.info.read_from_directory(builder.data_dir)
      return
    logging.info("Preparing %s in %s (once; later runs read it).",
                 builder.name, builder.data_dir)
    with quiet_preparation():
      builder.download_and_prepare(download_config=download_config)
