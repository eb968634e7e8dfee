"""Per-image preprocessing and augmentation: uint8 image -> [-1, 1] square.

The augmentations (`AUGMENTATIONS`) are those of the paper's experiments:

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

Random ops are stateless and take a per-example seed, so that a pipeline
built with the same seed yields the same batches, whatever the parallelism.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

AUGMENTATIONS = ("none", "resnet", "table3")

# ResNet-style augmentation constants (Szegedy et al. 2015; He et al. 2016).
_RESNET_AREA_RANGE = (0.08, 1.0)
_RESNET_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)
_RESNET_MIN_OBJECT_COVERED = 0.1
_RESNET_MAX_ATTEMPTS = 10
_EVAL_CENTRAL_FRACTION = 0.875


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


def _random_size_window(image_shape: tf.Tensor, seed: tf.Tensor
                       ) -> tuple[tf.Tensor, tf.Tensor]:
  """Inception-style crop window (random area and aspect ratio) of an image
  of shape [H, W, C]: (begin [3], size [3]) for tf.slice."""
  whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
  begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
      image_shape,
      bounding_boxes=whole_image,
      seed=seed,
      min_object_covered=_RESNET_MIN_OBJECT_COVERED,
      aspect_ratio_range=_RESNET_ASPECT_RANGE,
      area_range=_RESNET_AREA_RANGE,
      max_attempts=_RESNET_MAX_ATTEMPTS,
      use_image_if_no_bounding_boxes=True)
  return begin, size


def _random_size_crop(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Inception-style crop: random area and aspect ratio."""
  begin, size = _random_size_window(tf.shape(image), seed)
  return tf.slice(image, begin, size)


def _decode_random_size_crop(contents: tf.Tensor,
                             decode: Callable[[tf.Tensor], tf.Tensor],
                             seed: tf.Tensor) -> tf.Tensor:
  """`_random_size_crop` of the image encoded in `contents`; a JPEG decodes
  only the window (tf.io.decode_and_crop_jpeg: the same pixels, a fraction
  of the work for the ResNet crop's mean window of about half the image)."""

  def jpeg_window():
    begin, size = _random_size_window(tf.image.extract_jpeg_shape(contents),
                                      seed)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    return tf.io.decode_and_crop_jpeg(contents, window, channels=3)

  def whole_then_crop():
    return _random_size_crop(_to_rgb(decode(contents)), seed)

  return tf.cond(tf.io.is_jpeg(contents), jpeg_window, whole_then_crop)


IMAGE_DTYPES = ("float32", "uint8")


def to_uint8(images: tf.Tensor) -> tf.Tensor:
  """[-1, 1] floats -> the nearest uint8 pixel values (x + 1) * 127.5."""
  return tf.cast(tf.round(tf.clip_by_value((images + 1.0) * 127.5, 0.0,
                                           255.0)), tf.uint8)


def to_model_range(images: tf.Tensor) -> tf.Tensor:
  """The networks' input, float32 in [-1, 1], from a pipeline's images:
  uint8 pixel values (make_dataset's image_dtype="uint8") are scaled, float
  images pass unchanged. Runs where it is called: in the training step, on
  the accelerator."""
  if images.dtype == tf.uint8:
    return tf.cast(images, tf.float32) / 127.5 - 1.0
  return images


def preprocess(image: tf.Tensor, seed: tf.Tensor | None, *, augmentation: str,
               training: bool, resolution: int,
               decode: Callable[[tf.Tensor], tf.Tensor] | None = None
              ) -> tf.Tensor:
  """uint8 [H, W, C] -> float32 [resolution, resolution, 3] in [-1, 1].

  Args:
    image: uint8 image with 1, 3 or 4 channels; with `decode`, the encoded
      file contents (a scalar string) that `decode` turns into one.
    seed: int64 [2] seed for the random ops; None when not training.
    augmentation: one of `AUGMENTATIONS`.
    training: random crops and flips when True, central crops when False.
    resolution: output side.
    decode: decodes `image`'s contents; given, the ResNet training crop
      decodes only its window of a JPEG.

  Returns:
    The preprocessed image.
  """
  randomize = training and augmentation != "none"
  if randomize:
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=2))
  if augmentation == "resnet" and training:
    if decode is None:
      image = _random_size_crop(_to_rgb(image), crop_seed)
    else:
      image = _decode_random_size_crop(image, decode, crop_seed)
  else:
    image = _to_rgb(image if decode is None else decode(image))
    if augmentation == "resnet":
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
