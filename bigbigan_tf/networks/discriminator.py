"""BigBiGAN's joint discriminator D = (F, H, J) and its scores.

F is BigGAN's discriminator ConvNet on x (residual down-blocks, attention,
spectral norm, no BN, ReLU + global sum pool), returning its pooled features.
H is an 8-layer residual MLP on z (4 blocks, 2048 wide); J the same kind of
MLP on [F(x), H(z)]. Scores: s_x = theta_x^T F(x), s_z = theta_z^T H(z),
s_xz = theta_xz^T J(F(x), H(z)). Each head can be switched off; with only
s_x, D is the "StandardGAN" discriminator and needs no z.

F's architecture per resolution (multipliers of `ch`; every block but the
last one or two down-samples by 2x2 average pooling):

  resolution  out_channels              down-sampling
  32          4,4,4,4                   T,T,F,F
  64          1,2,4,8,16                T,T,T,T,F
  128         1,2,4,8,16,16             T,T,T,T,T,F
  256         1,2,4,8,8,16,16           T,T,T,T,T,T,F

Parameter counts (trainable, ch=96, z_dim=120, built in
tests/test_networks.py::test_paper_size_parameter_counts), at 128:
  F + s_x: 86,446,370. BigGAN-128's D has 88.0M with its 1000 x 1536
    projection embedding (1,536,000), which an unconditional D lacks.
  H: 29,868,032; J: 44,056,576; all of D: 160,375,076.
"""

from __future__ import annotations

from typing import Optional, Sequence

import keras
import tensorflow as tf

from bigbigan_tf import layers
from bigbigan_tf.networks import common
from bigbigan_tf.networks.mlp import ResidualMLP

ARCHITECTURES = {
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((1, 2, 4, 8, 16, 16), (True, True, True, True, True, False)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
}


def _downsample(x: tf.Tensor) -> tf.Tensor:
  return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class DiscriminatorBlock(keras.layers.Layer):
  """Residual block: (ReLU)-conv3-ReLU-conv3-(pool) + conv1 shortcut.

  The first block sees raw pixels: no ReLU before its first conv, and its
  shortcut pools before the 1x1 conv (BigGAN).
  """

  def __init__(self, out_channels: int, downsample: bool, first: bool,
               use_spectral_norm: bool = True, **kwargs):
    super().__init__(**kwargs)
    conv = lambda c, k, name: layers.SNConv2D(
        c, kernel_size=k, use_spectral_norm=use_spectral_norm, name=name)
    self.out_channels = out_channels
    self.downsample = downsample
    self.first = first
    self.conv1 = conv(out_channels, 3, "conv1")
    self.conv2 = conv(out_channels, 3, "conv2")
    self._make_shortcut = lambda: conv(out_channels, 1, "shortcut")
    self.shortcut = None

  def build(self, input_shape):
    if int(input_shape[-1]) != self.out_channels or self.downsample:
      self.shortcut = self._make_shortcut()

  def call(self, x, training=None):
    # Each branch sum is taken before the bias of the block's last
    # convolution (SNConv2D's `residual`): TensorFlow's graph optimiser
    # (grappler's remapper) fails on a convolution + bias + residual add
    # whose sum feeds a later layer's gradient, and logs an error.
    h = x if self.first else tf.nn.relu(x)
    h = self.conv1(h, training=training)
    if not self.downsample:
      shortcut = x if self.shortcut is None else self.shortcut(
          x, training=training)
      return self.conv2(tf.nn.relu(h), training=training, residual=shortcut)
    h = _downsample(self.conv2(tf.nn.relu(h), training=training))
    if self.first:  # BigGAN's first block pools before its 1x1 shortcut.
      return self.shortcut(_downsample(x), training=training, residual=h)
    return h + _downsample(self.shortcut(x, training=training))


@common.keras_configurable("discriminator")
class Discriminator(common.BuiltByFirstCall, keras.Model):
  """D: (x [N, res, res, 3], z [N, z_dim]) -> dict of scores [N] and F(x).

  Returns score_x / score_z / score_xz for the enabled heads, and
  features_x (F(x), [N, 16 * ch] at 64+).

  Args:
    resolution: size of x (G's resolution; E's input is average-pooled to it).
    ch: F's base width (96 at paper size).
    z_dim: latent width.
    mlp_width: width of H and J (2048).
    mlp_blocks: residual blocks of H and J (4, i.e. 8 layers).
    attention_resolutions: resolutions after which F has self-attention.
    use_score_x, use_score_z, use_score_xz: which scores exist (Table 1's
      unary ablations; s_x alone is the StandardGAN D).
    use_spectral_norm: spectral norm on every weight (on).
    mlp_dropout: dropout rate in H and J, training only (0: the paper).
    joint_x_width: what J sees of x. None (the paper): F(x), the
      global-sum-pooled last block (16 * ch numbers at 64+, 4 * ch at 32).
      An int: a learned (spectrally normalised) linear map of F's whole last
      feature map (before pooling) to this many numbers, so that J can see
      enough of x to check the pairing with a wide z.
  """

  def __init__(self,
               resolution: int = 128,
               ch: int = 96,
               z_dim: int = 120,
               mlp_width: int = 2048,
               mlp_blocks: int = 4,
               attention_resolutions: Sequence[int] = (64,),
               use_score_x: bool = True,
               use_score_z: bool = True,
               use_score_xz: bool = True,
               use_spectral_norm: bool = True,
               mlp_dropout: float = 0.0,
               joint_x_width: Optional[int] = None,
               name: str = "discriminator"):
    arguments = common.arguments_of(locals())
    super().__init__(name=name)
    self.constructor_arguments = arguments
    if resolution not in ARCHITECTURES:
      raise ValueError(f"Discriminator resolution must be one of "
                       f"{sorted(ARCHITECTURES)}, got {resolution}.")
    if not (use_score_x or use_score_z or use_score_xz):
      raise ValueError("Discriminator needs at least one of use_score_x, "
                       "use_score_z, use_score_xz.")
    self.resolution = resolution
    self.z_dim = z_dim
    self.use_score_x = use_score_x
    self.use_score_z = use_score_z
    self.use_score_xz = use_score_xz
    self.needs_z = use_score_z or use_score_xz
    out_mults, downsamples = ARCHITECTURES[resolution]
    self.blocks = []
    self.attention = {}
    size = resolution
    for i, (mult, down) in enumerate(zip(out_mults, downsamples)):
      self.blocks.append(DiscriminatorBlock(mult * ch, down, first=(i == 0),
                                            use_spectral_norm=use_spectral_norm,
                                            name=f"block{i}"))
      size = size // 2 if down else size
      if size in attention_resolutions and not self.attention:
        self.attention[str(i)] = layers.SelfAttention(
            use_spectral_norm, name=f"attention{size}")
    head = lambda name: layers.SNDense(1, use_spectral_norm=use_spectral_norm,
                                       name=name)
    mlp = lambda name: ResidualMLP(mlp_width, mlp_blocks,
                                   use_spectral_norm=use_spectral_norm,
                                   dropout=mlp_dropout, name=name)
    common.check_int(joint_x_width, "joint_x_width", allow_none=True)
    self.joint_x_projection = (
        layers.SNDense(joint_x_width, use_spectral_norm=use_spectral_norm,
                       kernel_initializer="orthogonal", name="joint_x")
        if joint_x_width is not None and use_score_xz else None)
    self.score_x_head = head("score_x") if use_score_x else None
    self.h_net = mlp("h") if self.needs_z else None
    self.score_z_head = head("score_z") if use_score_z else None
    self.j_net = mlp("j") if use_score_xz else None
    self.score_xz_head = head("score_xz") if use_score_xz else None
    self((tf.zeros([2, resolution, resolution, 3]), tf.zeros([2, z_dim])))

  def _feature_map(self, x, training=None):
    """F's last feature map, after ReLU: [N, h, w, C]."""
    common.check_shape("Discriminator input x", x,
                       [None, self.resolution, self.resolution, 3])
    h = x
    for i, block in enumerate(self.blocks):
      h = block(h, training=training)
      if str(i) in self.attention:
        h = self.attention[str(i)](h, training=training)
    return tf.nn.relu(h)

  def features_x(self, x, training=None):
    """F(x): [N, C] ReLU + global-sum-pooled features."""
    return tf.reduce_sum(self._feature_map(x, training), axis=[1, 2])

  def call(self, inputs, training=None):
    x, z = inputs
    feature_map = self._feature_map(x, training=training)
    features_x = tf.reduce_sum(feature_map, axis=[1, 2])
    outputs = {common.FEATURES_X: features_x}
    if self.use_score_x:
      outputs[common.SCORE_X] = self.score_x_head(
          features_x, training=training)[:, 0]
    if self.needs_z:
      if z is None:
        raise ValueError("This discriminator scores z (use_score_z or "
                         "use_score_xz) but was called without z.")
      common.check_shape("Discriminator input z", z, [None, self.z_dim])
      features_z = self.h_net(z, training=training)
      if self.use_score_z:
        outputs[common.SCORE_Z] = self.score_z_head(
            features_z, training=training)[:, 0]
      if self.use_score_xz:
        joint_x = features_x
        if self.joint_x_projection is not None:
          flat = tf.reshape(feature_map, [tf.shape(feature_map)[0], -1])
          joint_x = self.joint_x_projection(flat, training=training)
        joint = self.j_net(tf.concat([joint_x, features_z], axis=-1),
                           training=training)
        outputs[common.SCORE_XZ] = self.score_xz_head(
            joint, training=training)[:, 0]
    return outputs
