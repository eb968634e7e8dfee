"""Cross-replica batch normalisation, plain and conditional.

BigBiGAN uses full cross-replica batch norm in G and E (docs/design.md section 3):
moments are computed over the global batch, summed across replicas through
the replica context. One function, `cross_replica_moments`, states that math
once; both layers below use it.

Moving statistics have two update modes:
  * training: exponential moving average with `momentum`;
  * standing statistics (`accumulating_standing_stats(model)`): the moving
    statistics are reset and replaced by the running mean of the batch
    moments of every training-mode call, which is how BigGAN recomputes BN
    statistics for EMA weights before evaluation or export.

A training-mode call with `update_statistics=False` normalises with the batch
moments (and back-propagates through them) but leaves the moving statistics
alone: the RevNet's memory-saving backward pass recomputes its units' forward
pass that way (bigbigan_tf/networks/revnet.py), so each training step still
folds every batch into the statistics exactly once.

Within `reference_moments(model, count=n)` a training-mode call takes its
moments from the first n examples of each replica's batch only (over all
replicas) and normalises the whole batch with them: the training step
encodes real images and generated ones in one pass that way, so that the
generated images are normalised as real images' statistics normalise them
at inference.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import keras
import tensorflow as tf

from bigbigan_tf.layers import spectral_norm


def cross_replica_moments(x: tf.Tensor,
                          axes: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
  """Mean and (biased) variance of `x` over `axes` and over all replicas.

  Outside a multi-replica context this is the ordinary batch moment.
  Computed in float32 whatever the input dtype.

  Args:
    x: a tensor.
    axes: the axes reduced within each replica (e.g. [0, 1, 2] for NHWC).

  Returns:
    (mean, variance), each shaped like x with `axes` removed.
  """
  x = tf.cast(x, tf.float32)
  local_count = tf.cast(
      tf.reduce_prod([tf.shape(x)[a] for a in axes]), tf.float32)
  local_sum = tf.reduce_sum(x, axis=axes)
  local_sq_sum = tf.reduce_sum(tf.square(x), axis=axes)
  replica_ctx = tf.distribute.get_replica_context()
  if replica_ctx is not None and replica_ctx.num_replicas_in_sync > 1:
    local_sum, local_sq_sum, local_count = replica_ctx.all_reduce(
        tf.distribute.ReduceOp.SUM, [local_sum, local_sq_sum, local_count])
  mean = local_sum / local_count
  variance = tf.maximum(local_sq_sum / local_count - tf.square(mean), 0.0)
  return mean, variance


class CrossReplicaBatchNorm(keras.layers.Layer):
  """Batch norm over the channel (last) axis with cross-replica moments.

  Args:
    momentum: decay of the moving statistics.
    epsilon: added to the variance.
    center: learn an offset (beta).
    scale: learn a gain (gamma). center=scale=False is the parameter-free BN
      used for the BN+CReLU features.
  """

  def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5,
               center: bool = True, scale: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.momentum = momentum
    self.epsilon = epsilon
    self.center = center
    self.scale = scale
    self.accumulate_standing = False
    # Off inside `moving_statistics_frozen`: training-mode calls then
    # normalise with batch moments and leave the moving statistics alone.
    self.track_moving_statistics = True
    # Set inside `reference_moments`: moments from the first N examples.
    self.reference_count = None

  def build(self, input_shape):
    channels = int(input_shape[-1])
    self.gamma = (self.add_weight(name="gamma", shape=(channels,),
                                  initializer="ones") if self.scale else None)
    self.beta = (self.add_weight(name="beta", shape=(channels,),
                                 initializer="zeros") if self.center else None)
    self._build_moving_statistics(channels)

  def _build_moving_statistics(self, channels: int) -> None:
    # Replicas hold identical statistics (the moments are all-reduced), so
    # each replica updates its own copy (aggregation NONE): no cross-replica
    # traffic in the step; on a TPU, a raw assign inside the program.
    self.moving_mean = self.add_weight(
        name="moving_mean", shape=(channels,), initializer="zeros",
        trainable=False, aggregation="none", autocast=False)
    self.moving_variance = self.add_weight(
        name="moving_variance", shape=(channels,), initializer="ones",
        trainable=False, aggregation="none", autocast=False)
    self.standing_count = self.add_weight(
        name="standing_count", shape=(), initializer="zeros",
        trainable=False, aggregation="none", autocast=False)

  def _moments(self, x: tf.Tensor, training: Optional[bool],
               update_statistics: bool = True):
    """Returns the moments to normalise with, updating statistics if training
    (and `update_statistics`)."""
    if not training:
      return (tf.convert_to_tensor(self.moving_mean),
              tf.convert_to_tensor(self.moving_variance))
    axes = list(range(len(x.shape) - 1))
    reference = x if self.reference_count is None else x[:self.reference_count]
    mean, variance = cross_replica_moments(reference, axes)
    if update_statistics:
      self._update_statistics(mean, variance)
    return mean, variance

  def _update_statistics(self, mean: tf.Tensor, variance: tf.Tensor) -> None:
    """Folds one training batch's moments into the moving statistics."""
    if self.accumulate_standing:
      count = self.standing_count + 1.0
      self.moving_mean.assign(
          self.moving_mean + (mean - self.moving_mean) / count)
      self.moving_variance.assign(
          self.moving_variance + (variance - self.moving_variance) / count)
      self.standing_count.assign(count)
    else:
      self.moving_mean.assign(self.momentum * self.moving_mean +
                              (1.0 - self.momentum) * mean)
      self.moving_variance.assign(self.momentum * self.moving_variance +
                                  (1.0 - self.momentum) * variance)

  def _batch_normalize(self, x: tf.Tensor, training: Optional[bool],
                       gain: Optional[tf.Tensor], offset: Optional[tf.Tensor],
                       update_statistics: bool = True):
    """x normalised (then scaled by gain, shifted by offset), statistics
    updated in training mode unless `update_statistics` is False.

    On one replica a training-mode call of a float32 [N, C] or [N, H, W, C]
    tensor uses TensorFlow's fused batch norm: one op forward and one
    backward with the math of `cross_replica_moments` (the quickstart's step
    is 9% faster for it, docs/benchmarks.md). Across replicas the moments
    are all-reduced.
    """
    update_statistics = update_statistics and self.track_moving_statistics
    replica_ctx = tf.distribute.get_replica_context()
    fusable = (training and self.reference_count is None
               and x.dtype == tf.float32 and x.shape.rank in (2, 4)
               and (replica_ctx is None or replica_ctx.num_replicas_in_sync == 1))
    if not fusable:
      mean, variance = self._moments(x, training, update_statistics)
      return self._normalize(x, mean, variance, gain, offset)
    channels = int(x.shape[-1])
    x4 = x if x.shape.rank == 4 else x[:, None, None, :]
    y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x4, scale=tf.ones([channels]) if gain is None else gain,
        offset=tf.zeros([channels]) if offset is None else offset,
        mean=tf.zeros([0]), variance=tf.zeros([0]), epsilon=self.epsilon,
        exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
    # The fused op reports the Bessel-corrected variance; it normalises
    # with the biased one, which is what the moving statistics hold here.
    count = tf.cast(tf.size(x4) // channels, tf.float32)
    variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / count
    if update_statistics:
      self._update_statistics(tf.stop_gradient(mean),
                              tf.stop_gradient(variance))
    return y if x.shape.rank == 4 else y[:, 0, 0, :]

  def reset_standing_statistics(self) -> None:
    self.moving_mean.assign(tf.zeros_like(self.moving_mean))
    self.moving_variance.assign(tf.zeros_like(self.moving_variance))
    self.standing_count.assign(0.0)

  def _normalize(self, x, mean, variance, gain, offset):
    inv = tf.math.rsqrt(variance + self.epsilon)
    if gain is not None:
      inv = inv * gain
    shift = -mean * inv
    if offset is not None:
      shift = shift + offset
    return x * tf.cast(inv, x.dtype) + tf.cast(shift, x.dtype)

  def call(self, inputs, training=None, update_statistics=True):
    """BN(inputs); `update_statistics=False` keeps the moving statistics."""
    gain = None if self.gamma is None else tf.cast(self.gamma, tf.float32)
    offset = None if self.beta is None else tf.cast(self.beta, tf.float32)
    return self._batch_normalize(inputs, training, gain, offset,
                                 update_statistics)


class ConditionalBatchNorm(CrossReplicaBatchNorm):
  """BigGAN's conditional BN: gain and bias are linear in a conditioning vector.

  out = BN(x) * (1 + W_gamma c) + W_beta c, with c the concatenation of a
  latent chunk and the shared class embedding. The moments are cross-replica.
  The linear maps are spectrally normalised and bias-free (BigGAN).

  Call as `layer((x, condition), training=...)`.
  """

  def __init__(self, use_spectral_norm: bool = True, momentum: float = 0.9,
               epsilon: float = 1e-5, **kwargs):
    super().__init__(momentum=momentum, epsilon=epsilon, center=False,
                     scale=False, **kwargs)
    self.use_spectral_norm = use_spectral_norm

  def build(self, input_shape):
    x_shape, cond_shape = input_shape
    channels = int(x_shape[-1])
    self.gain_linear = spectral_norm.SNDense(
        channels, use_bias=False, use_spectral_norm=self.use_spectral_norm,
        name="gain")
    self.bias_linear = spectral_norm.SNDense(
        channels, use_bias=False, use_spectral_norm=self.use_spectral_norm,
        name="bias")
    self.gain_linear.build(cond_shape)
    self.bias_linear.build(cond_shape)
    self.gamma = None
    self.beta = None
    self._build_moving_statistics(channels)

  def call(self, inputs, training=None):
    x, condition = inputs
    normalized = self._batch_normalize(x, training, None, None)
    gain = 1.0 + self.gain_linear(condition, training=training)
    offset = self.bias_linear(condition, training=training)
    gain = tf.cast(gain, x.dtype)[:, None, None, :]
    offset = tf.cast(offset, x.dtype)[:, None, None, :]
    return normalized * gain + offset


def batch_norm_layers(model: keras.layers.Layer) -> list[CrossReplicaBatchNorm]:
  """All cross-replica BN layers inside `model` (by object, not by name)."""
  return [layer for layer in model._flatten_layers(include_self=True)  # pylint: disable=protected-access
          if isinstance(layer, CrossReplicaBatchNorm)]


def reset_standing_statistics(*models: keras.layers.Layer) -> None:
  """Zeroes the moving statistics and standing counts of every BN layer of
  `models` (eagerly, or inside a compiled step)."""
  for layer in (l for m in models for l in batch_norm_layers(m)):
    layer.reset_standing_statistics()


@contextlib.contextmanager
def standing_statistics_mode(*models: keras.layers.Layer) -> Iterator[None]:
  """Within the block, training-mode calls of `models` add their batch
  moments to the standing statistics (read when a call is traced). Nothing
  is reset: `reset_standing_statistics` first."""
  layers = [l for m in models for l in batch_norm_layers(m)]
  for layer in layers:
    layer.accumulate_standing = True
  try:
    yield
  finally:
    for layer in layers:
      layer.accumulate_standing = False


@contextlib.contextmanager
def accumulating_standing_stats(*models: keras.layers.Layer) -> Iterator[None]:
  """Within the block, training-mode calls accumulate standing BN statistics.

  On entry every BN layer of `models` is reset; each training-mode forward
  pass inside the block adds its batch moments to a running mean, which
  becomes the moving statistics used at inference. Trace a fresh
  tf.function inside the block (the switch is a Python attribute).
  """
  reset_standing_statistics(*models)
  with standing_statistics_mode(*models):
    yield


@contextlib.contextmanager
def _batch_norm_attribute(models, name: str, value) -> Iterator[None]:
  """Sets attribute `name` of every BN layer of `models` to `value` within
  the block, restoring each layer's own value after it."""
  layers = [l for m in models for l in batch_norm_layers(m)]
  previous = [getattr(layer, name) for layer in layers]
  for layer in layers:
    setattr(layer, name, value)
  try:
    yield
  finally:
    for layer, old in zip(layers, previous):
      setattr(layer, name, old)


@contextlib.contextmanager
def moving_statistics_frozen(*models: keras.layers.Layer) -> Iterator[None]:
  """Within the block, training-mode calls of `models` normalise with their
  batch moments but do not update the moving statistics (read at trace time,
  like `accumulating_standing_stats`).

  The training step encodes generated images this way for the latent
  regression term, so that E's statistics come from real images only.
  """
  with _batch_norm_attribute(models, "track_moving_statistics", False):
    yield


@contextlib.contextmanager
def reference_moments(*models: keras.layers.Layer,
                      count: Optional[int]) -> Iterator[None]:
  """Within the block, training-mode calls of `models` take batch norm's
  moments from the first `count` examples of each replica's batch (those
  moments also update the moving statistics) and normalise every example
  with them. `count` None: the whole batch, as outside the block. Read at
  trace time, like `moving_statistics_frozen`.
  """
  if count is not None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
      raise ValueError("reference_moments needs count, a Python int >= 1 "
                       f"(or None); received {count!r}.")
  with _batch_norm_attribute(models, "reference_count", count):
    yield


def reference_count(*models: keras.layers.Layer) -> Optional[int]:
  """The `reference_moments` count now set on `models` (None outside)."""
  counts = {l.reference_count for m in models for l in batch_norm_layers(m)}
  if len(counts) > 1:
    raise ValueError(f"models mix reference counts {sorted(counts, key=str)}.")
  return counts.pop() if counts else None
