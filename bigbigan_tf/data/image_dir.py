"""The image-folder source: a user's own images, checked before training.

A folder of photos often holds a few files that are corrupt, truncated or not
images at all; one of them would stop a long training run at the moment the
pipeline reaches it. `scan_image_dir` therefore decodes every file once, up
front, with the decoder the pipeline uses; `usable_image_paths` skips the
files that fail, reports how many, and fails only when nothing is left.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
from typing import NamedTuple

from absl import logging
import tensorflow as tf

# File name endings (lower case) that `scan_image_dir` treats as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# How many undecodable files the warning names.
_MAX_REPORTED_BAD_FILES = 5


class ImageDirScan(NamedTuple):
  """Result of `scan_image_dir`: sorted paths of decodable and bad files."""
  good_paths: list[str]
  bad_paths: list[str]


def decode_image_file_contents(contents: tf.Tensor) -> tf.Tensor:
  """Decodes encoded jpg/png/bmp/gif bytes to uint8 [H, W, 3]."""
  image = tf.io.decode_image(contents, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def _is_decodable(path: str) -> bool:
  try:
    image = decode_image_file_contents(tf.io.read_file(path))
  except (tf.errors.OpError, OSError):
    return False
  height, width = image.shape[:2]
  return height > 0 and width > 0


def scan_image_dir(image_dir: str | os.PathLike[str],
                   *,
                   num_threads: int = 4) -> ImageDirScan:
  """Finds the images under a directory and checks that each one decodes.

  Files are selected by name (`IMAGE_EXTENSIONS`, any case), recursively;
  other files are ignored. Each selected file is decoded with the same
  TensorFlow decoder the pipeline uses; files that fail (corrupt, truncated,
  or not really an image) are returned as bad paths.

  Args:
    image_dir: directory to search.
    num_threads: how many files to decode at once.

  Returns:
    An `ImageDirScan` (a (good_paths, bad_paths) tuple), each list sorted.

  Raises:
    ValueError: if ``image_dir`` does not exist or is not a directory.
  """
  root = pathlib.Path(image_dir).expanduser()
  if not root.is_dir():
    reason = "is not a directory" if root.exists() else "does not exist"
    raise ValueError(f"Expected image_dir to be a directory of images, but "
                     f"{str(root)!r} {reason}.")
  candidates = sorted(
      str(path) for path in root.rglob("*")
      if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
  with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    decodable = list(pool.map(_is_decodable, candidates))
  good = [path for path, ok in zip(candidates, decodable) if ok]
  bad = [path for path, ok in zip(candidates, decodable) if not ok]
  return ImageDirScan(good_paths=good, bad_paths=bad)


def usable_image_paths(image_dir: str | os.PathLike[str]) -> list[str]:
  """Scans ``image_dir``, warns about bad files, fails when nothing is left.

  Args:
    image_dir: directory to search, as in `scan_image_dir`.

  Returns:
    The sorted paths of the decodable images.

  Raises:
    ValueError: if ``image_dir`` is not a directory or holds no decodable
      image.
  """
  scan = scan_image_dir(image_dir)
  if scan.bad_paths:
    logging.warning(
        "Skipping %d of %d image files under %s that could not be decoded, "
        "e.g. %s", len(scan.bad_paths),
        len(scan.bad_paths) + len(scan.good_paths), image_dir,
        ", ".join(scan.bad_paths[:_MAX_REPORTED_BAD_FILES]))
  if not scan.good_paths:
    raise ValueError(
        f"Expected image files ({', '.join(IMAGE_EXTENSIONS)}) under "
        f"image_dir {os.fspath(image_dir)!r}, found no decodable image "
        f"({len(scan.bad_paths)} undecodable).")
  return scan.good_paths
