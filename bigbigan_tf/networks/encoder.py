"""BigBiGAN's encoder E: ResNet-v2 or RevNet backbone, residual MLP head.

Backbones (units per stage; stage outputs 256, 512, 1024, 2048 channels
times `width` at base_channels=64):
  resnet_v2 depth 50:  3, 4, 6, 3        depth 101: 3, 4, 23, 3
  revnet    depth 50:  3, 4, 6, 3 (first unit of each stage is a
            down-sampling pre-activation bottleneck, the rest are reversible:
            x = [x1, x2], y1 = x1 + F(x2), y2 = x2 + G(y1), with F and G
            pre-activation bottlenecks on half the channels)

Then BN + ReLU, global average pooling (`avepool_feat`, 2048 * width wide),
a parameter-free BN and CReLU of it (`bn_crelu_feat`, twice as wide), and a
4-layer, 4096-unit residual MLP (2 blocks, BN + ReLU) into linear mu and
sigma-hat heads. Latent modes (DESIGN.md section 1):
  stochastic:    z = mu + eps * softplus(sigma_hat),  eps ~ N(0, I)
  deterministic: z = mu
  uniform:       z = tanh(mu), paired with a U(-1, 1) prior
Cross-replica BN everywhere, no spectral norm.

Parameter counts (trainable, resolution 128, z_dim 120; asserted in
tests/test_networks.py::test_paper_size_parameter_counts):
  ResNet-v2-50 x1 backbone: 23,500,352 (torchvision's ResNet-50 without
  its fc layer: 23,508,032; v2 moves BN/ReLU before the convs, leaving one
  BN per unit's input where v1 had one after the last conv).
  The 4096-wide head adds 2048*4096 + 3 * 4096^2 + biases + BN + 2 * 4096*120.
  RevNet-50 x4 total: see `REVNET50X4_TOTAL` in the tests and the README.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from bigbigan_tf import layers
from bigbigan_tf.networks import common
from bigbigan_tf.networks import mlp

RESNET_V2 = "resnet_v2"
REVNET = "revnet"
ARCHITECTURES = (RESNET_V2, REVNET)
UNITS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}

STOCHASTIC = "stochastic"
DETERMINISTIC = "deterministic"
UNIFORM = "uniform"
LATENT_MODES = (STOCHASTIC, DETERMINISTIC, UNIFORM)

IMAGENET_STEM = "imagenet"  # conv 7x7 / 2 + max-pool 3x3 / 2.
SMALL_STEM = "small"        # conv 3x3 / 1 (CIFAR-style, for 32x32 inputs).
STEMS = (IMAGENET_STEM, SMALL_STEM)


def _conv(filters: int, kernel_size: int, strides: int = 1, name=None):
  return layers.SNConv2D(filters, kernel_size, strides=strides, use_bias=False,
                         use_spectral_norm=False,
                         kernel_initializer="he_normal", name=name)


class BottleneckFunction(keras.layers.Layer):
  """Pre-activation bottleneck residual function (no shortcut).

  BN-ReLU-conv1x1(C/4)-BN-ReLU-conv3x3(C/4, stride)-BN-ReLU-conv1x1(C).
  With `preactivated`, the caller has already applied the first BN-ReLU.
  """

  def __init__(self, out_channels: int, strides: int = 1,
               preactivated: bool = False, **kwargs):
    super().__init__(**kwargs)
    inner = max(out_channels // 4, 1)
    self.bn0 = None if preactivated else layers.CrossReplicaBatchNorm(name="bn0")
    self.conv1 = _conv(inner, 1, name="conv1")
    self.bn1 = layers.CrossReplicaBatchNorm(name="bn1")
    self.conv2 = _conv(inner, 3, strides, name="conv2")
    self.bn2 = layers.CrossReplicaBatchNorm(name="bn2")
    self.conv3 = _conv(out_channels, 1, name="conv3")

  def call(self, inputs, training=None):
    h = inputs
    if self.bn0 is not None:
      h = tf.nn.relu(self.bn0(h, training=training))
    h = self.conv1(h)
    h = self.conv2(tf.nn.relu(self.bn1(h, training=training)))
    return self.conv3(tf.nn.relu(self.bn2(h, training=training)))


class BottleneckUnitV2(keras.layers.Layer):
  """ResNet-v2 unit: x + F(x), projecting the pre-activated x when needed."""

  def __init__(self, out_channels: int, strides: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.out_channels = out_channels
    self.strides = strides
    self.preact_bn = layers.CrossReplicaBatchNorm(name="preact_bn")
    self.residual = BottleneckFunction(out_channels, strides,
                                       preactivated=True, name="residual")
    self.projection = None

  def build(self, input_shape):
    if int(input_shape[-1]) != self.out_channels or self.strides != 1:
      self.projection = _conv(self.out_channels, 1, self.strides,
                              name="projection")

  def call(self, inputs, training=None):
    preact = tf.nn.relu(self.preact_bn(inputs, training=training))
    shortcut = (inputs if self.projection is None
                else self.projection(preact))
    return shortcut + self.residual(preact, training=training)


class ReversibleUnit(keras.layers.Layer):
  """RevNet unit on [x1, x2]: y1 = x1 + F(x2); y2 = x2 + G(y1)."""

  def __init__(self, channels: int, **kwargs):
    super().__init__(**kwargs)
    if channels % 2:
      raise ValueError(f"ReversibleUnit needs an even channel count, got "
                       f"{channels}.")
    self.f = BottleneckFunction(channels // 2, name="f")
    self.g = BottleneckFunction(channels // 2, name="g")

  def call(self, inputs, training=None):
    x1, x2 = tf.split(inputs, 2, axis=-1)
    y1 = x1 + self.f(x2, training=training)
    y2 = x2 + self.g(y1, training=training)
    return tf.concat([y1, y2], axis=-1)


@common.keras_configurable("encoder")
class Encoder(keras.Model):
  """E: images [N, res, res, 3] in [-1, 1] -> dict of latents and features.

  Returns a dict with keys z_mean, z_stdev, z_sample ([N, z_dim]),
  avepool_feat ([N, 2048 * width] at base_channels 64) and bn_crelu_feat
  (twice as wide). `call(x, training, epsilon=None)`: epsilon [N, z_dim]
  overrides the N(0, I) noise of the stochastic mode (for reproducible
  distributed steps).

  Args:
    resolution: input size E is built for (128 or 256 at paper size).
    architecture: "resnet_v2" or "revnet".
    depth: 50 or 101 (ResNet-v2); 50 (RevNet).
    width: channel multiplier (1, 2, 4).
    base_channels: stem width at width 1 (64 at paper size).
    units_per_stage: overrides the depth's units per stage (small models).
    stem: "imagenet" or "small" (no down-sampling stem, for 32x32 inputs).
    z_dim: latent width (= G's).
    latent_mode: "stochastic", "deterministic" or "uniform".
    mlp_width: units of the head's MLP (4096).
    mlp_blocks: residual blocks of the head's MLP (2, i.e. 4 layers).
  """

  def __init__(self,
               resolution: int = 128,
               architecture: str = RESNET_V2,
               depth: int = 50,
               width: int = 1,
               base_channels: int = 64,
               units_per_stage: Optional[Sequence[int]] = None,
               stem: str = IMAGENET_STEM,
               z_dim: int = 120,
               latent_mode: str = STOCHASTIC,
               mlp_width: int = 4096,
               mlp_blocks: int = 2,
               name: str = "encoder"):
    arguments = common.arguments_of(locals())
    super().__init__(name=name)
    self.constructor_arguments = arguments
    if architecture not in ARCHITECTURES:
      raise ValueError(f"Encoder architecture must be one of {ARCHITECTURES}, "
                       f"got {architecture!r}.")
    if latent_mode not in LATENT_MODES:
      raise ValueError(f"Encoder latent_mode must be one of {LATENT_MODES}, "
                       f"got {latent_mode!r}.")
    if stem not in STEMS:
      raise ValueError(f"Encoder stem must be one of {STEMS}, got {stem!r}.")
    if units_per_stage is None:
      valid = (50,) if architecture == REVNET else tuple(UNITS_PER_STAGE)
      if depth not in valid:
        raise ValueError(f"Encoder depth for {architecture} must be one of "
                         f"{valid}, got {depth}.")
      units_per_stage = UNITS_PER_STAGE[depth]
    self.resolution = resolution
    self.z_dim = z_dim
    self.latent_mode = latent_mode
    stem_channels = base_channels * width
    if stem == IMAGENET_STEM:
      self.stem_conv = _conv(stem_channels, 7, 2, name="stem_conv")
    else:
      self.stem_conv = _conv(stem_channels, 3, 1, name="stem_conv")
    self._stem_pool = stem == IMAGENET_STEM
    self.units = []
    for stage, num_units in enumerate(units_per_stage):
      channels = base_channels * 4 * width * 2**stage
      for unit in range(num_units):
        strides = 2 if (unit == 0 and stage > 0) else 1
        name = f"stage{stage}_unit{unit}"
        if architecture == REVNET and unit > 0:
          self.units.append(ReversibleUnit(channels, name=name))
        else:
          self.units.append(BottleneckUnitV2(channels, strides, name=name))
    self.final_bn = layers.CrossReplicaBatchNorm(name="final_bn")
    self.feature_bn = layers.CrossReplicaBatchNorm(
        center=False, scale=False, name="bn_crelu_bn")
    self.head = mlp.ResidualMLP(mlp_width, mlp_blocks,
                                use_spectral_norm=False, use_batch_norm=True,
                                name="head")
    self.head_bn = layers.CrossReplicaBatchNorm(name="head_bn")
    dense = lambda name: layers.SNDense(z_dim, use_spectral_norm=False,
                                        kernel_initializer="glorot_uniform",
                                        name=name)
    self.mu = dense("mu")
    self.sigma_hat = dense("sigma_hat") if latent_mode == STOCHASTIC else None
    self(tf.zeros([2, resolution, resolution, 3]))

  def backbone(self, x, training=None):
    """The pooled backbone feature a ([N, C], `avepool_feat`)."""
    common.check_shape("Encoder input x", x,
                       [None, self.resolution, self.resolution, 3])
    h = self.stem_conv(x)
    if self._stem_pool:
      h = tf.nn.max_pool2d(h, 3, 2, "SAME")
    for unit in self.units:
      h = unit(h, training=training)
    h = tf.nn.relu(self.final_bn(h, training=training))
    return tf.reduce_mean(h, axis=[1, 2])

  def call(self, x, training=None, epsilon=None):
    avepool = self.backbone(x, training=training)
    normalized = self.feature_bn(avepool, training=training)
    bn_crelu = tf.concat([tf.nn.relu(normalized), tf.nn.relu(-normalized)],
                         axis=-1)
    h = self.head(avepool, training=training)
    h = tf.nn.relu(self.head_bn(h, training=training))
    mu = self.mu(h)
    if self.latent_mode == STOCHASTIC:
      stdev = tf.nn.softplus(self.sigma_hat(h))
      if epsilon is None:
        epsilon = tf.random.normal(tf.shape(mu), dtype=mu.dtype)
      else:
        common.check_shape("Encoder epsilon", epsilon, [None, self.z_dim])
        epsilon = tf.cast(epsilon, mu.dtype)
      z_mean, z_sample = mu, mu + epsilon * stdev
    else:
      stdev = tf.zeros_like(mu)
      z_mean = tf.tanh(mu) if self.latent_mode == UNIFORM else mu
      z_sample = z_mean
    return {
        common.Z_MEAN: z_mean,
        common.Z_STDEV: stdev,
        common.Z_SAMPLE: z_sample,
        common.AVEPOOL_FEAT: avepool,
        common.BN_CRELU_FEAT: bn_crelu,
    }
