"""The image-folder source: a user's own images, checked before use.

Layout (docs/evaluation.md, "Your own images"):

* Labelled: ``ROOT/<class_name>/<image files>``. Every non-hidden folder
  directly under ROOT is a class; class indices follow the sorted class
  names (0, 1, ...). Images in deeper folders belong to the class folder
  they are under. An empty class folder is an error.
* Unlabelled ("flat"): ROOT holds image files directly. Then every image
  under ROOT, at any depth, is used and labelled `keys.UNLABELLED`; such a
  folder trains, but cannot be evaluated on.

Files are images by their name ending (`IMAGE_EXTENSIONS`, any case); other
files and hidden names (starting with ".") are ignored and counted. Each
image is decoded once, up front, with the decoder the pipeline uses, so a
corrupt, truncated or mislabelled file cannot stop a long run when the
pipeline reaches it: such files are skipped, counted and named in a warning,
and an error is raised only when a folder (or a class) is left with nothing.
Decoding results are remembered per file (by size and modification time),
so a folder read by several pipelines of one process is decoded once.

`split_indices` holds out a stratified, seeded fraction of every class
(`validation_fraction`), for a probe measured on images it was not trained
on. All listing and reading goes through `tf.io.gfile` / `tf.io.read_file`,
so ROOT may be a ``gs://`` bucket folder.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import posixpath
import threading
import zlib
from typing import NamedTuple, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from bigbigan_tf.data import keys

# File name endings (lower case) that are treated as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# How many bad files a warning or an error names.
_MAX_REPORTED_BAD_FILES = 5

# Seed of the held-out split of `validation_fraction`: fixed, so that a
# folder is split the same way by training and by every evaluation.
VALIDATION_SEED = 0

# `split` values that select the two parts of a folder split by
# `validation_fraction`.
TRAIN_SPLITS = ("train",)
HELD_OUT_SPLITS = ("test", "validation")


class ImageDirScan(NamedTuple):
  """Result of `scan_image_dir`: sorted paths of decodable and bad files."""
  good_paths: list[str]
  bad_paths: list[str]


@dataclasses.dataclass(frozen=True)
class ImageFolder:
  """The images of a folder, their classes and what was left out.

  Attributes:
    root: the folder, as given (``~`` expanded).
    class_names: the class folders' names in index order; empty for a flat
      (unlabelled) folder.
    paths: the decodable images, sorted by class, then path.
    labels: int32 [len(paths)]: class indices, or `keys.UNLABELLED`.
    bad_files: (path, reason) of image-named files that cannot be used.
    ignored_files: how many files were ignored (no image extension, or a
      hidden name).
    loose_images: for a folder that has class-like subfolders but also
      images directly in ROOT (so it is treated as flat): those images.
  """
  root: str
  class_names: tuple[str, ...]
  paths: tuple[str, ...]
  labels: np.ndarray
  bad_files: tuple[tuple[str, str], ...]
  ignored_files: int
  loose_images: tuple[str, ...] = ()

  @property
  def labelled(self) -> bool:
    return bool(self.class_names)

  @property
  def bad_paths(self) -> list[str]:
    return [path for path, _ in self.bad_files]

  def class_counts(self, indices: Optional[np.ndarray] = None
                  ) -> dict[str, int]:
    """Images per class name (of the rows `indices`, default all)."""
    labels = self.labels if indices is None else self.labels[indices]
    counts = np.bincount(labels[labels >= 0], minlength=len(self.class_names))
    return {name: int(n) for name, n in zip(self.class_names, counts)}


# ---------------------------------------------------------------------------
# Listing and decoding.
# ---------------------------------------------------------------------------


def _join(directory: str, name: str) -> str:
  # posixpath, not os.path: "gs://" paths use "/" on every platform.
  return posixpath.join(directory, name.rstrip("/"))


def _is_hidden(name: str) -> bool:
  return name.rstrip("/").startswith(".")


def _is_image_name(name: str) -> bool:
  return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _check_root(image_dir: str | os.PathLike[str], what: str) -> str:
  root = os.path.expanduser(os.fspath(image_dir))
  if not tf.io.gfile.isdir(root):
    reason = ("is not a directory" if tf.io.gfile.exists(root) else
              "does not exist")
    raise ValueError(f"Expected {what} to be a directory of images, but "
                     f"{root!r} {reason}.")
  return root


def list_image_files(directory: str) -> tuple[list[str], int]:
  """Image-named files under `directory` (recursive, sorted) and the number
  of other files (hidden ones included; hidden folders are not entered)."""
  images, ignored = [], 0
  for parent, subdirs, files in tf.io.gfile.walk(directory):
    # tf.io.gfile.walk is top-down: pruning subdirs skips hidden folders.
    subdirs[:] = [d for d in subdirs if not _is_hidden(d)]
    for name in files:
      if not _is_hidden(name) and _is_image_name(name):
        images.append(_join(parent, name))
      else:
        ignored += 1
  return sorted(images), ignored


def decode_image_file_contents(contents: tf.Tensor) -> tf.Tensor:
  """Decodes encoded jpg/png/bmp/gif bytes to uint8 [H, W, 3].

  Grayscale becomes three equal channels, palette images their colours;
  alpha is dropped (the colour stored under transparent pixels is kept;
  transparent GIF pixels are black); 16-bit PNGs are scaled to 8 bits; of an
  animated GIF the first frame is used.
  """
  image = tf.io.decode_image(contents, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def _colour_palette_bmp(contents: bytes) -> bool:
  """Whether a BMP has a palette that TensorFlow's decoder would misread.

  TensorFlow decodes an 8-bit BMP's palette indices as grey levels, which is
  right only for the identity grey palette (what Pillow writes for mode L).
  """
  if len(contents) < 54 or contents[:2] != b"BM":
    return False
  bits = int.from_bytes(contents[28:30], "little")
  if bits > 8:
    return False
  header = int.from_bytes(contents[14:18], "little")
  used = int.from_bytes(contents[46:50], "little") or 2**bits
  table = np.frombuffer(contents[14 + header:14 + header + 4 * used],
                        np.uint8)
  if len(table) < 4 * used:
    return True
  bgr = table.reshape(used, 4)[:, :3].astype(np.int64)
  return not np.array_equal(bgr, np.repeat(np.arange(used)[:, None], 3, 1))


def _file_problem(path: str) -> Optional[str]:
  """None when `path` decodes to a non-empty image, else why not."""
  try:
    contents = tf.io.read_file(path)
    image = decode_image_file_contents(contents)
  except (tf.errors.OpError, OSError):
    return "not a decodable image"
  height, width = image.shape[:2]
  if not height or not width:
    return "an empty image"
  if (path.lower().endswith(".bmp")
      and _colour_palette_bmp(contents.numpy())):
    return "a palette BMP (TensorFlow reads it as grey; convert it to PNG)"
  return None


# path -> (size, modification time, problem): decoding is the slow part of a
# scan, and training builds several pipelines on the same folder.
_CHECKED: dict[str, tuple[int, int, Optional[str]]] = {}
_CHECKED_LOCK = threading.Lock()
# (root, bad paths) whose warning was given, so that it is given once.
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


def file_problem(path: str) -> Optional[str]:
  """None when `path` is an image that decodes, else why not (remembered
  per path, size and modification time)."""
  try:
    stat = tf.io.gfile.stat(path)
    stamp = (int(stat.length), int(stat.mtime_nsec))
  except tf.errors.OpError:
    return "not readable"
  with _CHECKED_LOCK:
    known = _CHECKED.get(path)
  if known is not None and known[:2] == stamp:
    return known[2]
  problem = _file_problem(path)
  with _CHECKED_LOCK:
    _CHECKED[path] = (*stamp, problem)
  return problem


def _problems(paths: Sequence[str], num_threads: int) -> list[Optional[str]]:
  with concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    return list(pool.map(file_problem, paths))


def scan_image_dir(image_dir: str | os.PathLike[str],
                   *,
                   num_threads: int = 4) -> ImageDirScan:
  """Finds the images under a directory and checks that each one decodes.

  Files are selected by name (`IMAGE_EXTENSIONS`, any case), recursively,
  whatever the layout; other files are ignored. Each selected file is
  decoded with the decoder the pipeline uses; files that fail (corrupt,
  truncated, not really an image, a colour palette BMP) are bad paths.

  Args:
    image_dir: directory to search (a local path or gs://).
    num_threads: how many files to decode at once.

  Returns:
    An `ImageDirScan` (a (good_paths, bad_paths) tuple), each list sorted.

  Raises:
    ValueError: if ``image_dir`` does not exist or is not a directory.
  """
  root = _check_root(image_dir, "image_dir")
  candidates, _ = list_image_files(root)
  problems = _problems(candidates, num_threads)
  return ImageDirScan(
      good_paths=[p for p, bad in zip(candidates, problems) if bad is None],
      bad_paths=[p for p, bad in zip(candidates, problems) if bad is not None])


def scan_image_folder(image_dir: str | os.PathLike[str],
                      *,
                      what: str = "image_dir",
                      num_threads: int = 4) -> ImageFolder:
  """Reads a folder's layout (labelled or flat) and checks every image.

  Args:
    image_dir: the folder (a local path or gs://).
    what: how error messages name the folder (e.g. a gin parameter).
    num_threads: how many files to decode at once.

  Returns:
    The `ImageFolder`. Bad files are in it, not yet reported (see
    `warn_about_bad_files`).

  Raises:
    ValueError: the folder does not exist or is not a directory; it holds
      no decodable image; a class folder holds no decodable image.
  """
  root = _check_root(image_dir, what)
  entries = tf.io.gfile.listdir(root)
  loose = sorted(_join(root, name) for name in entries
                 if not _is_hidden(name) and _is_image_name(name)
                 and not tf.io.gfile.isdir(_join(root, name)))
  class_dirs = sorted(name.rstrip("/") for name in entries
                      if not _is_hidden(name)
                      and tf.io.gfile.isdir(_join(root, name)))
  if loose or not class_dirs:  # Flat: every image, unlabelled.
    candidates, ignored = list_image_files(root)
    groups = [candidates]
    class_names: tuple[str, ...] = ()
  else:
    groups, ignored = [], 0
    for name in class_dirs:
      files, other = list_image_files(_join(root, name))
      groups.append(files)
      ignored += other
    ignored += sum(1 for name in entries if not tf.io.gfile.isdir(
        _join(root, name)))
    class_names = tuple(class_dirs)
  problems = _problems([p for group in groups for p in group], num_threads)
  paths, labels, bad = [], [], []
  empty_classes = []
  position = 0
  for index, group in enumerate(groups):
    good = 0
    for path in group:
      problem = problems[position]
      position += 1
      if problem is None:
        paths.append(path)
        labels.append(index if class_names else keys.UNLABELLED)
        good += 1
      else:
        bad.append((path, problem))
    if class_names and not good:
      empty_classes.append((_join(root, class_names[index]), len(group)))
  if not paths:
    raise ValueError(
        f"Expected image files ({', '.join(IMAGE_EXTENSIONS)}) under "
        f"{what} {root!r}, found no decodable image ({len(bad)} "
        f"undecodable{_examples(bad)}).")
  if empty_classes:
    listed = "; ".join(f"{path!r} ({n} image files, none decodable)"
                       for path, n in empty_classes)
    raise ValueError(
        f"Expected every class folder of {what} {root!r} to hold at least "
        f"one decodable image ({', '.join(IMAGE_EXTENSIONS)}), but "
        f"{len(empty_classes)} hold none: {listed}. Remove them or add "
        f"images.")
  return ImageFolder(
      root=root,
      class_names=class_names,
      paths=tuple(paths),
      labels=np.asarray(labels, np.int32),
      bad_files=tuple(bad),
      ignored_files=ignored,
      loose_images=tuple(loose) if class_dirs else ())


def _examples(bad: Sequence[tuple[str, str]]) -> str:
  if not bad:
    return ""
  shown = ", ".join(f"{path} ({reason})"
                    for path, reason in bad[:_MAX_REPORTED_BAD_FILES])
  return f", e.g. {shown}"


def warn_about_bad_files(folder: ImageFolder) -> None:
  """Logs the count and first few of the folder's bad files (once per
  process and folder state) and, at INFO, how many files were ignored."""
  key = (folder.root, tuple(folder.bad_paths))
  if key in _WARNED:
    return
  _WARNED.add(key)
  if folder.bad_files:
    logging.warning(
        "Skipping %d of %d image files under %s that could not be decoded%s",
        len(folder.bad_files), len(folder.bad_files) + len(folder.paths),
        folder.root, _examples(folder.bad_files))
  if folder.ignored_files:
    logging.info("Ignored %d files under %s without an image name ending "
                 "(%s) or with a hidden name.", folder.ignored_files,
                 folder.root, ", ".join(IMAGE_EXTENSIONS))


def usable_image_paths(image_dir: str | os.PathLike[str]) -> list[str]:
  """Scans ``image_dir``, warns about bad files, fails when nothing is left.

  Returns:
    The paths of the decodable images (sorted by class, then path).

  Raises:
    ValueError: as `scan_image_folder`.
  """
  folder = scan_image_folder(image_dir)
  warn_about_bad_files(folder)
  return list(folder.paths)


# ---------------------------------------------------------------------------
# Held-out split.
# ---------------------------------------------------------------------------


def check_validation_fraction(validation_fraction: object) -> float:
  """Returns the fraction as a float; raises unless 0 < it < 1."""
  if (isinstance(validation_fraction, bool)
      or not isinstance(validation_fraction, (int, float, np.floating))
      or not 0.0 < float(validation_fraction) < 1.0):
    raise ValueError(
        f"Expected validation_fraction to be a number strictly between 0 and "
        f"1 (the share of every class held out), got {validation_fraction!r}.")
  return float(validation_fraction)


def split_indices(folder: ImageFolder, validation_fraction: float,
                  seed: int = VALIDATION_SEED
                 ) -> tuple[np.ndarray, np.ndarray]:
  """A stratified, seeded split of a folder's images: (train, held out).

  Of each class's n images, round(validation_fraction * n) are held out,
  chosen by a permutation seeded by `seed` and the class name (so a class's
  split does not change when other classes are added). A flat folder is one
  group.

  Returns:
    Sorted row indices into folder.paths of the two parts: disjoint, and
    together every image.

  Raises:
    ValueError: the fraction is not in (0, 1), or it would leave a class
      without training or without held-out images.
  """
  fraction = check_validation_fraction(validation_fraction)
  groups = [np.flatnonzero(folder.labels == label)
            for label in np.unique(folder.labels)]
  names = [folder.class_names[folder.labels[rows[0]]] if folder.labelled
           else "" for rows in groups]
  counts = [int(np.floor(fraction * len(rows) + 0.5)) for rows in groups]
  for rows, name, count in zip(groups, names, counts):
    if not 0 < count < len(rows):
      where = (f"class {name!r} ({_join(folder.root, name)})" if name else
               f"the folder {folder.root!r}")
      smallest = min(map(len, groups))
      hint = (f"pick a fraction in [{0.5 / smallest:.3g}, "
              f"{(smallest - 0.5) / smallest:.3g}), or add images"
              if smallest > 1 else "add images to it")
      raise ValueError(
          f"validation_fraction={fraction} would hold out {count} of the "
          f"{len(rows)} images of {where}; expected at least one held-out "
          f"and one training image in every class ({hint}).")
  train, held_out = [], []
  for rows, name, count in zip(groups, names, counts):
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    order = rng.permutation(rows)
    held_out.append(order[:count])
    train.append(order[count:])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(held_out))


def select(folder: ImageFolder, split: str,
           validation_fraction: Optional[float]) -> np.ndarray:
  """Row indices of `split`: all rows without a fraction; else the training
  part for "train", the held-out part for "test" or "validation"."""
  if validation_fraction is None:
    return np.arange(len(folder.paths))
  train, held_out = split_indices(folder, validation_fraction)
  if split in TRAIN_SPLITS:
    return train
  if split in HELD_OUT_SPLITS:
    return held_out
  raise ValueError(
      f"Expected split {TRAIN_SPLITS + HELD_OUT_SPLITS} for an image folder "
      f"split by validation_fraction, got split={split!r}.")


# ---------------------------------------------------------------------------
# The class-index record (checkpoints.CLASSES_FILE).
# ---------------------------------------------------------------------------


def class_record(folder: ImageFolder, indices: Optional[np.ndarray] = None,
                 split: Optional[str] = None,
                 validation_fraction: Optional[float] = None) -> dict:
  """What a run or an evaluation read from a folder, as JSON-ready values:
  class names in index order, images per class (of `indices`), and the
  counts of files left out."""
  rows = np.arange(len(folder.paths)) if indices is None else indices
  record = {
      "image_dir": folder.root,
      "labelled": folder.labelled,
      "classes": list(folder.class_names),
      "num_images": int(len(rows)),
      "undecodable_files": len(folder.bad_files),
      "undecodable_examples": [
          f"{path} ({reason})"
          for path, reason in folder.bad_files[:_MAX_REPORTED_BAD_FILES]],
      "ignored_files": folder.ignored_files,
  }
  if folder.labelled:
    record["images_per_class"] = folder.class_counts(rows)
  if validation_fraction is not None:
    record["split"] = split
    record["validation_fraction"] = float(validation_fraction)
    record["validation_seed"] = VALIDATION_SEED
  return record


def folder_record(image_dir: str | os.PathLike[str], split: str = "train",
                  validation_fraction: Optional[float] = None,
                  what: str = "image_dir") -> dict:
  """`class_record` of the part of a folder that `split` selects (the
  record training writes into model_dir)."""
  folder = scan_image_folder(image_dir, what=what)
  rows = select(folder, split, validation_fraction)
  return class_record(folder, rows, split, validation_fraction)
