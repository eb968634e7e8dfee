"""SAGAN's non-local self-attention block, as used by BigGAN's G and D."""

from __future__ import annotations

import keras
import tensorflow as tf

from bigbigan_tf.layers import spectral_norm


class SelfAttention(keras.layers.Layer):
  """Non-local block: x + gamma * o(softmax(theta(x)^T phi(x)) g(x)).

  theta and phi project to C/8 channels, g to C/2; phi and g are 2x2
  max-pooled (BigGAN's memory saving), o projects back to C. All projections
  are 1x1 spectrally normalised convolutions without bias; gamma starts at 0,
  so the block begins as the identity.
  """

  def __init__(self, use_spectral_norm: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.use_spectral_norm = use_spectral_norm

  def build(self, input_shape):
    channels = int(input_shape[-1])
    if channels < 8:
      raise ValueError(
          f"SelfAttention needs at least 8 channels, got input shape "
          f"{tuple(input_shape)}.")
    conv = lambda c, name: spectral_norm.SNConv2D(
        c, kernel_size=1, use_bias=False,
        use_spectral_norm=self.use_spectral_norm, name=name)
    self.theta = conv(channels // 8, "theta")
    self.phi = conv(channels // 8, "phi")
    self.g = conv(channels // 2, "g")
    self.o = conv(channels, "o")
    self.theta.build(input_shape)
    self.phi.build(input_shape)
    self.g.build(input_shape)
    self.o.build(tuple(input_shape[:-1]) + (channels // 2,))
    self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

  def call(self, inputs, training=None):
    height, width, channels = inputs.shape[1], inputs.shape[2], inputs.shape[3]
    pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")
    theta = tf.reshape(self.theta(inputs, training=training),
                       [-1, height * width, channels // 8])
    phi = tf.reshape(pool(self.phi(inputs, training=training)),
                     [-1, height * width // 4, channels // 8])
    g = tf.reshape(pool(self.g(inputs, training=training)),
                   [-1, height * width // 4, channels // 2])
    attention = tf.nn.softmax(tf.matmul(theta, phi, transpose_b=True))
    attended = tf.reshape(tf.matmul(attention, g),
                          [-1, height, width, channels // 2])
    return inputs + tf.cast(self.gamma, inputs.dtype) * self.o(
        attended, training=training)
