"""Exact values of L_D and L_EG on fixed scores, and their switches."""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import losses

ENCODER = {"score_x": tf.constant([2.0, 0.5]),
           "score_z": tf.constant([-1.0, 0.0]),
           "score_xz": tf.constant([0.3, 3.0])}
GENERATOR = {"score_x": tf.constant([-2.0, 1.0]),
             "score_z": tf.constant([0.5, -0.25]),
             "score_xz": tf.constant([-1.5, 0.0])}


def test_discriminator_loss_exact_values():
  enc, gen, terms = losses.discriminator_loss(ENCODER, GENERATOR)
  # Encoder pairs (y = +1): max(0, 1 - s) per score, summed.
  np.testing.assert_allclose(enc, [0.0 + 2.0 + 0.7, 0.5 + 1.0 + 0.0],
                             rtol=1e-6)
  # Generator pairs (y = -1): max(0, 1 + s).
  np.testing.assert_allclose(gen, [0.0 + 1.5 + 0.0, 2.0 + 0.75 + 1.0],
                             rtol=1e-6)
  np.testing.assert_allclose(terms["d_generator_score_z"], [1.5, 0.75])
  assert len(terms) == 6


def test_encoder_generator_loss_exact_values():
  enc, gen, terms = losses.encoder_generator_loss(ENCODER, GENERATOR)
  np.testing.assert_allclose(enc, [2.0 - 1.0 + 0.3, 0.5 + 0.0 + 3.0],
                             rtol=1e-6)
  np.testing.assert_allclose(gen, [2.0 - 0.5 + 1.5, -1.0 + 0.25 - 0.0],
                             rtol=1e-6)
  np.testing.assert_allclose(terms["eg_encoder_score_xz"], [0.3, 3.0])


@pytest.mark.parametrize("keys", [("score_x",), ("score_z",),
                                  ("score_x", "score_z"), ("score_xz",)])
def test_only_present_scores_enter(keys):
  enc_scores = {k: ENCODER[k] for k in keys}
  gen_scores = {k: GENERATOR[k] for k in keys}
  enc, gen, terms = losses.discriminator_loss(enc_scores, gen_scores)
  expected_enc = sum(np.maximum(0, 1 - ENCODER[k].numpy()) for k in keys)
  expected_gen = sum(np.maximum(0, 1 + GENERATOR[k].numpy()) for k in keys)
  np.testing.assert_allclose(enc, expected_enc, rtol=1e-6)
  np.testing.assert_allclose(gen, expected_gen, rtol=1e-6)
  assert len(terms) == 2 * len(keys)
  enc, gen, _ = losses.encoder_generator_loss(enc_scores, gen_scores)
  np.testing.assert_allclose(enc, sum(ENCODER[k] for k in keys), rtol=1e-6)
  np.testing.assert_allclose(gen, -sum(GENERATOR[k] for k in keys), rtol=1e-6)


def test_no_scores_is_an_error():
  with pytest.raises(ValueError, match="No scores"):
    losses.discriminator_loss({"features_x": tf.zeros([2, 3])},
                              {"features_x": tf.zeros([2, 3])})


def test_hinge_activity_on_fixed_scores():
  """Active where y * s < 1: encoder pairs y = +1, generator pairs y = -1."""
  encoder_scores = {"score_x": tf.constant([2.0, 1.0, 0.5, -3.0]),
                    "score_xz": tf.constant([0.0, 0.0, 5.0, 5.0])}
  generator_scores = {"score_x": tf.constant([-2.0, -1.0, -0.5, 3.0]),
                      "score_xz": tf.constant([-1.5, 0.0, 0.0, 0.0])}
  activity = losses.hinge_activity(encoder_scores, generator_scores)
  expected = {"encoder_score_x": [0, 0, 1, 1],
              "encoder_score_xz": [1, 1, 0, 0],
              "generator_score_x": [0, 0, 1, 1],
              "generator_score_xz": [0, 1, 1, 1]}
  assert set(activity) == set(expected)
  for key, values in expected.items():
    np.testing.assert_array_equal(activity[key].numpy(), values, err_msg=key)
  # Active exactly where the hinge term of D's loss is positive.
  _, _, terms = losses.discriminator_loss(encoder_scores, generator_scores)
  for key in expected:
    np.testing.assert_array_equal(activity[key].numpy() > 0,
                                  terms[f"d_{key}"].numpy() > 0)
