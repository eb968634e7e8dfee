"""BigBiGAN: the generator, encoder, discriminator and prior, composed.

The parts are built elsewhere (networks/, bound by gin) and handed in; this
class checks that they fit together and states the data flow once:

  generator pairs: z ~ P_z,  x_hat = G(z)       -> D(x_hat, z)
  encoder pairs:   x ~ P_x,  z_hat = E(x)       -> D(pool(x), z_hat)

where pool() average-pools E's input down to D's (= G's) resolution when E
sees higher-resolution images (docs/design.md section 1).
"""

from __future__ import annotations

from typing import Optional

import gin
import tensorflow as tf

from bigbigan_tf.networks import common
from bigbigan_tf.networks import encoder as encoder_lib
from bigbigan_tf.networks import prior as prior_lib


class BigBiGAN:
  """Holds G, E (None for the StandardGAN ablation), D and P_z.

  Args:
    generator: a networks.Generator.
    discriminator: a networks.Discriminator at G's resolution.
    prior: a networks.Prior of G's z_dim.
    encoder: a networks.Encoder, or None when D scores x only (StandardGAN).

  Raises:
    ValueError: when the parts disagree (z widths, resolutions, prior vs
      latent mode, an encoder missing for a D that scores z).
  """

  def __init__(self, generator, discriminator, prior,
               encoder: Optional[object] = None):
    self.generator = generator
    self.discriminator = discriminator
    self.prior = prior
    self.encoder = encoder
    z_dims = {"generator": generator.z_dim, "discriminator":
              discriminator.z_dim, "prior": prior.z_dim}
    if encoder is not None:
      z_dims["encoder"] = encoder.z_dim
    if len(set(z_dims.values())) != 1:
      raise ValueError(f"All parts must share one z_dim, got {z_dims}.")
    if discriminator.resolution != generator.resolution:
      raise ValueError(
          f"Discriminator resolution ({discriminator.resolution}) must equal "
          f"the generator's ({generator.resolution}).")
    if encoder is None:
      if discriminator.needs_z:
        raise ValueError("An encoder is required unless the discriminator "
                         "scores x only (use_score_z = use_score_xz = False).")
    else:
      if encoder.resolution % generator.resolution:
        raise ValueError(
            f"Encoder resolution ({encoder.resolution}) must be an integer "
            f"multiple of the generator's ({generator.resolution}).")
      uniform_latent = encoder.latent_mode == encoder_lib.UNIFORM
      uniform_prior = prior.distribution == prior_lib.UNIFORM
      if uniform_latent != uniform_prior:
        raise ValueError(
            f"Prior {prior.distribution!r} does not match the encoder's "
            f"latent_mode {encoder.latent_mode!r}: use the uniform prior with "
            f"the uniform latent mode and the normal prior otherwise.")

  @property
  def z_dim(self) -> int:
    return self.generator.z_dim

  @property
  def resolution(self) -> int:
    """G's and D's image size."""
    return self.generator.resolution

  @property
  def encoder_resolution(self) -> int:
    return self.encoder.resolution if self.encoder else self.resolution

  def pool_for_discriminator(self, x: tf.Tensor) -> tf.Tensor:
    """Average-pools E-resolution images to D's resolution."""
    return common.pool_to_resolution(x, self.resolution)

  def networks(self) -> dict:
    """The Keras models by role (the encoder only when present)."""
    parts = {"generator": self.generator, "discriminator": self.discriminator}
    if self.encoder is not None:
      parts["encoder"] = self.encoder
    return parts

  def encode(self, x, training=None, epsilon=None) -> dict:
    return self.encoder(x, training=training, epsilon=epsilon)

  def generate(self, z, training=None) -> tf.Tensor:
    return self.generator(z, training=training)

  def discriminate(self, x, z, training=None) -> dict:
    return self.discriminator((x, z), training=training)

  def reconstruct(self, x, training=None) -> tf.Tensor:
    """G(E(x)) using E's mean latent."""
    return self.generate(self.encode(x, training)[common.Z_MEAN], training)


@gin.configurable("bigbigan")
def configured_bigbigan(generator=gin.REQUIRED, discriminator=gin.REQUIRED,
                        prior=gin.REQUIRED,
                        encoder: Optional[object] = None) -> BigBiGAN:
  """The gin entry point: `bigbigan.generator = @generator()` etc.

  A factory rather than a configurable class, so that building a BigBiGAN
  from existing parts (EMA copies, tests) does not make gin build the bound
  networks again.
  """
  return BigBiGAN(generator, discriminator, prior, encoder)
