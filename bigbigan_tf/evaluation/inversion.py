"""Does E invert G? Inversion error on prior samples, and a fitted inverse.

Inversion error: ‖E(G(z)) − z‖² divided by the mean ‖z − z′‖² over random
pairs of prior samples, with E's z_mean as E(·). 0 is perfect inversion;
about 1 is what an encoder unrelated to z scores (for N(0, I), an encoder
that outputs 0 scores 0.5: half the distance between two random samples).

`fit_inverse_encoder` separates "E cannot represent G's inverse" from "the
adversarial game gives E no signal to invert G": it freezes G, trains a fresh
encoder of E's architecture on ‖E(G(z)) − z‖² alone for a short while, and
the caller measures that encoder as it measures E. If the fitted encoder
inverts G and E does not, the architecture is not what holds E back.

Reconstruction ratio (the BiGAN code's MNIST measure, comparable with its
published log): the mean pixel distance of x to G(E(x)) over the mean
distance of another input to it; on held-out real x and on x = G(z).
"""

from __future__ import annotations

from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from bigbigan_tf.networks import common


def normalized_inversion_error(z: np.ndarray, z_hat: np.ndarray) -> float:
  """mean ‖z_hat − z‖² / mean ‖z − z′‖² over the pairs (z_i, z_{i+1}).

  Raises:
    ValueError: shapes differ, or fewer than 2 samples.
  """
  z = np.asarray(z, np.float64)
  z_hat = np.asarray(z_hat, np.float64)
  if z.shape != z_hat.shape or z.ndim != 2 or len(z) < 2:
    raise ValueError("Expected z and z_hat of the same shape [N >= 2, d]; "
                     f"received {z.shape} and {z_hat.shape}.")
  error = np.mean(np.sum((z_hat - z) ** 2, axis=1))
  spread = np.mean(np.sum((z - np.roll(z, 1, axis=0)) ** 2, axis=1))
  return float(error / max(spread, 1e-12))


def to_encoder_resolution(images: tf.Tensor, resolution: int) -> tf.Tensor:
  """G's images at E's input size (nearest-neighbour upsampling)."""
  return common.upsample_to_resolution(images, resolution)


def reconstruction_ratio(images: np.ndarray,
                         reconstructions: np.ndarray) -> float:
  """The BiGAN code's reconstruction measure on MNIST.

  mean_i ||x_i - r_i||_2 / mean_i ||x_pi(i) - r_i||_2, with r_i the
  reconstruction of x_i and pi(i) = i + 1 (mod N), a fixed derangement: 1.0
  means a reconstruction is no closer to its own input than to another one,
  0 a perfect reconstruction.

  Raises:
    ValueError: fewer than two images, or shapes that differ.
  """
  images = np.asarray(images, np.float64)
  reconstructions = np.asarray(reconstructions, np.float64)
  if images.shape != reconstructions.shape or len(images) < 2:
    raise ValueError(
        "Expected at least two images and as many reconstructions of the "
        f"same shape; received {images.shape} and {reconstructions.shape}.")
  flat = lambda a: a.reshape(len(a), -1)
  own = np.linalg.norm(flat(images - reconstructions), axis=1)
  other = np.linalg.norm(flat(np.roll(images, -1, axis=0) - reconstructions),
                         axis=1)
  return float(np.mean(own) / np.mean(other))


def reconstruction_ratios(model, encoder: Callable, real_batches: Iterable,
                          pool: Callable, num_generated: int = 1000,
                          seed: int = 0, batch_size: int = 250) -> dict:
  """`reconstruction_ratio` on real images and on generated ones.

  Args:
    model: the BigBiGAN (G and the prior; inference mode).
    encoder: maps images at E's resolution to a dict with common.Z_MEAN.
    real_batches: (images, labels) batches at E's resolution (held out).
    pool: E's images to G's resolution (where reconstructions are compared).
    num_generated: prior samples x = G(z) for the generated ratio (0 skips).
    seed: their seed.
    batch_size: generated samples per call.

  Returns:
    reconstruction_ratio_real and (num_generated > 0)
    reconstruction_ratio_generated.
  """
  def reconstruct(x):
    return model.generate(encoder(x, training=False)[common.Z_MEAN],
                          training=False)

  reconstruct = tf.function(reconstruct, reduce_retracing=True,
                            autograph=False)
  real, recon = [], []
  for images, _ in real_batches:
    recon.append(reconstruct(images).numpy())
    real.append(np.asarray(pool(images)))
  results = {"reconstruction_ratio_real": reconstruction_ratio(
      np.concatenate(real), np.concatenate(recon))}
  if num_generated:
    z = prior_samples(model, num_generated, seed, start=13579)
    generated, recon = [], []
    for i in range(0, num_generated, batch_size):
      x = model.generate(z[i:i + batch_size], training=False)
      recon.append(reconstruct(to_encoder_resolution(
          x, model.encoder_resolution)).numpy())
      generated.append(x.numpy())
    results["reconstruction_ratio_generated"] = reconstruction_ratio(
        np.concatenate(generated), np.concatenate(recon))
  return results


def prior_samples(model, n: int, seed: int, start: int = 0) -> tf.Tensor:
  """n latents of the model's prior (standard normal for a Hub module)."""
  if hasattr(model, "prior"):
    return model.prior.sample(n, seed=tf.constant([seed, start], tf.int64))
  return tf.random.stateless_normal([n, model.z_dim], [seed, start])


def inversion_error(model, encoder: Callable, num_samples: int = 1000,
                    seed: int = 0, batch_size: int = 250) -> float:
  """`normalized_inversion_error` of z_mean(encoder(G(z))) on prior samples.

  Args:
    model: the BigBiGAN (G and the prior; inference mode).
    encoder: maps images at E's resolution to a dict with common.Z_MEAN.
    num_samples: prior samples.
    seed: their seed.
    batch_size: samples per call.
  """
  z = prior_samples(model, num_samples, seed, start=24680)

  def invert(z):
    x = model.generate(z, training=False)
    x = to_encoder_resolution(x, model.encoder_resolution)
    return encoder(x, training=False)[common.Z_MEAN]

  invert = tf.function(invert, reduce_retracing=True, autograph=False)
  z_hat = [invert(z[i:i + batch_size])
           for i in range(0, num_samples, batch_size)]
  return normalized_inversion_error(z.numpy(), tf.concat(z_hat, 0).numpy())


def fit_inverse_encoder(model, num_steps: int, batch_size: int = 64,
                        learning_rate: float = 1e-3, seed: int = 0):
  """A fresh encoder of E's architecture trained to invert the frozen G.

  Loss: mean ‖z_mean(E(G(z))) − z‖² over prior samples, Adam; G runs in
  inference mode and gets no updates.

  Args:
    model: the BigBiGAN whose G is inverted (its encoder gives the
      architecture; it must be a built library Encoder).
    num_steps: Adam steps.
    batch_size: prior samples per step.
    learning_rate: Adam's.
    seed: initial weights and samples.

  Returns:
    The trained encoder (standing statistics are its moving statistics of
    batch norm, which training on G's images updated).

  Raises:
    ValueError: the model's encoder cannot be re-created (an exported module).
  """
  if not hasattr(model.encoder, "constructor_arguments"):
    raise ValueError("fit_inverse_encoder needs a library Encoder to copy "
                     "the architecture of; received "
                     f"{type(model.encoder).__name__}.")
  encoder = common.clone(model.encoder, seed=seed)
  optimizer = keras.optimizers.Adam(learning_rate)

  @tf.function(autograph=False)
  def step(k):
    z = model.prior.sample(batch_size,
                           seed=tf.stack([tf.constant(seed, tf.int64), k]))
    x = to_encoder_resolution(model.generate(z, training=False),
                              model.encoder_resolution)
    with tf.GradientTape() as tape:
      z_hat = encoder(x, training=True)[common.Z_MEAN]
      loss = tf.reduce_mean(tf.reduce_sum(
          tf.square(tf.cast(z_hat, tf.float32) - z), axis=1))
    grads = tape.gradient(loss, encoder.trainable_variables)
    # The sigma head does not enter z_mean: it gets no gradient.
    optimizer.apply_gradients([
        (g, v) for g, v in zip(grads, encoder.trainable_variables)
        if g is not None])
    return loss

  for k in range(num_steps):
    step(tf.constant(k, tf.int64))
  return encoder
