"""Tests of the reconstruction ratios and of sample quality under the judge,
on hand-made inputs whose answers are known."""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf.evaluation import evaluator
from bigbigan_tf.evaluation import inversion
from bigbigan_tf.networks import common


def _column(values):
  """Images [N, 1, 1, 1] holding one pixel value each."""
  return np.asarray(values, np.float64).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("reconstructions, expected", [
    ([0.0, 2.0, 4.0], 0.0),   # Perfect reconstructions.
    ([1.0, 1.0, 1.0], 1.0),   # |0-1|,|2-1|,|4-1| against |2-1|,|4-1|,|0-1|.
    ([0.5, 2.5, 4.5], 0.2),   # 0.5 each against 1.5, 1.5, 4.5.
])
def test_reconstruction_ratio_known_answers(reconstructions, expected):
  ratio = inversion.reconstruction_ratio(_column([0.0, 2.0, 4.0]),
                                         _column(reconstructions))
  assert ratio == pytest.approx(expected, abs=1e-12)


def test_reconstruction_ratio_uses_the_euclidean_norm_of_each_image():
  """Two-pixel images x = (0, 0), (3, 4), (6, 8) and r = x + (1, 0): own
  distances 1; to the next input (2, 4), (2, 4), (-7, -8). An L1 or squared
  distance would give another ratio."""
  images = np.array([[0, 0], [3, 4], [6, 8]], np.float64).reshape(3, 1, 1, 2)
  reconstructions = images + np.array([1.0, 0.0]).reshape(1, 1, 1, 2)
  expected = 1.0 / np.mean([np.sqrt(20.0), np.sqrt(20.0), np.sqrt(113.0)])
  assert inversion.reconstruction_ratio(images, reconstructions) == (
      pytest.approx(expected, rel=1e-12))


@pytest.mark.parametrize("images, reconstructions", [
    (np.zeros([1, 2, 2, 1]), np.zeros([1, 2, 2, 1])),
    (np.zeros([3, 2, 2, 1]), np.zeros([3, 2, 1, 1])),
])
def test_reconstruction_ratio_refuses_bad_shapes(images, reconstructions):
  with pytest.raises(ValueError, match="at least two images"):
    inversion.reconstruction_ratio(images, reconstructions)


class _CopyModel:
  """G = identity on 4-pixel 'latents' shaped as 2x2 images; E = flatten:
  every reconstruction is perfect."""
  z_dim = 4
  encoder_resolution = 2

  def generate(self, z, training=False):
    del training
    return tf.reshape(tf.cast(z, tf.float32), [-1, 2, 2, 1])


def _flatten_encoder(x, training=False):
  del training
  return {common.Z_MEAN: tf.reshape(x, [-1, 4])}


def test_reconstruction_ratios_of_a_perfect_inverse_are_zero():
  model = _CopyModel()
  real = np.random.default_rng(0).normal(size=[6, 2, 2, 1]).astype(np.float32)
  batches = [(real[:3], np.zeros(3)), (real[3:], np.zeros(3))]
  ratios = inversion.reconstruction_ratios(
      model, _flatten_encoder, batches, pool=lambda x: x, num_generated=8,
      batch_size=3)
  assert ratios == {"reconstruction_ratio_real": 0.0,
                    "reconstruction_ratio_generated": 0.0}


def test_reconstruction_ratios_of_a_constant_reconstruction():
  """E maps everything to 0, G(0) = 0: own and other distances are the
  norms of the inputs, in rolled order: the ratio is 1."""
  model = _CopyModel()
  zero_encoder = lambda x, training=False: {
      common.Z_MEAN: tf.zeros([tf.shape(x)[0], 4])}
  real = np.random.default_rng(1).normal(size=[5, 2, 2, 1]).astype(np.float32)
  ratios = inversion.reconstruction_ratios(
      model, zero_encoder, [(real, np.zeros(5))], pool=lambda x: x,
      num_generated=0)
  assert ratios == {"reconstruction_ratio_real": pytest.approx(1.0)}


class _ClassImageJudge:
  """Features: the image's 10 pixels; logits: 20 x the pixels, so an image
  that is a one-hot vector is classified with near-certainty."""

  def features_and_logits(self, images):
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    return flat, 20.0 * flat


class _OneHotModel:
  """G(z) = a one-hot 'image' [1, 10, 1] of the class z[0] mod 10."""
  z_dim = 2

  def generate(self, z, training=False):
    del training
    classes = tf.cast(tf.math.floormod(tf.range(tf.shape(z)[0]), 10),
                      tf.int32)
    return tf.reshape(tf.one_hot(classes, 10), [-1, 1, 10, 1])


def test_judge_sample_quality_of_samples_like_the_real_images():
  """Samples that are the held-out images' distribution: FID 0; ten
  balanced, confidently classified classes: inception score ~10."""
  real = np.eye(10, dtype=np.float32).reshape(10, 1, 10, 1)
  real = np.concatenate([real] * 20)  # 200 images, 20 per class.
  batches = [(real[:100], None), (real[100:], None)]
  results = evaluator.judge_sample_quality(
      _OneHotModel(), _ClassImageJudge(), batches, pool=lambda x: x,
      num_samples=200)
  assert set(results) == {"sample_fid_judge", "sample_kid_judge",
                          "sample_is_judge"}
  assert results["sample_fid_judge"] == pytest.approx(0.0, abs=1e-6)
  assert results["sample_is_judge"] == pytest.approx(10.0, rel=1e-3)


def test_judge_fid_grows_when_samples_leave_the_real_distribution():
  """All samples of one class: IS 1, a positive FID."""
  real = np.eye(10, dtype=np.float32).reshape(10, 1, 10, 1)
  real = np.concatenate([real] * 20)

  class OneClassModel(_OneHotModel):
    def generate(self, z, training=False):
      return tf.reshape(tf.one_hot(tf.zeros([tf.shape(z)[0]], tf.int32), 10),
                        [-1, 1, 10, 1])

  results = evaluator.judge_sample_quality(
      OneClassModel(), _ClassImageJudge(), [(real, None)], pool=lambda x: x,
      num_samples=200)
  assert results["sample_is_judge"] == pytest.approx(1.0, rel=1e-3)
  # Means differ by (0.9, -0.1 x 9): 0.9 squared; the samples have no
  # covariance and the real images' (unbiased, 200 images) has trace
  # 10 x (0.1 - 0.01) x 200 / 199.
  assert results["sample_fid_judge"] == pytest.approx(
      0.9 + 0.9 * 200 / 199, rel=1e-6)
