"""Switches for small data: dropout in H and J, differentiable augmentation
of D's images, and the width of what J sees of x. Each changes what it
should and, off, nothing."""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import actions
from bigbigan_tf import config
from bigbigan_tf import losses
from bigbigan_tf import training
from bigbigan_tf.layers import diff_augment
from bigbigan_tf.networks import common
from bigbigan_tf.networks import discriminator as discriminator_lib

import training_worker  # pylint: disable=g-import-not-at-top,wrong-import-order


def _discriminator(**kwargs):
  tf.keras.utils.set_random_seed(0)
  return discriminator_lib.Discriminator(resolution=32, ch=4, z_dim=8,
                                         mlp_width=16, mlp_blocks=2, **kwargs)


X = tf.random.stateless_uniform([6, 32, 32, 3], [1, 2], -1.0, 1.0)
Z = tf.random.stateless_normal([6, 8], [3, 4])


def test_switches_off_are_the_paper_discriminator_exactly():
  plain = _discriminator()
  off = _discriminator(mlp_dropout=0.0, joint_x_width=None)
  assert [v.shape for v in plain.weights] == [v.shape for v in off.weights]
  for a, b in zip(plain.weights, off.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for training_mode in (False, True):
    first, second = plain((X, Z), training=training_mode), off(
        (X, Z), training=training_mode)
    for key in common.SCORE_KEYS:
      np.testing.assert_array_equal(first[key].numpy(), second[key].numpy())


def test_dropout_acts_in_training_only():
  plain = _discriminator()
  dropped = _discriminator(mlp_dropout=0.5)
  for a, b in zip(plain.weights, dropped.weights):
    b.assign(a)
  inference = dropped((X, Z), training=False)
  reference = plain((X, Z), training=False)
  for key in common.SCORE_KEYS:
    np.testing.assert_allclose(inference[key].numpy(), reference[key].numpy(),
                               rtol=1e-6)
  one = dropped((X, Z), training=True)
  two = dropped((X, Z), training=True)
  assert not np.allclose(one["score_z"].numpy(), two["score_z"].numpy())
  # s_x does not pass through H or J: dropout leaves it alone.
  np.testing.assert_allclose(one["score_x"].numpy(),
                             plain((X, Z), training=True)["score_x"].numpy(),
                             rtol=1e-5)
  with pytest.raises(ValueError, match="dropout must be in"):
    _discriminator(mlp_dropout=1.0)


def test_joint_x_width_feeds_j_a_projection_of_the_whole_feature_map():
  wide = _discriminator(joint_x_width=64)
  # F's last map at 32 px: 8 x 8 x (4 * ch) = 1,024 numbers -> 64.
  assert wide.joint_x_projection.kernel.shape == (8 * 8 * 16, 64)
  first_j = wide.j_net.linears[0][0].kernel
  assert first_j.shape[0] == 64 + 16  # Projection + H(z).
  with tf.GradientTape() as tape:
    score = tf.reduce_sum(wide((X, Z), training=True)["score_xz"])
  grads = tape.gradient(score, wide.joint_x_projection.trainable_variables)
  assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0
             for g in grads)
  plain = _discriminator()
  assert plain.joint_x_projection is None
  assert plain.j_net.linears[0][0].kernel.shape[0] == 16 + 16  # 4 * ch + H.
  with pytest.raises(ValueError, match="joint_x_width"):
    _discriminator(joint_x_width=0)


def test_diff_augment_transforms_and_keeps_gradients():
  images = tf.random.stateless_uniform([4, 16, 16, 3], [5, 6], -1.0, 1.0)
  seed = tf.constant([7, 8], tf.int64)
  assert diff_augment.diff_augment(images, (), seed) is images
  shifted = diff_augment.diff_augment(images, ("translation",), seed)
  assert shifted.shape == images.shape
  assert not np.allclose(shifted.numpy(), images.numpy())
  # A translation moves pixels; it does not change their values.
  assert set(np.round(shifted.numpy().ravel(), 5)) <= set(
      np.round(images.numpy().ravel(), 5)) | {-1.0}
  cut = diff_augment.diff_augment(images, ("cutout",), seed).numpy()
  zeros = np.all(cut == 0.0, axis=-1).sum(axis=(1, 2))
  assert np.all(zeros >= 16) and np.all(zeros <= 64)  # At most 8 x 8.
  # Same seed, same transform; another seed, another.
  again = diff_augment.diff_augment(images, ("translation",), seed)
  np.testing.assert_array_equal(again.numpy(), shifted.numpy())
  with tf.GradientTape() as tape:
    tape.watch(images)
    total = tf.reduce_sum(diff_augment.diff_augment(
        images, diff_augment.POLICIES, seed))
  assert float(tf.reduce_sum(tf.abs(tape.gradient(total, images)))) > 0
  with pytest.raises(ValueError, match="Unknown augmentation"):
    diff_augment.diff_augment(images, ("flip",), seed)
  with pytest.raises(ValueError, match="write \\('cutout',\\)"):
    diff_augment.check_policy("cutout")


def _one_step_metrics(bindings):
  tf.config.run_functions_eagerly(True)
  try:
    config.parse(["smoke.gin"], ["trainer.d_steps = 1"] + bindings)
    tf.keras.utils.set_random_seed(0)
    model = config.build_model()
    trainer = training.Trainer(model, tf.distribute.get_strategy(), 8)
    metrics = trainer.train_loop(
        iter(training_worker.synthetic_dataset(8)), tf.constant(1))
    return {k: float(v) for k, v in metrics.items()}
  finally:
    tf.config.run_functions_eagerly(False)


def test_trainer_augments_only_what_d_sees():
  plain = _one_step_metrics([])
  augmented = _one_step_metrics(
      ["trainer.augment_policy = ('translation', 'cutout')"])
  assert plain.keys() == augmented.keys()
  # D's scores change (its images do); the step still runs and is finite.
  assert plain["scores/encoder_pairs/score_x"] != pytest.approx(
      augmented["scores/encoder_pairs/score_x"], rel=1e-6)
  assert all(np.isfinite(v) for v in augmented.values())
  with pytest.raises(ValueError, match="Unknown augmentation"):
    _one_step_metrics(["trainer.augment_policy = ('blur',)"])


def test_step_reports_hinge_activity_and_latent_gradient_split(monkeypatch):
  # D's scores in the step's one D update, as the trainer passes them on.
  seen = []
  hinge_activity = losses.hinge_activity

  def recording(encoder_scores, generator_scores):
    seen.append({"encoder": {k: v.numpy() for k, v in encoder_scores.items()},
                 "generator": {k: v.numpy()
                               for k, v in generator_scores.items()}})
    return hinge_activity(encoder_scores, generator_scores)

  monkeypatch.setattr(losses, "hinge_activity", recording)
  metrics = _one_step_metrics(["trainer.gradient_diagnostics = True"])
  (scores,) = seen  # d_steps = 1.
  # D's hinge loss max(0, 1 - y s) is active where y s < 1: y = +1 for
  # encoder pairs (real), -1 for generator pairs; the metric is the share
  # of the batch of 8.
  for pair, sign in (("encoder", 1.0), ("generator", -1.0)):
    for score in common.SCORE_KEYS:
      values = scores[pair][score]
      assert values.shape == (8,)
      assert metrics[f"hinge_active/{pair}_{score}"] == (
          np.sum(sign * values < 1.0) / 8)
  assert metrics["grad_sq/z_hat_score_z"] > 0
  assert metrics["grad_sq/z_hat_score_xz"] > 0
  assert actions.gradient_shares({"grad_sq/z_hat_score_xz": 9.0,
                                   "grad_sq/z_hat_score_z": 1.0}) == {
                                       "grad_share/z_hat_from_score_xz": 0.75}
  assert actions.gradient_shares({"loss/d": 1.0}) == {}
