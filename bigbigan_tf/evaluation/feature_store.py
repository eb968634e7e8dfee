"""Disk-backed features of evaluation splits, for ImageNet-scale evaluation.

AvePool features of ImageNet's training split are 1.28M x 2048 floats (10 GB
in float32; 8192 wide, 42 GB, for RevNet-50x4), too many to hold in memory.
`extract_features` runs a feature function (E in inference mode, or the pixel
baseline's pooling) over an evaluation tf.data pipeline batch by batch and
appends the rows to `.npy` files in a directory; images are never kept.
`open_features` maps them back read-only (`np.memmap`), validated, as a
feature source for linear_probe.linear_probe and knn_accuracy, which read
them in bounded chunks.

Layout of one directory (one split of one feature function):

  features.npy  [N, D] float32 (or float16), written by appending batches
  labels.npy    [N] int32, in the same order
  info.json     {"rows": N, "dim": D, "dtype": ..., plus the caller's
                description}; written last, so a directory without it holds
                an interrupted extraction and is refused.

Rows are appended without counting the split first: the .npy header written
at the start is rewritten with the final row count at the end. NumPy pads
headers so that the shape can grow in place (np.lib.format's growth
padding); the rewrite checks that the header length did not change.

The directory must be on a local file system (memory mapping does not work
on gs:// and similar).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Iterable, Optional, Tuple

import numpy as np
import tensorflow as tf

from bigbigan_tf import data

FEATURES_FILE = "features.npy"
LABELS_FILE = "labels.npy"
INFO_FILE = "info.json"
# float32 by default: the figures then equal those of in-memory evaluation.
# float16 halves the disk space (5 GB for ResNet-50 on ImageNet's training
# split) at a relative precision of about 1e-3 per feature.
DTYPES = ("float32", "float16")
_PARTIAL_SUFFIX = ".partial"


@dataclasses.dataclass(frozen=True)
class StoredFeatures:
  """Features of one split on disk.

  Attributes:
    features: read-only memmap [N, D] (a linear_probe feature source).
    labels: int32 [N], in memory.
    directory: where the files are.
    info: the contents of info.json.
  """
  features: np.ndarray
  labels: np.ndarray
  directory: str
  info: dict


class _NpyAppender:
  """Writes a .npy file [rows, *row_shape] by appending rows."""

  def __init__(self, path: str, row_shape: Tuple[int, ...], dtype: np.dtype):
    self._path = path
    self._row_shape = tuple(row_shape)
    self._dtype = np.dtype(dtype)
    self.rows = 0
    self._file = open(path, "wb")
    self._write_header()
    self._data_offset = self._file.tell()

  def _write_header(self) -> None:
    np.lib.format.write_array_header_1_0(self._file, {
        "descr": np.lib.format.dtype_to_descr(self._dtype),
        "fortran_order": False,
        "shape": (self.rows,) + self._row_shape})

  @property
  def closed(self) -> bool:
    return self._file.closed

  def append(self, rows: np.ndarray) -> None:
    self._file.write(np.ascontiguousarray(rows, self._dtype).tobytes())
    self.rows += rows.shape[0]

  def close(self) -> None:
    self._file.seek(0)
    self._write_header()
    if self._file.tell() != self._data_offset:
      self._file.close()
      raise ValueError(
          f"{self._path}: the .npy header for {self.rows} rows is "
          f"{self._file.tell()} bytes, expected {self._data_offset} (the "
          "header written before the rows); this NumPy version does not pad "
          ".npy headers for growth.")
    self._file.close()


def _check_local(directory: str) -> None:
  if "://" in os.fspath(directory):
    raise ValueError(
        f"Feature directories must be local paths (features are memory "
        f"mapped); received {directory!r}.")


def write_features(directory: str,
                   batches: Iterable[Tuple[np.ndarray, np.ndarray]],
                   dtype: str = "float32",
                   info: Optional[dict] = None) -> StoredFeatures:
  """Appends (features [B, D], labels [B]) batches to files in `directory`.

  Replaces features already in `directory`. At most one batch is in memory.

  Args:
    directory: local directory (created if needed).
    batches: pairs of features [B, D] and integer labels [B].
    dtype: storage dtype, one of `DTYPES`.
    info: JSON-serialisable description stored in info.json (e.g. dataset,
      split and encoder), with "rows", "dim" and "dtype" added.

  Returns:
    The `StoredFeatures` as read back by `open_features`.

  Raises:
    ValueError: unknown dtype, a non-local directory, malformed batches or
      batches of different widths, or no rows at all.
  """
  if dtype not in DTYPES:
    raise ValueError(f"dtype must be one of {DTYPES}; received {dtype!r}.")
  _check_local(directory)
  os.makedirs(directory, exist_ok=True)
  info_path = os.path.join(directory, INFO_FILE)
  if os.path.exists(info_path):  # Whatever follows, the old files are stale.
    os.remove(info_path)
  paths = {name: os.path.join(directory, name)
           for name in (FEATURES_FILE, LABELS_FILE)}
  features_out = labels_out = None
  dim = None
  try:
    for features, labels in batches:
      features = np.asarray(features)
      labels = np.asarray(labels)
      if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            "Expected batches of features [B, D] and labels [B]; received "
            f"shapes {features.shape} and {labels.shape}.")
      if dim is None:
        dim = features.shape[1]
        features_out = _NpyAppender(paths[FEATURES_FILE] + _PARTIAL_SUFFIX,
                                    (dim,), dtype)
        labels_out = _NpyAppender(paths[LABELS_FILE] + _PARTIAL_SUFFIX, (),
                                  np.int32)
      elif features.shape[1] != dim:
        raise ValueError(
            f"Expected every batch to have {dim} features (as the first); "
            f"received a batch of width {features.shape[1]}.")
      features_out.append(features)
      labels_out.append(labels)
  finally:
    for appender in (features_out, labels_out):
      if appender is not None and not appender.closed:
        appender.close()
  if dim is None:
    raise ValueError(f"No rows to write to {directory}: the batches were "
                     "empty (an empty split, or max_examples too small?).")
  for name, path in paths.items():
    os.replace(path + _PARTIAL_SUFFIX, path)
  rows = features_out.rows
  with open(info_path, "w") as f:
    json.dump({**(info or {}), "rows": rows, "dim": dim, "dtype": dtype}, f,
              indent=2, sort_keys=True, default=str)
  return open_features(directory, expected_rows=rows, expected_dim=dim)


def open_features(directory: str,
                  expected_dim: Optional[int] = None,
                  expected_rows: Optional[int] = None) -> StoredFeatures:
  """Maps the features written by `write_features`, checking them.

  Args:
    directory: a directory written by `write_features`.
    expected_dim: if given, the feature width the caller needs (e.g. the
      encoder's AvePool width).
    expected_rows: if given, the number of examples the caller needs.

  Returns:
    `StoredFeatures` with a read-only memmap of the features.

  Raises:
    ValueError: no complete extraction in `directory`; files that disagree
      with each other or with info.json; a width or row count other than
      the expected one.
  """
  _check_local(directory)
  info_path = os.path.join(directory, INFO_FILE)
  if not os.path.exists(info_path):
    raise ValueError(
        f"{directory} holds no complete feature extraction: expected "
        f"{INFO_FILE} next to {FEATURES_FILE} and {LABELS_FILE} (written "
        "last by write_features).")
  with open(info_path) as f:
    info = json.load(f)
  features = np.load(os.path.join(directory, FEATURES_FILE), mmap_mode="r")
  labels = np.load(os.path.join(directory, LABELS_FILE))
  found = f"{os.path.join(directory, FEATURES_FILE)} has shape {features.shape}"
  if features.ndim != 2:
    raise ValueError(f"Expected features [N, D]; {found}.")
  if features.shape != (info["rows"], info["dim"]):
    raise ValueError(
        f"Expected features of shape ({info['rows']}, {info['dim']}) as "
        f"recorded in {INFO_FILE}; {found}.")
  if labels.shape != (features.shape[0],):
    raise ValueError(
        f"Expected {features.shape[0]} labels (one per feature row) in "
        f"{LABELS_FILE}; found shape {labels.shape}.")
  if expected_dim is not None and features.shape[1] != expected_dim:
    raise ValueError(
        f"Expected features of width {expected_dim}; {found} (features of "
        f"another encoder or feature type: {info}).")
  if expected_rows is not None and features.shape[0] != expected_rows:
    raise ValueError(
        f"Expected {expected_rows} feature rows; {found} (another split or "
        f"max_examples: {info}).")
  return StoredFeatures(features=features, labels=labels,
                        directory=os.fspath(directory), info=info)


def extract_features(feature_fn: Callable[[tf.Tensor], tf.Tensor],
                     dataset: tf.data.Dataset,
                     directory: str,
                     dtype: str = "float32",
                     info: Optional[dict] = None) -> StoredFeatures:
  """Writes feature_fn(images) and the labels of an evaluation pipeline.

  Args:
    feature_fn: maps a batch of images to features [B, D]; run as a
      tf.function (e.g. E in inference mode, its AvePool output).
    dataset: batches {data.IMAGE: images, data.LABEL: labels}, e.g.
      data.evaluation_dataset(...). One pass; one batch in memory at a time.
    directory: where to write (see `write_features`).
    dtype: storage dtype, one of `DTYPES`.
    info: description for info.json.

  Returns:
    The written `StoredFeatures`.

  Raises:
    ValueError: batches without images or labels, or see `write_features`.
  """
  call = tf.function(feature_fn, reduce_retracing=True, autograph=False)

  def batches():
    for batch in dataset:
      if data.IMAGE not in batch or data.LABEL not in batch:
        raise ValueError(
            f"Expected batches with keys {data.IMAGE!r} and {data.LABEL!r} "
            f"(an evaluation pipeline with labels); received "
            f"{sorted(batch)}.")
      features = call(batch[data.IMAGE])
      yield np.asarray(features), np.asarray(batch[data.LABEL])

  return write_features(directory, batches(), dtype=dtype, info=info)
