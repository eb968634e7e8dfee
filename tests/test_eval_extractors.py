"""Tests of the classifier feature extractors with small stand-in SavedModels.

The real TF-GAN Inception module cannot be downloaded here, so each test saves
a tiny random conv net with the same interface (images in, a dict with
"pool_3" and "logits" out) and loads it through the library's loader.
"""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf.evaluation import feature_extractors
from bigbigan_tf.evaluation import metrics


class _TinyClassifier(tf.Module):
  """A random conv net: images -> {features [N, 16], logits [N, 10]}."""

  def __init__(self, image_size, channels, feature_key="pool_3",
               logits_key="logits"):
    super().__init__()
    rng = np.random.default_rng(0)
    self.kernel = tf.Variable(
        rng.normal(size=(3, 3, channels, 16)).astype(np.float32) * 0.5)
    self.dense = tf.Variable(rng.normal(size=(16, 10)).astype(np.float32))
    self._keys = (feature_key, logits_key)
    spec = tf.TensorSpec([None, image_size, image_size, channels], tf.float32)
    self.__call__ = tf.function(self._forward, input_signature=[spec])

  def _forward(self, images):
    hidden = tf.nn.relu(tf.nn.conv2d(images, self.kernel, 2, "SAME"))
    pool = tf.reduce_mean(hidden, axis=[1, 2])
    return {self._keys[0]: pool, self._keys[1]: pool @ self.dense}


def _save(module, path, signatures=None):
  tf.saved_model.save(module, str(path), signatures=signatures)
  return str(path)


def _images(seed, count, size, channels=3, shift=0.0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, size=(count, size, size, channels)) * 0.5 + shift
  return np.clip(images, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def inception_standin(tmp_path_factory):
  """A SavedModel with the TF-GAN Inception interface at 299x299."""
  module = _TinyClassifier(299, 3)
  return _save(module, tmp_path_factory.mktemp("inception") / "module")


def test_inception_extractor_resizes_and_matches_direct_call(inception_standin):
  extractor = feature_extractors.inception_extractor(inception_standin,
                                                     batch_size=3)
  images = _images(0, 5, 32)
  features, logits = extractor(images)
  assert features.shape == (5, 16) and logits.shape == (5, 10)

  direct = tf.saved_model.load(inception_standin)(
      tf.image.resize(images, (299, 299), method="bilinear"))
  np.testing.assert_allclose(features, direct["pool_3"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logits, direct["logits"], rtol=1e-5, atol=1e-5)
  assert extractor.description == "tfgan_inception:pool_3"


def test_fid_and_is_through_the_loaded_module(tmp_path):
  path = _save(_TinyClassifier(32, 3), tmp_path / "module")
  extractor = feature_extractors.ClassifierFeatureExtractor(
      path, feature_key="pool_3", logits_key="logits", image_size=32,
      batch_size=16)
  real_features, real_logits = extractor(_images(1, 40, 32))
  same_features, _ = extractor(_images(1, 40, 32))
  other_features, _ = extractor(_images(2, 40, 32, shift=0.4))

  assert metrics.fid_from_activations(real_features, same_features) == (
      pytest.approx(0.0, abs=1e-6))
  assert metrics.fid_from_activations(real_features, other_features) > 1e-3
  is_mean, _ = metrics.inception_score(real_logits, num_splits=4)
  assert 1.0 <= is_mean <= 10.0


def test_batching_does_not_change_results(tmp_path):
  path = _save(_TinyClassifier(16, 3), tmp_path / "module")
  images = _images(3, 7, 16)
  small = feature_extractors.ClassifierFeatureExtractor(
      path, feature_key="pool_3", logits_key="logits", image_size=16,
      batch_size=3)
  large = feature_extractors.ClassifierFeatureExtractor(
      path, feature_key="pool_3", logits_key="logits", image_size=16,
      batch_size=100)
  small_features, small_logits = small.extract_batches([images[:2], images[2:]])
  large_features, large_logits = large(images)
  np.testing.assert_allclose(small_features, large_features, atol=1e-6)
  np.testing.assert_allclose(small_logits, large_logits, atol=1e-5)


def test_missing_outputs_raise_naming_expected_and_found_keys(tmp_path):
  path = _save(_TinyClassifier(299, 3, feature_key="features",
                               logits_key="probabilities"), tmp_path / "bad")
  with pytest.raises(ValueError) as error:
    feature_extractors.inception_extractor(path)
  message = str(error.value)
  assert "pool_3" in message and "logits" in message
  assert "features" in message and "probabilities" in message


def test_domain_classifier_signature_grayscale_and_range(tmp_path):
  module = _TinyClassifier(28, 1, feature_key="embedding")

  @tf.function(input_signature=[
      tf.TensorSpec([None, 28, 28, 1], tf.float32, name="pixels")])
  def classify(pixels):
    return module._forward(pixels)  # pylint: disable=protected-access

  path = _save(module, tmp_path / "mnist", signatures={"classify": classify})
  extractor = feature_extractors.ClassifierFeatureExtractor(
      path, feature_key="embedding", logits_key=None, image_size=28,
      num_channels=1, input_range=(0.0, 1.0), endpoint="classify",
      name="mnist_classifier")
  rgb = _images(4, 6, 28)  # RGB in [-1, 1] is averaged and mapped to [0, 1].
  features, logits = extractor(rgb)
  assert logits is None
  expected = module._forward(  # pylint: disable=protected-access
      (rgb.mean(axis=-1, keepdims=True) + 1.0) / 2.0)["embedding"]
  np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)


def test_wrong_input_size_raises_naming_the_probe_shape(tmp_path):
  path = _save(_TinyClassifier(32, 3), tmp_path / "module")
  with pytest.raises(ValueError, match=r"\(1, 64, 64, 3\)"):
    feature_extractors.ClassifierFeatureExtractor(
        path, feature_key="pool_3", image_size=64)


def test_unknown_endpoint_raises(tmp_path):
  path = _save(_TinyClassifier(8, 3), tmp_path / "module")
  with pytest.raises(ValueError, match="no endpoint 'classify'"):
    feature_extractors.load_classifier(path, endpoint="classify")


def test_reference_statistics_are_cached_and_checked(tmp_path):
  path = _save(_TinyClassifier(16, 3), tmp_path / "module")
  extractor = feature_extractors.ClassifierFeatureExtractor(
      path, feature_key="pool_3", logits_key="logits", image_size=16,
      name="tiny")
  cache = str(tmp_path / "stats" / "ref.npz")
  images = _images(5, 30, 16)
  computed = feature_extractors.reference_statistics(
      extractor, lambda: [images], cache, "toy/train")
  assert computed.description == "toy/train/tiny:pool_3"
  assert computed.count == 30

  def fail():
    raise AssertionError("the cache should have been used")

  loaded = feature_extractors.reference_statistics(extractor, fail, cache,
                                                   "toy/train")
  np.testing.assert_array_equal(loaded.sigma, computed.sigma)
  with pytest.raises(ValueError, match="toy/test"):
    feature_extractors.reference_statistics(extractor, fail, cache, "toy/test")
