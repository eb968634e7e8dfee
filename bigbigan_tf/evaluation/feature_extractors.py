"""Classifier feature extractors for FID, IS and KID.

The reference network is TF-GAN's Inception module ("tfgan/eval/inception" on
TF-Hub, `INCEPTION_TFHUB_HANDLE`). Its interface, which `inception_extractor`
expects from whatever handle or local path it is given:

  outputs = hub.load(handle)(images)
  images:  float32 [N, 299, 299, 3], values in [-1, 1]
  outputs: dict with "pool_3" float32 [N, 2048] (the final average pool, used
           for FID/KID) and "logits" float32 [N, 1008] (used for IS).

Nothing can be downloaded on the development machines, so the handle is
usually a local copy of the module (or a cache directory set through
TFHUB_CACHE_DIR).

Any other classifier SavedModel can be used the same way, e.g. an MNIST
classifier for a "domain FID" on small datasets: name the endpoint (a
signature such as "serving_default", or a callable attribute of the loaded
object; the object's own `__call__` when omitted), the output keys of the
features and of the logits, the input size, channel count and value range.
Images are always given to the extractor in [-1, 1], NHWC, with 1 or 3
channels; the extractor converts channels, resizes (bilinear) and rescales
them to what the classifier expects, and runs it in batches.
"""

from typing import (Callable, Iterable, List, Mapping, Optional, Sequence,
                    Tuple, Union)

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from bigbigan_tf.evaluation import metrics

INCEPTION_TFHUB_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_POOL_KEY = "pool_3"
INCEPTION_LOGITS_KEY = "logits"
INCEPTION_IMAGE_SIZE = 299

ClassifierFn = Callable[[tf.Tensor], Mapping[str, tf.Tensor]]


def _hub():
  """tensorflow_hub, imported where a module is loaded: it requires the
  `tensorflow` distribution (through tf-keras), which a TPU VM's TensorFlow
  is not, so training does not need it."""
  try:
    import tensorflow_hub  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise ImportError(
        "Loading a TF-Hub module needs tensorflow-hub: pip install "
        "'bigbigan_tf[cpu]' (CPU/GPU), or on a TPU VM pip install --no-deps "
        "tensorflow-hub.") from error
  return tensorflow_hub


def _signature_caller(signature: Callable[..., Mapping[str, tf.Tensor]],
                      endpoint: str) -> ClassifierFn:
  """Wraps a keyword-only SavedModel signature as a one-argument function."""
  _, input_specs = signature.structured_input_signature
  if len(input_specs) != 1:
    raise ValueError(
        f"Signature {endpoint!r} must take exactly one input (the images); "
        f"found inputs {sorted(input_specs)}.")
  (input_name,) = input_specs
  return lambda images: signature(**{input_name: images})


def load_classifier(handle: str,
                    endpoint: Optional[str] = None) -> ClassifierFn:
  """Loads a classifier SavedModel or TF-Hub module as `images -> outputs`.

  Args:
    handle: a TF-Hub handle or a local SavedModel directory.
    endpoint: a signature name (e.g. "serving_default") or the name of a
      callable attribute of the loaded object. If None, the loaded object is
      called directly (TF-GAN's Inception module), falling back to the
      "serving_default" signature when the object is not callable.

  Returns:
    A function mapping a float32 image batch to a dict of output tensors.

  Raises:
    ValueError: if `endpoint` names neither a signature nor a callable
      attribute, or if no endpoint is given and the object has neither
      `__call__` nor a "serving_default" signature.
  """
  loaded = _hub().load(handle)
  signatures = getattr(loaded, "signatures", {})
  if endpoint is None:
    if callable(loaded):
      return loaded
    if "serving_default" in signatures:
      return _signature_caller(signatures["serving_default"],
                               "serving_default")
    raise ValueError(
        f"Classifier {handle!r} is not callable and has no "
        "'serving_default' signature; name an endpoint. Signatures found: "
        f"{sorted(signatures)}.")
  if endpoint in signatures:
    return _signature_caller(signatures[endpoint], endpoint)
  attribute = getattr(loaded, endpoint, None)
  if callable(attribute):
    return attribute
  raise ValueError(
      f"Classifier {handle!r} has no endpoint {endpoint!r}: expected a "
      f"signature or a callable attribute; signatures found: "
      f"{sorted(signatures)}.")


def _pair(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
  """Returns an image size as (height, width)."""
  if isinstance(size, int):
    return size, size
  height, width = size
  return int(height), int(width)


@gin.configurable("classifier_extractor")
class ClassifierFeatureExtractor:
  """Runs a classifier on images in [-1, 1] and returns features and logits.

  Usage:
    extractor = inception_extractor("/path/to/tfgan_inception")
    features, logits = extractor(images)  # images [N, H, W, 3] in [-1, 1]
    fid = metrics.fid_from_activations(features, real_features)
    is_mean, is_std = metrics.inception_score(logits)
  """

  def __init__(self,
               classifier: Union[str, ClassifierFn] = gin.REQUIRED,
               feature_key: str = gin.REQUIRED,
               logits_key: Optional[str] = None,
               image_size: Union[int, Sequence[int]] = gin.REQUIRED,
               num_channels: int = 3,
               input_range: Tuple[float, float] = (-1.0, 1.0),
               batch_size: int = 100,
               endpoint: Optional[str] = None,
               name: Optional[str] = None):
    """Loads (if needed) and checks the classifier.

    Args:
      classifier: a TF-Hub handle or SavedModel path (loaded with
        `load_classifier(classifier, endpoint)`), or a function mapping an
        image batch to a dict of outputs.
      feature_key: output key of the features (flattened to [N, D]).
      logits_key: output key of the logits, or None if not needed.
      image_size: input height and width of the classifier (int or pair).
      num_channels: input channels of the classifier, 1 or 3. RGB inputs are
        averaged to one channel; grayscale inputs are repeated to three.
      input_range: (low, high) value range the classifier expects; images are
        mapped linearly from [-1, 1] to it.
      batch_size: images per classifier call.
      endpoint: see `load_classifier`; only used when `classifier` is a path.
      name: a short name used in descriptions of cached statistics; defaults
        to the handle, or "classifier".

    Raises:
      ValueError: on invalid arguments, or if the classifier's outputs lack
        `feature_key` or `logits_key` (the message names the expected keys
        and the keys found).
    """
    if num_channels not in (1, 3):
      raise ValueError(f"num_channels must be 1 or 3; received {num_channels}.")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; received {batch_size}.")
    low, high = input_range
    if not high > low:
      raise ValueError(
          f"input_range must be (low, high) with high > low; received "
          f"{input_range}.")
    if isinstance(classifier, str):
      self._classifier = load_classifier(classifier, endpoint)
      default_name = classifier
    else:
      self._classifier = classifier
      default_name = "classifier"
    self.name = name or default_name
    self.feature_key = feature_key
    self.logits_key = logits_key
    self.image_size = _pair(image_size)
    self.num_channels = num_channels
    self.input_range = (float(low), float(high))
    self.batch_size = batch_size
    self._check_outputs()

  @property
  def description(self) -> str:
    """Names the extractor and feature, for cached reference statistics."""
    return f"{self.name}:{self.feature_key}"

  def _expected_keys(self) -> List[str]:
    return [key for key in (self.feature_key, self.logits_key) if key]

  def _check_outputs(self) -> None:
    """Runs the classifier on one blank image and checks its output keys.

    Raises:
      ValueError: if the classifier rejects the input shape or its outputs
        lack an expected key.
    """
    probe_shape = (1,) + self.image_size + (self.num_channels,)
    try:
      outputs = self._classifier(tf.zeros(probe_shape, tf.float32))
    except (TypeError, ValueError, tf.errors.OpError) as error:
      # TF's message may print the whole probe tensor; keep both ends of it.
      reason = str(error)
      if len(reason) > 600:
        reason = f"{reason[:250]} ... {reason[-300:]}"
      raise ValueError(
          f"Classifier {self.name!r} failed on a probe batch of shape "
          f"{probe_shape} (from image_size and num_channels): {reason}"
      ) from error
    if not isinstance(outputs, Mapping):
      raise ValueError(
          f"Classifier {self.name!r} must return a dict with keys "
          f"{self._expected_keys()}; it returned a {type(outputs).__name__}.")
    missing = [key for key in self._expected_keys() if key not in outputs]
    if missing:
      raise ValueError(
          f"Classifier {self.name!r} must return outputs "
          f"{self._expected_keys()}; missing {missing}, found keys "
          f"{sorted(outputs)}.")

  def preprocess(self, images: tf.Tensor) -> tf.Tensor:
    """Converts images in [-1, 1] to the classifier's size, channels, range.

    Args:
      images: [N, H, W, C] with C in {1, 3}, values in [-1, 1].

    Returns:
      float32 [N, image_size[0], image_size[1], num_channels] in input_range.

    Raises:
      ValueError: if `images` is not 4-D with 1 or 3 channels.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(
          "Images must be [N, H, W, C] with C in {1, 3}; received shape "
          f"{images.shape}.")
    if images.shape[-1] != self.num_channels:
      if self.num_channels == 3:
        images = tf.repeat(images, 3, axis=-1)
      else:
        images = tf.reduce_mean(images, axis=-1, keepdims=True)
    if tuple(images.shape[1:3]) != self.image_size:
      images = tf.image.resize(images, self.image_size, method="bilinear")
    low, high = self.input_range
    return low + (images + 1.0) * (0.5 * (high - low))

  def _run_batch(
      self, images: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    outputs = self._classifier(self.preprocess(images))
    features = tf.reshape(outputs[self.feature_key], (images.shape[0], -1))
    logits = None
    if self.logits_key:
      logits = tf.reshape(outputs[self.logits_key], (images.shape[0], -1))
      logits = np.asarray(logits, np.float32)
    return np.asarray(features, np.float32), logits

  def extract_batches(
      self, batches: Iterable[np.ndarray]
  ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Runs the classifier over an iterable of image batches.

    Args:
      batches: arrays [n_i, H, W, C] in [-1, 1] (e.g. generator samples);
        each is split further into chunks of at most `batch_size`.

    Returns:
      (features [N, D], logits [N, K] or None when `logits_key` is None),
      float32.

    Raises:
      ValueError: if `batches` is empty.
    """
    features, logits = [], []
    for batch in batches:
      batch = np.asarray(batch, np.float32)
      for start in range(0, batch.shape[0], self.batch_size):
        batch_features, batch_logits = self._run_batch(
            batch[start:start + self.batch_size])
        features.append(batch_features)
        logits.append(batch_logits)
    if not features:
      raise ValueError("No images were given to the feature extractor.")
    all_logits = np.concatenate(logits) if self.logits_key else None
    return np.concatenate(features), all_logits

  def __call__(
      self, images: np.ndarray) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Features and logits of `images` [N, H, W, C] in [-1, 1]."""
    return self.extract_batches([images])


@gin.configurable("inception_extractor")
def inception_extractor(
    handle: str = INCEPTION_TFHUB_HANDLE,
    batch_size: int = 100) -> ClassifierFeatureExtractor:
  """Extractor for TF-GAN's Inception module: ("pool_3", "logits") at 299x299.

  Args:
    handle: TF-Hub handle or local path of a module with the TF-GAN
      Inception interface (see the module docstring).
    batch_size: images per call.

  Returns:
    A `ClassifierFeatureExtractor` returning [N, 2048] pool_3 features and
    [N, 1008] logits for the real module.
  """
  return ClassifierFeatureExtractor(
      classifier=handle,
      feature_key=INCEPTION_POOL_KEY,
      logits_key=INCEPTION_LOGITS_KEY,
      image_size=INCEPTION_IMAGE_SIZE,
      num_channels=3,
      input_range=(-1.0, 1.0),
      batch_size=batch_size,
      name="tfgan_inception")


def reference_statistics(
    extractor: ClassifierFeatureExtractor,
    batches_fn: Callable[[], Iterable[np.ndarray]],
    cache_path: Optional[str],
    dataset_description: str) -> metrics.ReferenceStatistics:
  """Loads cached reference statistics, computing and caching them if absent.

  The stored description is "<dataset_description>/<extractor.description>",
  so a cache computed on another dataset, split or network is rejected.

  Args:
    extractor: the feature extractor.
    batches_fn: returns the real image batches in [-1, 1]; only called when
      the cache is missing.
    cache_path: .npz file of the cache, or None not to cache.
    dataset_description: e.g. "imagenet2012/train".

  Returns:
    The reference `metrics.ReferenceStatistics`.

  Raises:
    ValueError: if the cache exists but describes other data or features.
  """
  description = f"{dataset_description}/{extractor.description}"
  if cache_path and tf.io.gfile.exists(cache_path):
    return metrics.load_statistics(cache_path, description)
  features, _ = extractor.extract_batches(batches_fn())
  statistics = metrics.ReferenceStatistics.from_activations(
      features, description)
  if cache_path:
    metrics.save_statistics(cache_path, statistics)
    logging.info("Wrote reference statistics %r (%d samples) to %s.",
                 description, statistics.count, cache_path)
  return statistics
