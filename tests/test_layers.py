"""Tests of spectral norm, cross-replica (conditional) BN and self-attention."""

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import layers

import conftest  # pylint: disable=g-bad-import-order


def _random_dense(seed=0, in_features=24, units=16):
  layer = layers.SNDense(units)
  layer.build((None, in_features))
  rng = np.random.default_rng(seed)
  layer.kernel.assign(rng.normal(size=(in_features, units)).astype(np.float32))
  return layer


def test_sigma_converges_to_top_singular_value():
  layer = _random_dense()
  for _ in range(300):
    layer.spectral_norm_estimate(training=True)
  top = np.linalg.svd(layer.kernel.numpy(), compute_uv=False)[0]
  sigma = float(layer.spectral_norm_estimate(training=False))
  np.testing.assert_allclose(sigma, top, rtol=1e-4)


def test_conv_sigma_is_that_of_reshaped_kernel():
  conv = layers.SNConv2D(8, 3)
  conv.build((None, 6, 6, 5))
  rng = np.random.default_rng(1)
  conv.kernel.assign(rng.normal(size=(3, 3, 5, 8)).astype(np.float32))
  for _ in range(300):
    conv.spectral_norm_estimate(training=True)
  top = np.linalg.svd(conv.kernel.numpy().reshape(-1, 8), compute_uv=False)[0]
  np.testing.assert_allclose(float(conv.spectral_norm_estimate()), top,
                             rtol=1e-4)
  x = tf.random.normal([2, 6, 6, 5])
  reference = tf.nn.conv2d(x, conv.kernel / top, 1, "SAME") + conv.bias
  np.testing.assert_allclose(conv(x), reference, atol=1e-4)


def test_conv_adds_a_residual_branch_before_its_bias():
  conv = layers.SNConv2D(4, 3)
  conv.build((None, 6, 6, 5))
  conv.bias.assign(np.arange(1.0, 5.0, dtype=np.float32))
  x = tf.random.normal([2, 6, 6, 5])
  residual = tf.random.normal([2, 6, 6, 4])
  np.testing.assert_allclose(conv(x, residual=residual), conv(x) + residual,
                             atol=1e-5)


def test_forward_leaves_raw_kernel_unchanged_and_inference_keeps_u():
  layer = _random_dense()
  kernel_before = layer.kernel.numpy().copy()
  u_before = layer.sn_u.numpy().copy()
  x = tf.random.normal([4, 24])
  layer(x, training=False)
  layer(x)  # training=None is inference
  np.testing.assert_array_equal(layer.sn_u.numpy(), u_before)
  layer(x, training=True)
  np.testing.assert_array_equal(layer.kernel.numpy(), kernel_before)
  assert not np.allclose(layer.sn_u.numpy(), u_before)


def test_gradient_flows_through_sigma():
  layer = _random_dense(seed=2)
  x = tf.random.normal([5, 24], seed=3)
  weights = tf.random.normal([5, 16], seed=4)
  u = layer.sn_u.numpy()
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x, training=True) * weights)
  grad = tape.gradient(loss, layer.kernel)

  # Reference: autodiff of W / (u'^T W v) with u', v the power-iteration
  # constants, computed here independently in NumPy.
  w = layer.kernel.numpy()
  v = u @ w.T
  v /= np.linalg.norm(v)
  u_new = v @ w
  u_new /= np.linalg.norm(u_new)
  w_var = tf.Variable(w)
  with tf.GradientTape() as tape:
    sigma = tf.reduce_sum(tf.matmul(tf.constant(v), w_var) * u_new)
    ref_loss = tf.reduce_sum(
        (tf.matmul(x, w_var / sigma) + layer.bias) * weights)
  ref_grad = tape.gradient(ref_loss, w_var)
  np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-5)
  # Negative control: ignoring sigma's dependence on W gives another gradient.
  no_sigma_grad = tf.matmul(x, weights, transpose_a=True) / sigma
  assert not np.allclose(grad, no_sigma_grad, atol=1e-4)


def test_u_is_saved_in_checkpoints(tmp_path):
  layer = _random_dense()
  for _ in range(3):
    layer(tf.ones([1, 24]), training=True)
  path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
  restored = _random_dense(seed=9)
  tf.train.Checkpoint(layer=restored).restore(path).assert_consumed()
  np.testing.assert_array_equal(restored.sn_u.numpy(), layer.sn_u.numpy())


def _two_replica_strategy():
  return conftest.two_replica_strategy()


def _run_per_replica(strategy, fn, x_global, *extra_global):
  """Runs fn on each replica's half of the global batch; concatenates."""
  half = x_global.shape[0] // 2

  def value_fn(ctx):
    i = ctx.replica_id_in_sync_group
    return tuple(t[i * half:(i + 1) * half] for t in (x_global,) + extra_global)

  inputs = strategy.experimental_distribute_values_from_function(value_fn)
  outputs = strategy.run(tf.function(lambda args: fn(*args)), args=(inputs,))
  return tf.concat(strategy.experimental_local_results(outputs), axis=0)


def test_cross_replica_bn_equals_full_batch_bn():
  x = tf.random.normal([8, 4, 4, 6], seed=5) * 3.0 + 1.0
  # Make the two halves differ so per-replica moments are visibly wrong.
  x = tf.concat([x[:4] + 5.0, x[4:]], axis=0)
  single = layers.CrossReplicaBatchNorm()
  expected = single(x, training=True)
  strategy = _two_replica_strategy()
  with strategy.scope():
    synced = layers.CrossReplicaBatchNorm()
    synced.build(x.shape)
    per_replica = tf.keras.layers.BatchNormalization(
        synchronized=False, momentum=0.9, epsilon=1e-5)
    per_replica.build(x.shape)
  got = _run_per_replica(strategy, lambda t: synced(t, training=True), x)
  np.testing.assert_allclose(got, expected, atol=1e-5)
  np.testing.assert_allclose(synced.moving_mean.numpy(),
                             single.moving_mean.numpy(), atol=1e-6)
  np.testing.assert_allclose(synced.moving_variance.numpy(),
                             single.moving_variance.numpy(), atol=1e-5)
  # Negative control: per-replica BN normalises each half on its own.
  local = _run_per_replica(strategy, lambda t: per_replica(t, training=True),
                           x)
  assert np.max(np.abs(local.numpy() - expected.numpy())) > 0.5


@pytest.mark.parametrize("replicas", [1, 2])
def test_reference_moments_normalise_every_row_by_the_first_rows(replicas):
  """Each replica holds [real rows; other rows]: the moments (and the moving
  statistics' update) come from the real rows of every replica, and every
  row is normalised with them."""
  real = tf.random.normal([8, 4, 4, 6], seed=7) * 2.0 + 1.0
  other = tf.random.normal([8, 4, 4, 6], seed=8) * 5.0 - 3.0
  mean, variance = tf.nn.moments(real, axes=[0, 1, 2])
  expected = (tf.concat([real, other], 0) - mean) * tf.math.rsqrt(
      variance + 1e-5)
  expected = expected.numpy()
  # Replica r holds [real_r; other_r]; the result is laid out the same way.
  halves = 4 if replicas == 2 else 8
  def layout(t):  # [real; other] -> per replica [real_r; other_r]
    return tf.concat([tf.concat([t[i:i + halves], t[8 + i:8 + i + halves]], 0)
                      for i in range(0, 8, halves)], 0)
  both = layout(tf.concat([real, other], 0))
  strategy = (_two_replica_strategy() if replicas == 2
              else tf.distribute.get_strategy())
  with strategy.scope():
    bn = layers.CrossReplicaBatchNorm(center=False, scale=False)
    bn.build(both.shape)

  def normalise(t):
    with layers.reference_moments(bn, count=halves):
      return bn(t, training=True)
  if replicas == 2:
    got = _run_per_replica(strategy, normalise, both)
  else:
    got = normalise(both)
  np.testing.assert_allclose(got.numpy(), layout(tf.constant(expected)).numpy(),
                             atol=1e-4)
  np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean.numpy(),
                             atol=1e-5)
  # Outside the block the layer normalises by the whole batch again.
  whole = bn(both, training=True).numpy()
  assert np.max(np.abs(whole - got.numpy())) > 0.1


@pytest.mark.parametrize("shape", [[16, 7], [6, 5, 3, 4]])
def test_one_replica_bn_is_fused_and_equals_the_reference_math(shape):
  """On one replica training-mode BN runs TensorFlow's fused op; its output,
  gradients and moving statistics equal the explicit moments' (NumPy)."""
  rng = np.random.default_rng(3)
  x = tf.constant(rng.normal(size=shape).astype(np.float32) * 3.0 + 2.0)
  upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
  bn = layers.CrossReplicaBatchNorm(momentum=0.8)
  bn.build(x.shape)
  bn.gamma.assign(rng.normal(size=shape[-1:]).astype(np.float32))
  bn.beta.assign(rng.normal(size=shape[-1:]).astype(np.float32))

  def loss_of(normalize):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = normalize(x)
      loss = tf.reduce_sum(y * upstream)
    return y, tape.gradient(loss, [x, bn.gamma, bn.beta])

  y, grads = loss_of(lambda t: bn(t, training=True))
  axes = tuple(range(len(shape) - 1))
  mean, var = x.numpy().mean(axis=axes), x.numpy().var(axis=axes)

  def reference(t):
    mu, variance = tf.nn.moments(t, axes)
    return (t - mu) * tf.math.rsqrt(variance + 1e-5) * bn.gamma + bn.beta

  expected_y, expected_grads = loss_of(reference)
  np.testing.assert_allclose(y, expected_y, atol=1e-5)
  for got, want in zip(grads, expected_grads):
    np.testing.assert_allclose(got, want, atol=1e-4)
  np.testing.assert_allclose(bn.moving_mean.numpy(), 0.2 * mean, atol=1e-5)
  np.testing.assert_allclose(bn.moving_variance.numpy(), 0.8 + 0.2 * var,
                             rtol=1e-5)
  graph = tf.function(lambda t: bn(t, training=True)).get_concrete_function(
      x).graph
  op_types = {op.type for op in graph.get_operations()}
  assert "FusedBatchNormV3" in op_types
  # Inference uses the moving statistics, not the fused training op.
  inference = tf.function(lambda t: bn(t, training=False)).get_concrete_function(
      x).graph
  assert "FusedBatchNormV3" not in {op.type for op in inference.get_operations()}


def test_conditional_bn_cross_replica_equals_full_batch():
  x = tf.random.normal([8, 4, 4, 6], seed=6)
  x = tf.concat([x[:4] * 4.0, x[4:]], axis=0)
  cond = tf.random.normal([8, 10], seed=7)
  single = layers.ConditionalBatchNorm()
  expected = single((x, cond), training=True)
  strategy = _two_replica_strategy()
  with strategy.scope():
    synced = layers.ConditionalBatchNorm()
    synced.build((x.shape, cond.shape))
  for mine, theirs in zip(synced.weights, single.weights):
    mine.assign(theirs.numpy() if "moving" not in mine.path else mine.numpy())
  got = _run_per_replica(
      strategy, lambda t, c: synced((t, c), training=True), x, cond)
  np.testing.assert_allclose(got, expected, atol=1e-4)
  # Gain and bias depend on the condition: another condition, another output.
  other = single((x, cond + 1.0), training=True)
  assert not np.allclose(other, expected, atol=1e-3)


def test_conditional_bn_is_identity_map_at_zero_condition_weights():
  x = tf.random.normal([16, 2, 2, 3], seed=8)
  bn = layers.ConditionalBatchNorm(use_spectral_norm=False)
  bn((x, tf.ones([16, 4])), training=True)
  bn.gain_linear.kernel.assign(tf.zeros_like(bn.gain_linear.kernel))
  bn.bias_linear.kernel.assign(tf.zeros_like(bn.bias_linear.kernel))
  out = bn((x, tf.ones([16, 4])), training=True).numpy()
  np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_standing_statistics_average_batch_moments():
  bn = layers.CrossReplicaBatchNorm()
  batches = [tf.random.normal([32, 5], seed=s) * (s + 1) + s
             for s in range(3)]
  bn(batches[0], training=True)
  with layers.accumulating_standing_stats(bn):
    for batch in batches:
      bn(batch, training=True)
  means = [b.numpy().mean(axis=0) for b in batches]
  variances = [b.numpy().var(axis=0) for b in batches]
  np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, axis=0),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(bn.moving_variance.numpy(),
                             np.mean(variances, axis=0), rtol=1e-4)
  assert not bn.accumulate_standing
  # Back to the exponential moving average outside the block.
  before = bn.moving_mean.numpy().copy()
  bn(batches[0] + 100.0, training=True)
  np.testing.assert_allclose(
      bn.moving_mean.numpy(), 0.9 * before + 0.1 * (means[0] + 100.0),
      rtol=1e-5)


def test_self_attention_starts_as_identity_and_mixes_positions():
  x = tf.random.normal([2, 8, 8, 16], seed=9)
  attention = layers.SelfAttention()
  np.testing.assert_allclose(attention(x, training=True), x)
  attention.gamma.assign(1.0)
  y = attention(x)
  assert y.shape == x.shape
  # Changing one position changes the output everywhere (non-local).
  x2 = tf.tensor_scatter_nd_add(x, [[0, 0, 0]], tf.ones([1, 16]) * 5.0)
  diff = np.abs(attention(x2).numpy() - y.numpy())[0]
  assert diff[7, 7].max() > 1e-4


def test_self_attention_rejects_narrow_inputs():
  with pytest.raises(ValueError, match="at least 8 channels"):
    layers.SelfAttention()(tf.zeros([1, 4, 4, 4]))
