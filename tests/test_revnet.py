"""The RevNet encoder: the paper's architecture and reversible back-propagation.

Architecture facts are checked on RevNet-50 x1 at 128x128 (paper-size
counts, with the x4 ones, are in tests/test_networks.py). Reversible
back-propagation (`encoder.reversible_backprop`) must give the gradients of
ordinary back-propagation, for the input and every trainable variable, and
the same batch-norm moving statistics after a training step: eagerly, in a
tf.function, XLA-compiled, and across 2 replicas (2 logical CPUs,
tests/conftest.py). Those checks use a small RevNet (4 base channels, two
stages of three units, so that the backward pass reconstructs the input of
a unit from its output (the first unit's input is the stage's), 32x32
inputs, float32).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import conftest  # pylint: disable=g-bad-import-order
from bigbigan_tf import networks
from bigbigan_tf.layers import normalization
from bigbigan_tf.networks import revnet

# RevNet-50: units per stage and the channels C of each stage at x1.
UNITS = (3, 4, 6, 3)
STAGE_CHANNELS = (256, 512, 1024, 2048)


def _params(*layers) -> int:
  return sum(int(np.prod(v.shape)) for layer in layers
             for v in layer.trainable_weights)


@pytest.fixture(scope="module")
def revnet50():
  return networks.Encoder(resolution=128, architecture="revnet", z_dim=8,
                          mlp_width=16, mlp_blocks=1)


def test_revnet50_root_units_and_stage_widths(revnet50):
  # The root convolution alone grows the channels: RGB -> 4 * 64.
  assert tuple(revnet50.stem_conv.kernel.shape) == (7, 7, 3, 256)
  assert len(revnet50.units) == 16
  assert all(isinstance(u, revnet.ReversibleUnit) for u in revnet50.units)
  widths = [c for c, n in zip(STAGE_CHANNELS, UNITS) for _ in range(n)]
  for unit, channels in zip(revnet50.units, widths):
    f = unit.f
    # One pre-activation bottleneck C/2 -> C/8 -> C/8 -> C/2, no shortcut.
    assert tuple(f.bn0.gamma.shape) == (channels // 2,)
    assert tuple(f.conv1.kernel.shape) == (1, 1, channels // 2, channels // 8)
    assert tuple(f.conv2.kernel.shape) == (3, 3, channels // 8, channels // 8)
    assert tuple(f.conv3.kernel.shape) == (1, 1, channels // 8, channels // 2)
    assert _params(unit) == 17 * channels**2 // 64 + 3 * channels // 2


def test_revnet50_transitions_have_no_parameters(revnet50):
  x = tf.random.uniform([2, 128, 128, 3], -1, 1)
  h = tf.nn.max_pool2d(revnet50.stem_conv(x), 3, 2, "SAME")
  first = 0
  for stage, (count, channels) in enumerate(zip(UNITS, STAGE_CHANNELS)):
    if stage:
      h = revnet.pool_and_double_channels(h)
    size = 32 // 2**stage
    assert h.shape == (2, size, size, channels)
    h = revnet.reversible_sequence(revnet50.units[first:first + count], h)
    first += count
  # Every weight of the backbone is in the root, the units or the last BN.
  backbone = _params(revnet50.stem_conv, *revnet50.units, revnet50.final_bn)
  assert backbone == _params(revnet50) - _params(
      revnet50.head, revnet50.head_bn, revnet50.mu, revnet50.sigma_hat)
  assert backbone == 5_408_640
  # BN without ReLU before the pooling: features can be negative.
  features = revnet50(x, training=False)["avepool_feat"]
  assert features.shape == (2, 2048)
  manual = tf.reduce_mean(revnet50.final_bn(h, training=False), axis=[1, 2])
  np.testing.assert_allclose(features, manual, rtol=1e-5, atol=1e-5)


def test_transition_pools_and_zero_pads_channels():
  x = tf.random.normal([1, 4, 4, 6])
  y = revnet.pool_and_double_channels(x)
  assert y.shape == (1, 2, 2, 12)
  np.testing.assert_array_equal(y[..., :3], 0.0)
  np.testing.assert_array_equal(y[..., 9:], 0.0)
  np.testing.assert_allclose(y[..., 3:9], tf.nn.avg_pool2d(x, 2, 2, "SAME"),
                             rtol=1e-6)


def test_unit_output_layout_and_inverse(revnet50):
  unit = revnet50.units[0]
  x = tf.random.normal([2, 8, 8, 256])
  y = unit(x, training=False)
  x1, x2 = tf.split(x, 2, axis=-1)
  np.testing.assert_array_equal(y[..., :128], x2)
  np.testing.assert_allclose(y[..., 128:], x1 + unit.f(x2, training=False),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(unit.inverse(y, training=False), x, atol=1e-4)


def test_bad_configs_are_clear_errors():
  with pytest.raises(ValueError, match="reversible_backprop.*revnet.*resnet_v2"):
    networks.Encoder(resolution=32, architecture="resnet_v2",
                     reversible_backprop=True)
  with pytest.raises(ValueError, match="depth.*revnet.*101"):
    networks.Encoder(resolution=32, architecture="revnet", depth=101)
  with pytest.raises(ValueError, match="units_per_stage"):
    networks.Encoder(resolution=32, architecture="revnet",
                     units_per_stage=(2, 0))


@pytest.mark.parametrize("replicas", [1, 2])
def test_batch_norm_recomputation_leaves_moving_statistics(replicas):
  """update_statistics=False: batch moments (all-reduced across replicas),
  moving statistics untouched; one device's fused kernel and the replicas'
  sums alike."""
  x = tf.random.normal([8, 4, 4, 6], seed=3) * 2.0 + 1.0
  strategy = (conftest.two_replica_strategy() if replicas == 2
              else tf.distribute.get_strategy())
  with strategy.scope():
    bn = normalization.CrossReplicaBatchNorm()
    bn.build(x.shape)
  half = 8 // replicas
  inputs = strategy.experimental_distribute_values_from_function(
      lambda ctx: x[ctx.replica_id_in_sync_group * half:][:half])
  run = lambda **kwargs: tf.concat(strategy.experimental_local_results(
      strategy.run(tf.function(lambda t: bn(t, training=True, **kwargs)),
                   args=(inputs,))), axis=0)
  recomputed = run(update_statistics=False)
  np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)
  np.testing.assert_array_equal(bn.moving_variance.numpy(), 1.0)
  mean, variance = tf.nn.moments(x, [0, 1, 2])
  np.testing.assert_allclose(
      recomputed, (x - mean) * tf.math.rsqrt(variance + 1e-5), atol=1e-4)
  np.testing.assert_allclose(run(), recomputed, atol=1e-5)
  np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, atol=1e-5)


# -- reversible back-propagation --------------------------------------------------

BATCH = 8


def _small_revnet(reversible_backprop: bool):
  return networks.Encoder(
      resolution=32, architecture="revnet", base_channels=16,
      units_per_stage=(3, 3), stem="small", z_dim=6, mlp_width=8,
      mlp_blocks=1, latent_mode="deterministic",
      reversible_backprop=reversible_backprop)


def _inputs():
  rng = np.random.default_rng(0)
  x = tf.constant(rng.uniform(-1, 1, [BATCH, 32, 32, 3]).astype(np.float32))
  # Fixed random projections of E's outputs make a loss whose gradient
  # reaches every variable.
  w_feat = tf.constant(rng.normal(size=[1, 128]).astype(np.float32))
  w_z = tf.constant(rng.normal(size=[1, 6]).astype(np.float32))
  return x, w_feat, w_z


def _loss_and_gradients(encoder, x, w_feat, w_z):
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = encoder(x, training=True)
    loss = (tf.reduce_sum(out["avepool_feat"] * w_feat)
            + tf.reduce_sum(out["z_mean"] * w_z))
  return loss, tape.gradient(loss, [x] + encoder.trainable_variables)


def _pair():
  """Two small RevNets with the same weights, without and with the option.

  Batch norm's offsets start at 0, which puts the zero-padded channels of a
  stage's first unit exactly on ReLU's kink, where XLA's and TensorFlow's
  kernels pick different (equally valid) subgradients. Random gains and
  offsets move every pre-activation off the kink.
  """
  keras.utils.set_random_seed(0)
  plain, reversible = _small_revnet(False), _small_revnet(True)
  rng = np.random.default_rng(1)
  for layer in normalization.batch_norm_layers(plain):
    for weight in (layer.gamma, layer.beta):
      if weight is not None:
        weight.assign(weight + rng.normal(
            0.0, 0.2, weight.shape).astype(np.float32))
  reversible.set_weights(plain.get_weights())
  return plain, reversible


def _moving_statistics(encoder):
  return [v.numpy() for layer in normalization.batch_norm_layers(encoder)
          for v in (layer.moving_mean, layer.moving_variance)]


def _assert_same_gradients(expected, got, names, rtol=1e-4, atol=2e-5,
                           min_scale=0.0):
  """Equal to rtol 1e-4, elements near 0 to 2e-5 of the variable's largest.

  The reconstruction x1 = (x1 + f(x2)) - f(x2) is exact to float32
  rounding; batch norm's backward pass sums many such terms, so elements
  that nearly cancel are compared against the variable's scale (measured
  errors stay below 6e-6 of it, eagerly, in graph mode and with XLA).
  `min_scale` is a floor for that scale (for gradients that are 0 but for
  rounding: those of the linear biases ahead of a batch norm).
  """
  assert len(expected) == len(got) == len(names)
  for want, have, name in zip(expected, got, names):
    assert have is not None, name
    want, have = np.asarray(want), np.asarray(have)
    scale = max(float(np.max(np.abs(want))), min_scale) or 1.0
    np.testing.assert_allclose(have, want, rtol=rtol, atol=atol * scale,
                               err_msg=name)


def _names(encoder):
  return ["x"] + [v.path for v in encoder.trainable_variables]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_reversible_backprop_gradients_and_statistics_match(mode):
  plain, reversible = _pair()
  x, w_feat, w_z = _inputs()
  results = []
  for encoder in (plain, reversible):
    step = lambda x, e=encoder: _loss_and_gradients(e, x, w_feat, w_z)
    if mode != "eager":
      step = tf.function(step, jit_compile=mode == "xla")
    loss, gradients = step(x)
    results.append((float(loss), gradients, _moving_statistics(encoder)))
  (loss, expected, stats), (rev_loss, got, rev_stats) = results
  np.testing.assert_allclose(rev_loss, loss, rtol=1e-5)
  _assert_same_gradients(expected, got, _names(plain))
  # One update of the moving statistics per step, the same one.
  assert not np.allclose(stats[0], 0.0)
  for want, have in zip(stats, rev_stats):
    np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_reversible_backprop_keeps_reference_moments_in_its_backward(mode):
  """The training step encodes [x; G(z)] with batch norm's moments from x's
  rows (layers.reference_moments) and takes the gradient after that block
  has ended: the recomputed backward pass must use the same moments."""
  plain, reversible = _pair()
  x, w_feat, w_z = _inputs()

  def loss_and_gradients(encoder, x, count):
    with tf.GradientTape() as tape:
      tape.watch(x)
      with normalization.reference_moments(encoder, count=count):
        out = encoder(x, training=True)
      loss = (tf.reduce_sum(out["avepool_feat"] * w_feat)
              + tf.reduce_sum(out["z_mean"] * w_z))
    return loss, tape.gradient(loss, [x] + encoder.trainable_variables)

  results = []
  for encoder, count in ((plain, BATCH // 2), (reversible, BATCH // 2),
                         (plain, None)):
    step = lambda x, e=encoder, c=count: loss_and_gradients(e, x, c)
    if mode != "eager":
      step = tf.function(step)
    results.append(step(x))
  (loss, expected), (rev_loss, got), (whole_loss, _) = results
  np.testing.assert_allclose(float(rev_loss), float(loss), rtol=1e-5)
  _assert_same_gradients(expected, got, _names(plain))
  # Half the batch's moments are not the whole batch's: the check bites.
  assert abs(float(whole_loss) - float(loss)) > 1e-3 * abs(float(loss))


def test_reversible_backprop_under_mirrored_strategy():
  """Two replicas with cross-replica BN: the recomputation all-reduces the
  same moments as the forward pass, so each replica's gradients (and the
  summed ones) equal ordinary back-propagation's."""
  strategy = conftest.two_replica_strategy()
  x, w_feat, w_z = _inputs()
  half = BATCH // 2
  with strategy.scope():
    plain, reversible = _pair()

  def per_replica_x(context):
    i = context.replica_id_in_sync_group
    return x[i * half:(i + 1) * half]

  distributed_x = strategy.experimental_distribute_values_from_function(
      per_replica_x)
  results = []
  for encoder in (plain, reversible):
    @tf.function
    def step(x, encoder=encoder):
      return strategy.run(
          lambda t: _loss_and_gradients(encoder, t, w_feat, w_z), args=(x,))
    _, gradients = step(distributed_x)
    results.append(([strategy.experimental_local_results(g)
                     for g in gradients], _moving_statistics(encoder)))
  (expected, stats), (got, rev_stats) = results
  names = _names(plain)
  for replica in range(2):
    _assert_same_gradients([g[replica] for g in expected],
                           [g[replica] for g in got],
                           [f"replica {replica}: {n}" for n in names])
  for want, have in zip(stats, rev_stats):
    np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)

  # Cross-replica moments: the replicas' variable gradients add up to those
  # of one device on the whole batch, and their input gradients are its
  # halves. One device uses the fused batch-norm kernel, the replicas the
  # all-reduced sums, hence a looser tolerance for the two implementations
  # (2% of each gradient's scale: with one CPU thread they differ by up to
  # 1.1%, with two by less than 0.1%); per-replica moments would be off by
  # 10-250% of each variable's scale.
  single = _small_revnet(True)
  single.set_weights(plain.get_weights())
  _, one_device = _loss_and_gradients(single, x, w_feat, w_z)
  combined = [tf.concat(got[0], axis=0)] + [g[0] + g[1] for g in got[1:]]
  _assert_same_gradients(one_device, combined, names, rtol=1e-3, atol=2e-2,
                         min_scale=1e-2)
