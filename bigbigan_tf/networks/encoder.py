"""BigBiGAN's encoder E: ResNet-v2 or RevNet backbone, residual MLP head.

Backbones, as data (`BACKBONES`): units per stage for each depth, the root
convolution's width and whether the last BN is followed by a ReLU. Stage s
has 2**s * 4 * base_channels * width channels (256, 512, 1024, 2048 times
`width` at base_channels 64), in both:
  resnet_v2 (depth 50: 3, 4, 6, 3 units; 101: 3, 4, 23, 3): a root
    convolution to base_channels * width, then pre-activation bottleneck
    units (projection shortcut and stride 2 in each stage's first unit),
    BN + ReLU at the end.
  revnet (depth 50: 3, 4, 6, 3), the RevNet of Kolesnikov, Zhai & Beyer
    2019 that the paper uses (docs/design.md section 1): the root
    convolution goes straight to 4 * base_channels * width channels, the
    only learned channel growth; every unit is reversible,
    [x1, x2] -> [x2, x1 + f(x2)], with f one pre-activation bottleneck from
    C/2 to C/2 channels (inner width C/8, no shortcut of its own); between
    stages a parameter-free transition (2x2 average pooling, channels
    zero-padded to twice as many, bigbigan_tf/networks/revnet.py); BN
    without ReLU at the end. `reversible_backprop` back-propagates through
    each stage by reconstructing the units' inputs instead of storing the
    activations (same gradients; memory figures in docs/benchmarks.md).

Then global average pooling (`avepool_feat`, 2048 * width wide), a
parameter-free BN and CReLU of it (`bn_crelu_feat`, twice as wide), and a
4-layer, 4096-unit residual MLP (2 blocks, BN + ReLU) into linear mu and
sigma-hat heads. Latent modes (docs/design.md section 1):
  stochastic:    z = mu + eps * softplus(sigma_hat),  eps ~ N(0, I)
  deterministic: z = mu
  uniform:       z = tanh(mu), paired with a U(-1, 1) prior
Cross-replica BN everywhere, no spectral norm.

Parameter counts (trainable, resolution 128, z_dim 120; asserted in
tests/test_networks.py):
  ResNet-v2-50 x1 backbone: 23,500,352 (torchvision's ResNet-50 without
  its fc layer: 23,508,032; v2 moves BN/ReLU before the convs, leaving one
  BN per unit's input where v1 had one after the last conv).
  The 4096-wide head: 68,141,296 on 2048 features (two 2048 x 4096
  matrices, the first linear layer and the first block's shortcut
  projection, 3 more 4096 x 4096, biases, BN, 2 x 4096 x 120 for mu and
  sigma-hat); 67,149,824 on 4096 (no projection); 118,472,944 on 8192.
  RevNet-50 backbones: x1 5,408,640 (total 73,549,936); x2 21,505,792
  (total 89,647,088); x4 85,765,632, the paper's 86M (total 204,238,576).
  A RevNet unit on C channels has 17/64 C^2 conv weights (C/2 x C/8,
  9 (C/8)^2, C/8 x C/2) + 3/2 C BN parameters, a quarter of a same-width
  ResNet-v2 bottleneck's.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import keras
import tensorflow as tf

from bigbigan_tf import layers
from bigbigan_tf.networks import common
from bigbigan_tf.networks import mlp
from bigbigan_tf.networks import revnet as revnet_lib

RESNET_V2 = "resnet_v2"
REVNET = "revnet"


@dataclasses.dataclass(frozen=True)
class Backbone:
  """What distinguishes the backbones (the encoder builds both from this).

  Attributes:
    units_per_stage: depth -> units in each stage.
    root_channels: width of the root convolution, in base_channels * width.
    final_relu: ReLU after the last BN (ResNet-v2) or not (RevNet).
  """
  units_per_stage: dict[int, tuple[int, ...]]
  root_channels: int
  final_relu: bool


BACKBONES = {
    RESNET_V2: Backbone({50: (3, 4, 6, 3), 101: (3, 4, 23, 3)},
                        root_channels=1, final_relu=True),
    REVNET: Backbone({50: (3, 4, 6, 3)}, root_channels=4, final_relu=False),
}
ARCHITECTURES = tuple(BACKBONES)

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


class BottleneckFunction(common.BuiltByFirstCall, keras.layers.Layer):
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

  def call(self, inputs, training=None, update_statistics=True):
    bn = lambda layer, h: tf.nn.relu(layer(
        h, training=training, update_statistics=update_statistics))
    h = inputs
    if self.bn0 is not None:
      h = bn(self.bn0, h)
    h = self.conv1(h)
    h = self.conv2(bn(self.bn1, h))
    return self.conv3(bn(self.bn2, h))


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


@common.keras_configurable("encoder")
class Encoder(common.BuiltByFirstCall, keras.Model):
  """E: images [N, res, res, 3] in [-1, 1] -> dict of latents and features.

  Returns a dict with keys z_mean, z_stdev, z_sample ([N, z_dim]),
  avepool_feat ([N, 2048 * width] at base_channels 64) and bn_crelu_feat
  (twice as wide). `call(x, training, epsilon=None)`: epsilon [N, z_dim]
  overrides the N(0, I) noise of the stochastic mode (for reproducible
  distributed steps).

  `units` lists every residual unit in order (ReversibleUnits for the
  RevNet); `stem_conv` is the root convolution (its filters are shown in
  the training image grid).

  Args:
    resolution: input size E is built for (128 or 256 at paper size).
    architecture: "resnet_v2" or "revnet".
    depth: 50 or 101 (ResNet-v2); 50 (RevNet).
    width: channel multiplier (1, 2, 4).
    base_channels: the ResNet's root width at width 1 (64 at paper size);
      the RevNet's root convolution is 4 times as wide.
    units_per_stage: overrides the depth's units per stage (small models).
    stem: "imagenet" (conv 7x7 / 2 + max-pool 3x3 / 2) or "small" (conv
      3x3 / 1, no down-sampling, for 32x32 inputs).
    z_dim: latent width (= G's).
    latent_mode: "stochastic", "deterministic" or "uniform".
    mlp_width: units of the head's MLP (4096).
    mlp_blocks: residual blocks of the head's MLP (2, i.e. 4 layers).
    reversible_backprop: RevNet only: back-propagate through each stage by
      reconstructing activations from the stage's output instead of storing
      them (bigbigan_tf/networks/revnet.py). Same gradients, less memory,
      about one more forward pass of the stages' compute.
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
               reversible_backprop: bool = False,
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
    if reversible_backprop and architecture != REVNET:
      raise ValueError(f"Encoder reversible_backprop=True needs architecture="
                       f"{REVNET!r} (reversible units), got architecture="
                       f"{architecture!r}.")
    spec = BACKBONES[architecture]
    if units_per_stage is None:
      if depth not in spec.units_per_stage:
        raise ValueError(f"Encoder depth for {architecture} must be one of "
                         f"{tuple(spec.units_per_stage)}, got {depth}.")
      units_per_stage = spec.units_per_stage[depth]
    units_per_stage = tuple(int(n) for n in units_per_stage)
    if not units_per_stage or min(units_per_stage) < 1:
      raise ValueError(f"Encoder units_per_stage must list at least one "
                       f"unit per stage, got {units_per_stage}.")
    self.resolution = resolution
    self.z_dim = z_dim
    self.latent_mode = latent_mode
    self.architecture = architecture
    self.reversible_backprop = reversible_backprop
    self._final_relu = spec.final_relu
    self._units_per_stage = units_per_stage
    root_channels = spec.root_channels * base_channels * width
    if stem == IMAGENET_STEM:
      self.stem_conv = _conv(root_channels, 7, 2, name="stem_conv")
    else:
      self.stem_conv = _conv(root_channels, 3, 1, name="stem_conv")
    self._stem_pool = stem == IMAGENET_STEM
    self.units = []
    for stage, num_units in enumerate(units_per_stage):
      channels = base_channels * 4 * width * 2**stage
      for unit in range(num_units):
        name = f"stage{stage}_unit{unit}"
        if architecture == REVNET:
          # f maps C/2 to C/2 channels through a C/8-wide bottleneck.
          residual = BottleneckFunction(channels // 2, name="f")
          self.units.append(revnet_lib.ReversibleUnit(residual, name=name))
        else:
          strides = 2 if (unit == 0 and stage > 0) else 1
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
    if self.architecture == REVNET:
      first = 0
      for stage, num_units in enumerate(self._units_per_stage):
        # Stages after the first start with the parameter-free transition.
        transition = revnet_lib.pool_and_double_channels if stage else None
        h = revnet_lib.reversible_sequence(
            self.units[first:first + num_units], h, training=training,
            recompute=self.reversible_backprop, transition=transition)
        first += num_units
    else:
      for unit in self.units:
        h = unit(h, training=training)
    h = self.final_bn(h, training=training)
    if self._final_relu:
      h = tf.nn.relu(h)
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
