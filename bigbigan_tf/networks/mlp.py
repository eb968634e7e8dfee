"""Residual MLP: the encoder's head and the discriminator's H and J."""

from __future__ import annotations

import keras
import tensorflow as tf

from bigbigan_tf import layers


class ResidualMLP(keras.layers.Layer):
  """`num_blocks` residual blocks of two linear layers, `width` units each.

  Block: h + L2(act(L1(act(h)))) with act = ReLU (after BN when
  `use_batch_norm`); the first block's input is not pre-activated. When the input is not `width` wide, the first block's
  shortcut is a linear projection. Output is `width` wide (pre-activation).

  Args:
    width: units per layer (2048 in D's H and J, 4096 in E's head).
    num_blocks: residual blocks (4 in H and J: 8 layers; 2 in E's head).
    use_spectral_norm: spectral norm on the weights (D: on, E: off).
    use_batch_norm: cross-replica BN before each activation (E: on, D: off).
  """

  def __init__(self, width: int, num_blocks: int,
               use_spectral_norm: bool = True, use_batch_norm: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.width = int(width)
    self.num_blocks = int(num_blocks)
    init = "orthogonal" if use_spectral_norm else "glorot_uniform"
    dense = lambda name, bias=True: layers.SNDense(
        self.width, use_bias=bias, use_spectral_norm=use_spectral_norm,
        kernel_initializer=init, name=name)
    self.linears = [(dense(f"block{i}_linear1"), dense(f"block{i}_linear2"))
                    for i in range(self.num_blocks)]
    # Block 0 has no input BN (its input is not pre-activated).
    self.norms = ([(None if i == 0 else
                    layers.CrossReplicaBatchNorm(name=f"block{i}_bn1"),
                    layers.CrossReplicaBatchNorm(name=f"block{i}_bn2"))
                   for i in range(self.num_blocks)] if use_batch_norm else None)
    self.projection = dense("input_projection", bias=False)
    self._project = None

  def build(self, input_shape):
    self._project = int(input_shape[-1]) != self.width
    if not self._project:
      self.projection = None

  def call(self, inputs, training=None):
    h = inputs
    for i, (linear1, linear2) in enumerate(self.linears):
      shortcut = h
      if i == 0 and self._project:
        shortcut = self.projection(h, training=training)
      if i > 0:  # The raw input (e.g. z) is not pre-activated.
        if self.norms is not None:
          h = self.norms[i][0](h, training=training)
        h = tf.nn.relu(h)
      h = linear1(h, training=training)
      if self.norms is not None:
        h = self.norms[i][1](h, training=training)
      h = linear2(tf.nn.relu(h), training=training)
      h = h + shortcut
    return h
