"""BigBiGAN's losses (docs/design.md section 2), per example.

With y = +1 for encoder pairs (x, E(x)) and -1 for generator pairs (G(z), z):

  l_EG(x, z, y) = y * (s_x + s_z + s_xz)                      (no hinge)
  l_D(x, z, y)  = h(y s_x) + h(y s_z) + h(y s_xz),  h(t) = max(0, 1 - t)

L_EG and L_D are the sums over both pair types of the batch means. Only the
scores the discriminator has (its use_score_* switches) enter the sums, which
gives Table 1's unary ablations and, with s_x alone, the StandardGAN loss.

The functions return per-example losses; the training step sums them and
divides by the GLOBAL batch size, so that the gradients summed across
replicas equal the gradient of the global-batch mean.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from bigbigan_tf.networks import common

ENCODER_PAIRS = "encoder"
GENERATOR_PAIRS = "generator"


def _present(scores: Mapping[str, tf.Tensor]) -> list[str]:
  keys = [k for k in common.SCORE_KEYS if k in scores]
  if not keys:
    raise ValueError(f"No scores among {common.SCORE_KEYS} in {sorted(scores)}.")
  return keys


def hinge(t: tf.Tensor) -> tf.Tensor:
  """h(t) = max(0, 1 - t)."""
  return tf.nn.relu(1.0 - t)


def discriminator_loss(encoder_scores: Mapping[str, tf.Tensor],
                       generator_scores: Mapping[str, tf.Tensor]
                       ) -> tuple[tf.Tensor, tf.Tensor, dict]:
  """l_D per example for each pair type.

  Args:
    encoder_scores: D's scores on (x, E(x)) pairs, each [N].
    generator_scores: D's scores on (G(z), z) pairs, each [M].

  Returns:
    (encoder_loss [N], generator_loss [M], terms) where terms maps
    "d_<pair>_<score>" to the per-example hinge term of that score.
  """
  terms = {}
  for pair, scores, sign in ((ENCODER_PAIRS, encoder_scores, 1.0),
                             (GENERATOR_PAIRS, generator_scores, -1.0)):
    for key in _present(scores):
      terms[f"d_{pair}_{key}"] = hinge(sign * tf.cast(scores[key], tf.float32))
  encoder_loss = tf.add_n([terms[f"d_{ENCODER_PAIRS}_{k}"]
                           for k in _present(encoder_scores)])
  generator_loss = tf.add_n([terms[f"d_{GENERATOR_PAIRS}_{k}"]
                             for k in _present(generator_scores)])
  return encoder_loss, generator_loss, terms


def encoder_generator_loss(encoder_scores: Mapping[str, tf.Tensor],
                           generator_scores: Mapping[str, tf.Tensor]
                           ) -> tuple[tf.Tensor, tf.Tensor, dict]:
  """l_EG per example for each pair type (same conventions as above)."""
  terms = {}
  for pair, scores, sign in ((ENCODER_PAIRS, encoder_scores, 1.0),
                             (GENERATOR_PAIRS, generator_scores, -1.0)):
    for key in _present(scores):
      terms[f"eg_{pair}_{key}"] = sign * tf.cast(scores[key], tf.float32)
  encoder_loss = tf.add_n([terms[f"eg_{ENCODER_PAIRS}_{k}"]
                           for k in _present(encoder_scores)])
  generator_loss = tf.add_n([terms[f"eg_{GENERATOR_PAIRS}_{k}"]
                             for k in _present(generator_scores)])
  return encoder_loss, generator_loss, terms


def hinge_activity(encoder_scores: Mapping[str, tf.Tensor],
                   generator_scores: Mapping[str, tf.Tensor]) -> dict:
  """Whether each example's hinge term of D's loss is active (y * s < 1).

  An active hinge still gives D a gradient from that example; a term whose
  activity is near 0 has stopped teaching D (and, through D, E and G).

  Returns:
    "<pair>_<score>" -> float32 [N] of 1.0 (active) or 0.0.
  """
  activity = {}
  for pair, scores, sign in ((ENCODER_PAIRS, encoder_scores, 1.0),
                             (GENERATOR_PAIRS, generator_scores, -1.0)):
    for key in _present(scores):
      margin = sign * tf.cast(scores[key], tf.float32)
      activity[f"{pair}_{key}"] = tf.cast(margin < 1.0, tf.float32)
  return activity
