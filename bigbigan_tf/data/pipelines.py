"""TFDS and image-folder sources, sharding, batching: the public pipelines.

`make_dataset` (gin configurable "make_dataset") builds the input of the
training loop and `load_arrays` (gin configurable "load_arrays") that of the
evaluation code; both take any source by name: "mnist5k" (prepared offline on
first use), "image_dir", or any TFDS image dataset. Sources are read as
records (TFDS examples or file paths) and decoded only after sharding, so
each input pipeline of a `tf.distribute` strategy decodes only its own
share; see the package docstring for the batch layout and batch sizes.
"""

from __future__ import annotations

import os
import pathlib
from typing import Callable, NamedTuple, Sequence

import gin
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from bigbigan_tf.data import augmentation as augmentation_lib
from bigbigan_tf.data import image_dir as image_dir_lib
from bigbigan_tf.data import keys
from bigbigan_tf.data import preparation
from bigbigan_tf.data.mnist5k import mnist5k_dataset_builder
from bigbigan_tf.networks import common

# The files `imagenet2012` expects in its manual directory (TFDS catalog).
_IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")

_DEFAULT_SHUFFLE_BUFFER = 10_000


# ---------------------------------------------------------------------------
# Sources: sharded records plus a function that decodes one record.
# ---------------------------------------------------------------------------


class _Source(NamedTuple):
  # Elements are whatever `read` accepts; sharding is already applied.
  records: tf.data.Dataset
  # Maps one record to (encoded image file contents [], int32 label []).
  read: Callable[[object], tuple[tf.Tensor, tf.Tensor]]
  # Encoded contents -> uint8 image [H, W, C].
  decode: Callable[[tf.Tensor], tf.Tensor]


def _shard(dataset: tf.data.Dataset,
           input_context: tf.distribute.InputContext | None
          ) -> tf.data.Dataset:
  if input_context is None or input_context.num_input_pipelines == 1:
    return dataset
  return dataset.shard(input_context.num_input_pipelines,
                       input_context.input_pipeline_id)


def _image_dir_source(image_dir: str | os.PathLike[str],
                      split: str,
                      validation_fraction: float | None,
                      input_context: tf.distribute.InputContext | None
                     ) -> _Source:
  folder = image_dir_lib.scan_image_folder(image_dir)
  image_dir_lib.warn_about_bad_files(folder)
  rows = image_dir_lib.select(folder, split, validation_fraction)
  paths = np.asarray(folder.paths)[rows]
  labels = folder.labels[rows]
  # A dict, not a tuple: Dataset.map would unpack a tuple into arguments.
  records = _shard(
      tf.data.Dataset.from_tensor_slices({"path": paths, "label": labels}),
      input_context)

  def read(record):
    return tf.io.read_file(record["path"]), record["label"]

  return _Source(records, read, image_dir_lib.decode_image_file_contents)


def _tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as err:
    raise ValueError(
        f"Unknown dataset {name!r}: expected {keys.MNIST5K!r}, "
        f"{keys.IMAGE_DIR!r} or the name of a TFDS dataset; check "
        f"tfds.list_builders() for the available names.") from err


def _manual_download_error(builder: tfds.core.DatasetBuilder,
                           manual_dir: pathlib.Path,
                           missing: Sequence[str]) -> FileNotFoundError:
  instructions = (builder.MANUAL_DOWNLOAD_INSTRUCTIONS or "").strip()
  wanted = f" (missing: {', '.join(missing)})" if missing else ""
  return FileNotFoundError(
      f"Dataset {builder.name!r} is not prepared in {builder.data_dir_root} "
      f"and needs a manual download: place its files in the manual directory "
      f"{manual_dir}{wanted}, as described at "
      f"https://www.tensorflow.org/datasets/catalog/{builder.name}, then run "
      f"again (or pass manual_dir=...). TFDS instructions: {instructions}")


def _prepare_tfds(builder: tfds.core.DatasetBuilder,
                  manual_dir: str | os.PathLike[str] | None,
                  download: bool) -> None:
  """Makes sure ``builder``'s files exist, preparing them when allowed."""
  if preparation.is_prepared(builder):
    return
  if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    manual_path = pathlib.Path(
        manual_dir if manual_dir is not None else builder.data_dir_root /
        "downloads" / "manual").expanduser()
    present = (set(os.listdir(manual_path))
               if manual_path.is_dir() else set())
    required = _IMAGENET_MANUAL_FILES if builder.name == keys.IMAGENET else ()
    missing = [file for file in required if file not in present]
    if missing or not present:
      raise _manual_download_error(builder, manual_path, missing)
    config = preparation.offline_download_config(
        manual_dir=manual_path)
  elif download:
    config = tfds.download.DownloadConfig(try_download_gcs=False)
  else:
    raise FileNotFoundError(
        f"Dataset {builder.name!r} is not prepared in {builder.data_dir_root}."
        f" Prepare it there first (`tfds build {builder.name} --data_dir="
        f"{builder.data_dir_root}`), or pass download=True to let TFDS "
        f"download it.")
  try:
    preparation.prepare_exclusively(builder, config)
  except ModuleNotFoundError as err:
    raise ModuleNotFoundError(
        f"Preparing dataset {builder.name!r} needs the Python module "
        f"{err.name!r}, which is not installed; pip install it and retry.",
        name=err.name) from err


def _tfds_source(builder: tfds.core.DatasetBuilder, split: str, *,
                 training: bool, seed: int | None, with_labels: bool,
                 input_context: tf.distribute.InputContext | None) -> _Source:
  """Reads a prepared TFDS split, images left encoded until after sharding."""
  features = builder.info.features
  image_key, label_key = keys.IMAGE, keys.LABEL
  if builder.info.supervised_keys and isinstance(
      builder.info.supervised_keys[0], str):
    image_key, label_key = builder.info.supervised_keys[:2]
  if image_key not in features or not isinstance(features[image_key],
                                                 tfds.features.Image):
    raise ValueError(
        f"Expected dataset {builder.name!r} to have an image feature "
        f"{image_key!r}, got features {sorted(features.keys())}.")
  image_feature = features[image_key]
  if image_feature.np_dtype != np.uint8:
    raise ValueError(f"Expected uint8 images in dataset {builder.name!r}, got "
                     f"{image_feature.np_dtype}.")
  has_label = label_key in features and isinstance(features[label_key],
                                                   tfds.features.ClassLabel)
  if with_labels and not has_label:
    raise ValueError(
        f"with_labels=True needs a class-label feature {label_key!r} in "
        f"dataset {builder.name!r}, got features {sorted(features.keys())}.")

  # Shard by files when there are enough of them (cheaper on large datasets),
  # otherwise by examples.
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  try:
    num_files = builder.info.splits[split].num_shards
  except (KeyError, ValueError, AttributeError):
    num_files = 0
  shard_files = num_pipelines > 1 and num_files >= num_pipelines
  read_config = tfds.ReadConfig(
      shuffle_seed=seed,
      # tfds caches small datasets in memory; that pays off only for the
      # repeated training input, and one-pass readers that stop early (the
      # image grids' fixed batch) would discard a partial cache with a
      # warning.
      try_autocache=training,
      input_context=input_context if shard_files else None)
  records = builder.as_dataset(
      split=split,
      # Ordered datasets (mnist5k) refuse file shuffling; examples are
      # shuffled later anyway.
      shuffle_files=training and not builder.info.disable_shuffling,
      decoders={image_key: tfds.decode.SkipDecoding()},
      read_config=read_config)
  if not shard_files:
    records = _shard(records, input_context)

  def read(record):
    if has_label:
      label = tf.cast(record[label_key], tf.int32)
    else:
      label = tf.constant(keys.UNLABELLED, tf.int32)
    return record[image_key], label

  return _Source(records, read, image_feature.decode_example)


# ---------------------------------------------------------------------------
# Argument checks.
# ---------------------------------------------------------------------------


def _pool_factor(resolution: int, d_resolution: int | None) -> int | None:
  """Validates d_resolution; returns the pooling factor or None (no image_d)."""
  if d_resolution is None:
    return None
  common.check_int(d_resolution, "d_resolution")
  if d_resolution > resolution:
    raise ValueError(f"Expected d_resolution <= resolution ({resolution}), "
                     f"got d_resolution={d_resolution}.")
  if resolution % d_resolution:
    raise ValueError(
        f"Expected resolution ({resolution}) to be an integer multiple of "
        f"d_resolution, got d_resolution={d_resolution}.")
  factor = resolution // d_resolution
  return factor if factor > 1 else None


# ---------------------------------------------------------------------------
# Public pipelines.
# ---------------------------------------------------------------------------


def _build_dataset(name: str,
                   split: str,
                   resolution: int,
                   batch_size: int,
                   *,
                   augmentation: str = "none",
                   d_resolution: int | None = None,
                   training: bool = True,
                   data_dir: str | os.PathLike[str] | None = None,
                   image_dir: str | os.PathLike[str] | None = None,
                   validation_fraction: float | None = None,
                   manual_dir: str | os.PathLike[str] | None = None,
                   download: bool = False,
                   seed: int | None = None,
                   input_context: tf.distribute.InputContext | None = None,
                   with_labels: bool = False,
                   shuffle_buffer_size: int = _DEFAULT_SHUFFLE_BUFFER,
                   drop_remainder: bool | None = None,
                   deterministic_order: bool = True,
                   image_dtype: str = "float32") -> tf.data.Dataset:
  """Implementation of `make_dataset` (not bound by gin); see there."""
  common.check_int(resolution, "resolution")
  common.check_int(batch_size, "batch_size")
  common.check_int(shuffle_buffer_size, "shuffle_buffer_size")
  if image_dtype not in augmentation_lib.IMAGE_DTYPES:
    raise ValueError(f"Unknown image_dtype {image_dtype!r}; expected one of "
                     f"{', '.join(augmentation_lib.IMAGE_DTYPES)}.")
  if augmentation not in augmentation_lib.AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation {augmentation!r}; expected one of "
                     f"{', '.join(augmentation_lib.AUGMENTATIONS)}.")
  pool_factor = _pool_factor(resolution, d_resolution)
  if name == keys.IMAGE_DIR and image_dir is None:
    raise ValueError(f"name={keys.IMAGE_DIR!r} needs image_dir=<directory>, "
                     "got image_dir=None.")
  if name != keys.IMAGE_DIR and image_dir is not None:
    raise ValueError(f"image_dir is only used with name={keys.IMAGE_DIR!r}, "
                     f"got name={name!r} and "
                     f"image_dir={os.fspath(image_dir)!r}.")
  if validation_fraction is not None:
    if name != keys.IMAGE_DIR:
      raise ValueError(
          f"validation_fraction is only used with name={keys.IMAGE_DIR!r} "
          f"(TFDS datasets have splits), got name={name!r} and "
          f"validation_fraction={validation_fraction!r}.")
    image_dir_lib.check_validation_fraction(validation_fraction)

  if input_context is not None:
    local_batch = input_context.get_per_replica_batch_size(batch_size)
    if seed is not None:
      # Different shards must not draw the same augmentations.
      seed = seed + 1_000_003 * input_context.input_pipeline_id
  else:
    local_batch = batch_size
  data_dir = None if data_dir is None else os.fspath(data_dir)

  if name == keys.IMAGE_DIR:
    source = _image_dir_source(image_dir, split, validation_fraction,
                               input_context)
  else:
    if name == keys.MNIST5K:
      builder = mnist5k_dataset_builder.prepare_mnist5k(data_dir)
    else:
      builder = _tfds_builder(name, data_dir)
      _prepare_tfds(builder, manual_dir, download)
    source = _tfds_source(
        builder,
        split,
        training=training,
        seed=seed,
        with_labels=with_labels,
        input_context=input_context)

  def preprocess(record, example_seed=None):
    contents, label = source.read(record)
    image = augmentation_lib.preprocess(
        contents,
        example_seed,
        augmentation=augmentation,
        training=training,
        resolution=resolution,
        decode=source.decode)
    return {keys.IMAGE: image, keys.LABEL: label}

  dataset = source.records
  if training:
    dataset = dataset.shuffle(
        shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    # One int64 [2] seed per example for the stateless augmentation ops.
    example_seeds = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((dataset, example_seeds))
  dataset = dataset.map(
      preprocess, num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=deterministic_order or not training)
  if drop_remainder is None:
    drop_remainder = training
  dataset = dataset.batch(local_batch, drop_remainder=drop_remainder)

  def finish_batch(batch):
    outputs = {keys.IMAGE: batch[keys.IMAGE]}
    if pool_factor is not None:
      outputs[keys.IMAGE_D] = common.pool_to_resolution(batch[keys.IMAGE],
                                                        d_resolution)
    if image_dtype == "uint8":
      outputs = {k: augmentation_lib.to_uint8(v) for k, v in outputs.items()}
    if with_labels:
      outputs[keys.LABEL] = batch[keys.LABEL]
    return outputs

  dataset = dataset.map(finish_batch, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


# Registered under the package, as before it was split into modules, so that
# full selectors ("bigbigan_tf.data.make_dataset") keep working.
@gin.configurable(
    "make_dataset", module="bigbigan_tf.data", denylist=["input_context"])
def make_dataset(name: str,
                 split: str,
                 resolution: int,
                 batch_size: int,
                 *,
                 augmentation: str = "none",
                 d_resolution: int | None = None,
                 training: bool = True,
                 data_dir: str | os.PathLike[str] | None = None,
                 image_dir: str | os.PathLike[str] | None = None,
                 validation_fraction: float | None = None,
                 manual_dir: str | os.PathLike[str] | None = None,
                 download: bool = False,
                 seed: int | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 with_labels: bool = False,
                 shuffle_buffer_size: int = _DEFAULT_SHUFFLE_BUFFER,
                 drop_remainder: bool | None = None,
                 deterministic_order: bool = True,
                 image_dtype: str = "float32") -> tf.data.Dataset:
  """Builds the batched input pipeline for training or evaluation.

  Args:
    name: "mnist5k", "image_dir", "imagenet2012" or another TFDS image
      dataset name.
    split: TFDS split, e.g. "train", "test", "validation" or
      "train[:90%]". For "image_dir": ignored without ``validation_fraction``
      (the whole folder); with it, "train" is the training part and "test"
      or "validation" the held-out part.
    resolution: side of the square output images.
    batch_size: GLOBAL batch size; with ``input_context``, each pipeline
      batches ``input_context.get_per_replica_batch_size(batch_size)``.
    augmentation: one of `AUGMENTATIONS` (see the augmentation module).
    d_resolution: discriminator resolution; when smaller than ``resolution``
      (of which it must divide evenly) the batches also hold ``IMAGE_D``,
      ``IMAGE`` average-pooled down to ``d_resolution``.
    training: True: shuffle (seeded by ``seed``), repeat forever, random
      augmentation, drop the last partial batch, so every batch has a fully
      static shape. False: one pass in a fixed order without randomness (for
      evaluation); the last batch may be smaller unless ``drop_remainder``.
    data_dir: TFDS data directory; None means the TFDS default.
    image_dir: directory of images, only with ``name="image_dir"``: class
      folders ``image_dir/<class>/...`` (labels by sorted class name) or
      images directly in it (unlabelled); a local path or gs://.
    validation_fraction: only with ``name="image_dir"``: hold out this
      share of every class (stratified, fixed seed), selected by ``split``.
    manual_dir: where manually downloaded files (the ImageNet tars) are;
      None means ``<data_dir>/downloads/manual``.
    download: whether TFDS may download a missing dataset; False keeps the
      pipeline offline (mnist5k and image_dir never download).
    seed: seed for shuffling and augmentation; None for a random one.
    input_context: set by `tf.distribute` (see `distributed_dataset`): shards
      the data by ``input_pipeline_id`` and batches per replica.
    with_labels: also yield ``LABEL`` (int32 [B]; -1 for the images of an
      unlabelled folder or dataset).
    shuffle_buffer_size: examples in the shuffle buffer when training.
    drop_remainder: overrides the default (``training``) for the last batch.
    deterministic_order: when training, keep the order of the decoded
      examples (the same batches for the same seed, also after a resume);
      False lets parallel decoding hand over whichever example is ready
      first (faster on a busy host; ImageNet configs). Evaluation always
      keeps the order.
    image_dtype: "float32": images in [-1, 1]; "uint8": the same images as
      the nearest pixel values 0-255, a quarter of the bytes to send to the
      accelerators, where the training step scales them
      (`to_model_range`; ImageNet configs).

  Returns:
    A dataset of dicts {IMAGE: float32 [B, resolution, resolution, 3] in
    [-1, 1] (uint8 0-255 with image_dtype="uint8"), optionally IMAGE_D (the
    same dtype) and LABEL}.

  Raises:
    ValueError: on an unknown dataset name or augmentation, bad sizes, a
      missing, empty or unreadable image directory, or a dataset without the
      needed features.
    FileNotFoundError: when a TFDS dataset is not prepared and cannot be
      prepared offline (for ImageNet: its tars are not in the manual
      directory).
  """
  return _build_dataset(
      name,
      split,
      resolution,
      batch_size,
      augmentation=augmentation,
      d_resolution=d_resolution,
      training=training,
      data_dir=data_dir,
      image_dir=image_dir,
      validation_fraction=validation_fraction,
      manual_dir=manual_dir,
      download=download,
      seed=seed,
      input_context=input_context,
      with_labels=with_labels,
      shuffle_buffer_size=shuffle_buffer_size,
      drop_remainder=drop_remainder,
      deterministic_order=deterministic_order,
      image_dtype=image_dtype)


def distributed_dataset(strategy: tf.distribute.Strategy,
                        global_batch_size: int,
                        **dataset_kwargs) -> tf.distribute.DistributedDataset:
  """Distributes `make_dataset` over the replicas of ``strategy``.

  Each input pipeline calls `make_dataset` with its ``input_context``, so it
  reads its own shard; every replica receives
  ``global_batch_size / strategy.num_replicas_in_sync`` examples per step.
  Pipelines: one per worker under MultiWorkerMirroredStrategy; under
  TPUStrategy (one client, on worker 0 of a pod) one per TPU host, built
  under that host's CPU device and feeding its cores, so each host reads
  and decodes only its shard (files when the split has at least as many as
  there are hosts, else examples) and sends each core its per-replica batch.

  Args:
    strategy: the distribution strategy of the training loop.
    global_batch_size: batch size summed over all replicas; must divide evenly
      by the number of replicas.
    **dataset_kwargs: the other arguments of `make_dataset` (name, split,
      resolution, ...); those not given come from gin bindings of
      "make_dataset". Misspelt names raise TypeError.

  Returns:
    The distributed dataset.
  """
  if "batch_size" in dataset_kwargs or "input_context" in dataset_kwargs:
    raise TypeError("distributed_dataset sets batch_size (from "
                    "global_batch_size) and input_context itself; got "
                    f"{sorted(dataset_kwargs)}.")

  def dataset_fn(input_context: tf.distribute.InputContext) -> tf.data.Dataset:
    return make_dataset(
        batch_size=global_batch_size,
        input_context=input_context,
        **dataset_kwargs)

  return strategy.distribute_datasets_from_function(dataset_fn)


def evaluation_dataset(name: str,
                       split: str,
                       resolution: int,
                       *,
                       augmentation: str = "none",
                       data_dir: str | os.PathLike[str] | None = None,
                       image_dir: str | os.PathLike[str] | None = None,
                       validation_fraction: float | None = None,
                       manual_dir: str | os.PathLike[str] | None = None,
                       download: bool = False,
                       max_examples: int | None = None,
                       batch_size: int = 250) -> tf.data.Dataset:
  """The evaluation pipeline of one split: one pass, labelled batches.

  Fixed order, no random augmentation (``training=False``); for mnist5k the
  order is that of the stratified split. `load_arrays` collects it into
  memory; streamed evaluation (bigbigan_tf.evaluate with a feature_dir)
  iterates over it batch by batch. Arguments as in `load_arrays`.

  Returns:
    A dataset of dicts {IMAGE: float32 [B, resolution, resolution, 3] in
    [-1, 1], LABEL: int32 [B]}; B = batch_size except maybe in the last batch.
  """
  if max_examples is not None:
    common.check_int(max_examples, "max_examples")
  dataset = _build_dataset(
      name,
      split,
      resolution,
      batch_size,
      augmentation=augmentation,
      training=False,
      data_dir=data_dir,
      image_dir=image_dir,
      validation_fraction=validation_fraction,
      manual_dir=manual_dir,
      download=download,
      with_labels=True)
  if max_examples is not None:
    dataset = dataset.unbatch().take(max_examples).batch(batch_size)
  return dataset


@gin.configurable("load_arrays", module="bigbigan_tf.data")
def load_arrays(name: str,
                split: str,
                resolution: int,
                *,
                augmentation: str = "none",
                data_dir: str | os.PathLike[str] | None = None,
                image_dir: str | os.PathLike[str] | None = None,
                validation_fraction: float | None = None,
                manual_dir: str | os.PathLike[str] | None = None,
                download: bool = False,
                max_examples: int | None = None,
                batch_size: int = 250) -> tuple[np.ndarray, np.ndarray]:
  """Loads a whole split into memory, for evaluation code.

  Uses the evaluation pipeline (`evaluation_dataset`, ``training=False``):
  fixed order, no random augmentation. For mnist5k the order is that of the
  stratified split. Its gin bindings (e.g. ``load_arrays.augmentation``)
  also configure the streamed evaluation's pipeline.

  Args:
    name: dataset name, as in `make_dataset`.
    split: split, as in `make_dataset`.
    resolution: side of the square output images.
    augmentation: evaluation-time variant of this augmentation (see the
      augmentation module); "none" resizes the whole (square) image.
    data_dir: TFDS data directory; None means the TFDS default.
    image_dir: directory of images, only with ``name="image_dir"`` (see
      `make_dataset`).
    validation_fraction: see `make_dataset`.
    manual_dir: see `make_dataset`.
    download: see `make_dataset`.
    max_examples: stop after this many examples; None loads everything.
    batch_size: examples decoded per step (does not change the result).

  Returns:
    images: float32 [N, resolution, resolution, 3] in [-1, 1].
    labels: int32 [N] (-1 for the images of an unlabelled folder).
  """
  dataset = evaluation_dataset(
      name,
      split,
      resolution,
      augmentation=augmentation,
      data_dir=data_dir,
      image_dir=image_dir,
      validation_fraction=validation_fraction,
      manual_dir=manual_dir,
      download=download,
      max_examples=max_examples,
      batch_size=batch_size)
  image_batches, label_batches = [], []
  for batch in dataset.as_numpy_iterator():
    image_batches.append(batch[keys.IMAGE])
    label_batches.append(batch[keys.LABEL])
  if not image_batches:
    return (np.zeros([0, resolution, resolution, 3], np.float32),
            np.zeros([0], np.int32))
  return np.concatenate(image_batches), np.concatenate(label_batches)
