"""Inversion diagnostics: the normalised error on hand-made encoder and
generator pairs with known answers, and the fitted inverse encoder."""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf.evaluation import evaluator
from bigbigan_tf.evaluation import inversion
from bigbigan_tf.networks import common


def test_normalized_error_on_known_pairs():
  z = np.random.default_rng(0).normal(size=(20_000, 8))
  assert inversion.normalized_inversion_error(z, z) == 0.0
  # An encoder that outputs 0: |z|^2 / |z - z'|^2 = d / 2d.
  assert inversion.normalized_inversion_error(z, np.zeros_like(z)) == (
      pytest.approx(0.5, abs=0.02))
  # An encoder unrelated to z: about 1.
  other = np.random.default_rng(1).normal(size=z.shape)
  assert inversion.normalized_inversion_error(z, other) == pytest.approx(
      1.0, abs=0.03)
  with pytest.raises(ValueError, match="same shape"):
    inversion.normalized_inversion_error(z, z[:, :4])


class _ScaledInverse:
  """G writes z into a 4x4 image (z_dim 16, repeated to RGB); E reads it
  back times `scale`: inversion error (1 - scale)^2 / 2 for N(0, I)."""

  z_dim = 16
  resolution = 4
  encoder_resolution = 8  # E sees G's images upsampled 2x.

  def __init__(self, scale):
    self.scale = scale

  def generate(self, z, training=None):
    del training
    return tf.tile(tf.reshape(z, [-1, 4, 4, 1]), [1, 1, 1, 3])

  def encoder(self, x, training=None):
    del training
    assert x.shape[1] == 8
    return {common.Z_MEAN: self.scale * tf.reshape(x[:, ::2, ::2, 0],
                                                   [-1, 16])}


@pytest.mark.parametrize("scale,expected", [(1.0, 0.0), (0.5, 0.125),
                                            (0.0, 0.5)])
def test_inversion_error_of_a_hand_made_pair(scale, expected):
  model = _ScaledInverse(scale)
  error = inversion.inversion_error(model, model.encoder, num_samples=4000)
  assert error == pytest.approx(expected, abs=0.02)


@pytest.mark.slow
def test_fitted_inverse_encoder_inverts_better_than_a_fresh_one():
  config.parse(["smoke.gin"])
  model = config.build_model()
  fresh = common.clone(model.encoder, seed=3)
  # Every variable: weights, batch-norm moving statistics and spectral
  # norm's power-iteration vectors (a training-mode call of G would move the
  # last two).
  generator_before = [v.numpy() for v in model.generator.variables]
  encoder_before = [v.numpy() for v in model.encoder.variables]
  fitted = inversion.fit_inverse_encoder(model, num_steps=60, batch_size=32,
                                         learning_rate=3e-3, seed=3)
  # G was frozen, and E is only the architecture's template: neither
  # changed. The fit trained a new encoder.
  assert len(model.generator.variables) == len(generator_before)
  for variable, before in zip(model.generator.variables, generator_before):
    np.testing.assert_array_equal(variable.numpy(), before,
                                  err_msg=variable.path)
  for variable, before in zip(model.encoder.variables, encoder_before):
    np.testing.assert_array_equal(variable.numpy(), before,
                                  err_msg=variable.path)
  assert fitted is not model.encoder
  before = inversion.inversion_error(model, fresh, 500)
  after = inversion.inversion_error(model, fitted, 500)
  assert after < 0.8 * before, (before, after)


def test_standing_statistics_fill_a_fresh_encoders_batch_norm():
  config.parse(["smoke.gin"])
  encoder = config.build_model().encoder
  from bigbigan_tf import layers  # pylint: disable=g-import-not-at-top
  norms = layers.batch_norm_layers(encoder)
  assert norms and all(np.all(n.moving_mean.numpy() == 0) for n in norms)
  images = np.random.default_rng(0).uniform(-1, 1, (40, 32, 32, 3))
  evaluator.standing_statistics(
      encoder, [(images[:20].astype(np.float32), None),
                (images[20:].astype(np.float32), None)])
  assert all(np.any(n.moving_mean.numpy() != 0) for n in norms)
  assert any(np.any(n.moving_variance.numpy() != 1) for n in norms)
