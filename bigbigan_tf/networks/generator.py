"""BigGAN's generator, unconditional with a single label (BigBiGAN's G).

Architecture per output resolution (channel multipliers of `ch`, one residual
up-block per entry, starting from a 4x4 map):

  resolution  in_channels            out_channels           z_dim (chunks)
  32          4,4,4                  4,4,4                  120 (4 x 30)
  64          16,16,8,4              16,8,4,2               120 (5 x 24)
  128         16,16,8,4,2            16,8,4,2,1             120 (6 x 20)
  256         16,16,8,8,4,2          16,8,8,4,2,1           140 (7 x 20)

Hierarchical z ("skip-z"): z splits into num_blocks + 1 equal chunks; chunk 0
feeds the linear layer to the 4x4 map, chunk i (i >= 1) is concatenated with
the shared embedding and conditions both batch norms of block i. Every image
has label 0, so the shared embedding is one learned vector. Self-attention
after the block whose output resolution is in `attention_resolutions` (64).
Spectral norm on every weight, orthogonal init, cross-replica (conditional)
BN, tanh output in [-1, 1].

Parameter counts (trainable, ch=96, z_dim=120, embedding 128, built by
`tests/test_networks.py::test_paper_size_parameter_counts`):
  128x128: 70,306,116. compare_gan's / BigGAN-PyTorch's BigGAN-128 G has
  70.4M with a 1000-class embedding; ours has one class, i.e. 999 x 128 =
  127,872 fewer weights (70,306,116 + 127,872 = 70,433,988).
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from bigbigan_tf import layers
from bigbigan_tf.networks import common

# resolution -> (in_channel multipliers, out_channel multipliers).
ARCHITECTURES = {
    32: ((4, 4, 4), (4, 4, 4)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2)),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1)),
}


class GeneratorBlock(common.BuiltByFirstCall, keras.layers.Layer):
  """Residual up-block: CBN-ReLU-up-conv3-CBN-ReLU-conv3 + up-conv1 shortcut."""

  def __init__(self, out_channels: int, use_spectral_norm: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    conv = lambda c, k, name: layers.SNConv2D(
        c, kernel_size=k, use_spectral_norm=use_spectral_norm, name=name)
    self.bn1 = layers.ConditionalBatchNorm(use_spectral_norm, name="bn1")
    self.conv1 = conv(out_channels, 3, "conv1")
    self.bn2 = layers.ConditionalBatchNorm(use_spectral_norm, name="bn2")
    self.conv2 = conv(out_channels, 3, "conv2")
    self.shortcut = conv(out_channels, 1, "shortcut")

  def call(self, inputs, training=None):
    x, condition = inputs
    h = tf.nn.relu(self.bn1((x, condition), training=training))
    h = self.conv1(common.upsample(h, 2), training=training)
    h = tf.nn.relu(self.bn2((h, condition), training=training))
    # The shortcut joins before conv2's bias (see DiscriminatorBlock).
    return self.conv2(h, training=training,
                      residual=self.shortcut(common.upsample(x, 2), training=training))


@common.keras_configurable("generator")
class Generator(common.BuiltByFirstCall, keras.Model):
  """BigGAN generator G: z [N, z_dim] -> images [N, res, res, 3] in [-1, 1].

  Args:
    resolution: output size, one of 32, 64, 128, 256.
    ch: base channel width (96 at paper size; 32/64 in the small-G rows).
    z_dim: latent width; must split into num_blocks + 1 equal chunks.
    embedding_dim: width of the shared (single-label) embedding.
    attention_resolutions: resolutions after which self-attention is added.
    use_spectral_norm: spectral norm on every weight (BigGAN: on).
  """

  def __init__(self,
               resolution: int = 128,
               ch: int = 96,
               z_dim: int = 120,
               embedding_dim: int = 128,
               attention_resolutions: Sequence[int] = (64,),
               use_spectral_norm: bool = True,
               name: str = "generator"):
    arguments = common.arguments_of(locals())
    super().__init__(name=name)
    self.constructor_arguments = arguments
    if resolution not in ARCHITECTURES:
      raise ValueError(f"Generator resolution must be one of "
                       f"{sorted(ARCHITECTURES)}, got {resolution}.")
    in_mults, out_mults = ARCHITECTURES[resolution]
    num_chunks = len(in_mults) + 1
    if z_dim % num_chunks:
      raise ValueError(
          f"Generator z_dim must split into {num_chunks} equal chunks at "
          f"resolution {resolution} (hierarchical z), got z_dim={z_dim}.")
    self.resolution = resolution
    self.z_dim = z_dim
    self.chunk_dim = z_dim // num_chunks
    self.num_blocks = len(in_mults)
    self._start_channels = in_mults[0] * ch
    self.embedding = layers.SNEmbedding(1, embedding_dim,
                                        use_spectral_norm=False,
                                        name="shared_embedding")
    self.linear = layers.SNDense(4 * 4 * self._start_channels,
                                 use_spectral_norm=use_spectral_norm,
                                 name="linear")
    self.blocks = []
    self.attention = {}
    size = 4
    for i, out_mult in enumerate(out_mults):
      size *= 2
      self.blocks.append(GeneratorBlock(out_mult * ch, use_spectral_norm,
                                        name=f"block{i}"))
      if size in attention_resolutions:
        self.attention[str(i)] = layers.SelfAttention(
            use_spectral_norm, name=f"attention{size}")
    self.final_bn = layers.CrossReplicaBatchNorm(name="final_bn")
    self.final_conv = layers.SNConv2D(3, 3, use_spectral_norm=use_spectral_norm,
                                      name="final_conv")
    # Build eagerly so parameter counts and checkpoints exist before a call.
    self(tf.zeros([2, z_dim]))

  def call(self, z, training=None):
    common.check_shape("Generator input z", z, [None, self.z_dim])
    chunks = tf.split(z, self.num_blocks + 1, axis=1)
    batch = tf.shape(z)[0]
    embedding = self.embedding(tf.zeros([batch], tf.int32), training=training)
    embedding = tf.cast(embedding, z.dtype)
    h = self.linear(chunks[0], training=training)
    h = tf.reshape(h, [-1, 4, 4, self._start_channels])
    for i, block in enumerate(self.blocks):
      condition = tf.concat([chunks[i + 1], embedding], axis=1)
      h = block((h, condition), training=training)
      if str(i) in self.attention:
        h = self.attention[str(i)](h, training=training)
    h = tf.nn.relu(self.final_bn(h, training=training))
    return tf.tanh(self.final_conv(h, training=training))
