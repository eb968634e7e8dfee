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


_PAIRS = ((ENCODER_PAIRS, 1.0), (GENERATOR_PAIRS, -1.0))


def _signed_terms(encoder_scores: Mapping[str, tf.Tensor],
                  generator_scores: Mapping[str, tf.Tensor], fn,
                  prefix: str = "") -> dict:
  """fn(y * s) of every score present, y = +1 on encoder pairs and -1 on
  generator pairs: "<prefix><pair>_<score>" -> [N] (encoder pairs first,
  scores in common.SCORE_KEYS order)."""
  terms = {}
  for (pair, sign), scores in zip(_PAIRS, (encoder_scores, generator_scores)):
    for key in _present(scores):
      terms[f"{prefix}{pair}_{key}"] = fn(sign * tf.cast(scores[key],
                                                         tf.float32))
  return terms


def _summed_over_scores(terms: dict, prefix: str,
                        encoder_scores: Mapping[str, tf.Tensor],
                        generator_scores: Mapping[str, tf.Tensor]
                        ) -> tuple[tf.Tensor, tf.Tensor]:
  """Each pair type's per-example sum of its `terms`."""
  return tuple(
      tf.add_n([terms[f"{prefix}{pair}_{k}"] for k in _present(scores)])
      for (pair, _), scores in zip(_PAIRS, (encoder_scores, generator_scores)))


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
  terms = _signed_terms(encoder_scores, generator_scores, hinge, "d_")
  return (*_summed_over_scores(terms, "d_", encoder_scores, generator_scores),
          terms)


def encoder_generator_loss(encoder_scores: Mapping[str, tf.Tensor],
                           generator_scores: Mapping[str, tf.Tensor]
                           ) -> tuple[tf.Tensor, tf.Tensor, dict]:
  """l_EG per example for each pair type (same conventions as above)."""
  terms = _signed_terms(encoder_scores, generator_scores, lambda t: t, "eg_")
  return (*_summed_over_scores(terms, "eg_", encoder_scores,
                               generator_scores), terms)


def hinge_activity(encoder_scores: Mapping[str, tf.Tensor],
                   generator_scores: Mapping[str, tf.Tensor]) -> dict:
  """Whether each example's hinge term of D's loss is active (y * s < 1).

  An active hinge still gives D a gradient from that example; a term whose
  activity is near 0 has stopped teaching D (and, through D, E and G).

  Returns:
    "<pair>_<score>" -> float32 [N] of 1.0 (active) or 0.0.
  """
  return _signed_terms(encoder_scores, generator_scores,
                       lambda margin: tf.cast(margin < 1.0, tf.float32))
