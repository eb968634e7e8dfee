"""The updates of one training step: D's, and E's and G's, per replica.

`Updates` is the part of `training.Trainer` that computes an update on one
replica: the latents of the replica's slice, D's view of the images, the
losses (bigbigan_tf.losses) and their gradients, applied by the optimisers
inside the replica step. It reads the trainer's configuration from the
attributes `Trainer.__init__` sets: model, optimizers, seed, d_steps,
global_batch_size, per_replica_batch, augment_policy, gradient_diagnostics,
latent_regression_weight, latent_regression_statistics,
latent_regression_warmup_steps, cycle_weight.

Distributed math: every per-replica loss is the sum of its per-example
losses divided by the GLOBAL batch size, so the gradients summed across
replicas are those of the global-batch mean; latents are drawn for the whole
global batch from a stateless seed (seed, step, sub-step) and each replica
takes its slice.
"""

from __future__ import annotations

import tensorflow as tf

from bigbigan_tf import layers
from bigbigan_tf import losses
from bigbigan_tf.layers import diff_augment
from bigbigan_tf.networks import common


class Updates:
  """D's and E+G's updates on one replica (a base of training.Trainer)."""

  def _gradient_keys(self) -> list[str]:
    """The latent-gradient diagnostics this trainer reports."""
    if not (self.gradient_diagnostics and self.model.encoder is not None):
      return []
    return [f"grad_sq/z_hat_{k}" for k in (common.SCORE_Z, common.SCORE_XZ)
            if k in self._score_keys()]

  def _score_keys(self) -> list[str]:
    d = self.model.discriminator
    return [k for k, on in ((common.SCORE_X, d.use_score_x),
                            (common.SCORE_Z, d.use_score_z),
                            (common.SCORE_XZ, d.use_score_xz)) if on]

  def _latents(self, step, substep):
    """This replica's slice of the global-batch z and epsilon.

    Every (step, substep) pair gets its own seed: substeps are 0..d_steps,
    so step is strided by at least d_steps + 1 (16 while that suffices,
    which keeps the seeds of runs with d_steps < 16 unchanged).
    """
    stride = max(16, self.d_steps + 1)
    seed = tf.stack([tf.cast(self.seed, tf.int64), step * stride + substep])
    z_seed = tf.random.experimental.stateless_fold_in(seed, 0)
    eps_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    z = self.model.prior.sample(self.global_batch_size, seed=z_seed)
    eps = tf.random.stateless_normal([self.global_batch_size,
                                      self.model.z_dim], eps_seed)
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    begin = tf.cast(replica, tf.int32) * self.per_replica_batch
    size = [self.per_replica_batch, self.model.z_dim]
    return tf.slice(z, [begin, 0], size), tf.slice(eps, [begin, 0], size)

  def _augment(self, images, step, substep, which: int):
    """D's view of a batch: the augmentation policy's transforms, if any."""
    if not self.augment_policy:
      return images
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    stride = max(16, self.d_steps + 1)
    seed = tf.stack([tf.cast(self.seed, tf.int64), step * stride + substep])
    seed = tf.random.experimental.stateless_fold_in(seed, 2 + which)
    seed = tf.random.experimental.stateless_fold_in(
        seed, tf.cast(replica, tf.int64))
    return diff_augment.diff_augment(images, self.augment_policy, seed)

  def _scores(self, x, x_hat, z_hat, z, step, substep):
    """D on [encoder pairs; generator pairs], split back by pair type."""
    model = self.model
    # Under mixed precision G and E emit the compute dtype; D autocasts.
    x_d = self._augment(model.pool_for_discriminator(x), step, substep, 0)
    x_hat = self._augment(tf.cast(x_hat, x_d.dtype), step, substep, 1)
    both_z = None if z_hat is None else tf.concat(
        [tf.cast(z_hat, z.dtype), z], axis=0)
    scores = model.discriminate(tf.concat([x_d, x_hat], axis=0), both_z,
                                training=True)
    n = self.per_replica_batch
    encoder_scores = {k: v[:n] for k, v in scores.items()
                      if k in common.SCORE_KEYS}
    generator_scores = {k: v[n:] for k, v in scores.items()
                        if k in common.SCORE_KEYS}
    return encoder_scores, generator_scores

  def _mean(self, per_example):
    """Per-replica share of the global-batch mean, in float32."""
    return tf.reduce_sum(tf.cast(per_example, tf.float32)) / self.global_batch_size

  def _encode(self, x, eps):
    if self.model.encoder is None:
      return None
    return self.model.encode(x, training=True, epsilon=eps)[common.Z_SAMPLE]

  def _d_update(self, x, step, substep):
    z, eps = self._latents(step, substep)
    x_hat = self.model.generate(z, training=True)
    z_hat = self._encode(x, eps)
    variables = self.model.discriminator.trainable_variables
    with tf.GradientTape() as tape:
      encoder_scores, generator_scores = self._scores(x, x_hat, z_hat, z,
                                                      step, substep)
      enc_loss, gen_loss, terms = losses.discriminator_loss(
          encoder_scores, generator_scores)
      loss = self._mean(enc_loss) + self._mean(gen_loss)
    grads = tape.gradient(loss, variables)
    self.optimizers["discriminator"].apply_in_replica(grads, variables)
    metrics = {"loss/d": loss}
    metrics.update({f"loss_terms/{k}": self._mean(v) for k, v in terms.items()})
    metrics.update({f"hinge_active/{k}": self._mean(v)
                    for k, v in losses.hinge_activity(
                        encoder_scores, generator_scores).items()})
    return metrics

  def _eg_update(self, x, step, substep):
    z, eps = self._latents(step, substep)
    roles = [r for r in ("generator", "encoder") if r in self.model.networks()]
    variables = {r: self.model.networks()[r].trainable_variables for r in roles}
    diagnose = bool(self._gradient_keys())
    with tf.GradientTape(persistent=diagnose) as tape:
      x_hat = self.model.generate(z, training=True)
      if self._regress_in_encoder_pass():
        z_hat, mu_generated = self._encode_with_generated(x, eps, x_hat)
      else:
        z_hat, mu_generated = self._encode(x, eps), None
      encoder_scores, generator_scores = self._scores(x, x_hat, z_hat, z,
                                                      step, substep)
      enc_loss, gen_loss, terms = losses.encoder_generator_loss(
          encoder_scores, generator_scores)
      loss = self._mean(enc_loss) + self._mean(gen_loss)
      extra_terms = self._extra_eg_terms(x, x_hat, z_hat, z, step,
                                         mu_generated)
      total = loss + tf.add_n(
          [weight * value for weight, value in extra_terms.values()]
      ) if extra_terms else loss
      # Each example's score depends on its own z_hat only, so the gradient
      # of the sum is every example's gradient.
      score_sums = {key: tf.reduce_sum(tf.cast(
          encoder_scores[key[len("grad_sq/z_hat_"):]], tf.float32))
                    for key in self._gradient_keys()}
    grads = tape.gradient(total, variables)
    metrics = {key: value for key, (_, value) in extra_terms.items()}
    if diagnose:  # How dL_EG/dz_hat splits between s_z and s_xz.
      for key, score_sum in score_sums.items():
        per_example = tape.gradient(score_sum, z_hat)
        metrics[key] = self._mean(tf.reduce_sum(
            tf.square(tf.cast(per_example, tf.float32)), axis=1))
      del tape
    for role in roles:
      self.optimizers[role].apply_in_replica(grads[role], variables[role])
    metrics["loss/eg"] = loss
    metrics.update({f"loss_terms/{k}": self._mean(v) for k, v in terms.items()})
    for pair, scores in (("encoder", encoder_scores),
                         ("generator", generator_scores)):
      metrics.update({f"scores/{pair}_pairs/{k}": self._mean(v)
                      for k, v in scores.items()})
    return metrics

  def _regress_in_encoder_pass(self) -> bool:
    return bool(self.latent_regression_weight
                and self.latent_regression_statistics == "real")

  def _regression_input(self, x, x_hat):
    """G(z) as the latent regression shows it to E: held constant, at E's
    resolution, in x's dtype."""
    return common.upsample_to_resolution(
        tf.stop_gradient(tf.cast(x_hat, x.dtype)),
        self.model.encoder_resolution)

  def _encode_with_generated(self, x, eps, x_hat):
    """E's sampled latents of x and its mean latents of G(z), from one
    training-mode pass over [x; G(z)] whose batch-norm moments (and moving
    statistics) come from x's rows only: z_hat is what E(x) alone gives."""
    n = self.per_replica_batch
    both = tf.concat([x, self._regression_input(x, x_hat)], axis=0)
    with layers.reference_moments(self.model.encoder, count=n):
      out = self.model.encode(both, training=True,
                              epsilon=tf.concat([eps, eps], axis=0))
    return out[common.Z_SAMPLE][:n], out[common.Z_MEAN][n:]

  def _latent_regression_weight(self, step):
    """lambda, ramped up over the warm-up steps (global step 0 first)."""
    warmup = self.latent_regression_warmup_steps
    if not warmup:
      return self.latent_regression_weight
    ramp = tf.minimum(1.0, tf.cast(step + 1, tf.float32) / float(warmup))
    return self.latent_regression_weight * ramp

  def _extra_eg_terms(self, x, x_hat, z_hat, z, step,
                      mu_generated=None) -> dict:
    """The optional latent regression and cycle terms of the E+G loss.

    Args:
      step: the global step (the latent regression's warm-up).
      mu_generated: E's mean latents of G(z) when the encoder pass made
        them ("real" statistics); otherwise computed here.

    Returns:
      metric key -> (weight, this replica's share of the global-batch mean).
    """
    model = self.model
    terms = {}
    if self.latent_regression_weight:
      if mu_generated is not None:
        mu = mu_generated
      elif self.latent_regression_statistics == "moving":
        mu = model.encode(self._regression_input(x, x_hat),
                          training=False)[common.Z_MEAN]
      else:
        with layers.moving_statistics_frozen(model.encoder):
          mu = model.encode(self._regression_input(x, x_hat),
                            training=True)[common.Z_MEAN]
      error = tf.square(tf.cast(mu, tf.float32) - tf.cast(z, tf.float32))
      terms["loss/latent_regression"] = (
          self._latent_regression_weight(step),
          self._mean(tf.reduce_sum(error, axis=1)))
    if self.cycle_weight:
      with layers.moving_statistics_frozen(model.generator):
        reconstruction = model.generate(z_hat, training=True)
      real = model.pool_for_discriminator(x)
      error = tf.square(tf.cast(real, tf.float32)
                        - tf.cast(reconstruction, tf.float32))
      terms["loss/cycle"] = (self.cycle_weight, self._mean(
          tf.reduce_mean(error, axis=[1, 2, 3])))
    return terms
