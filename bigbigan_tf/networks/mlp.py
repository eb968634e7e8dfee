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
    dropout: dropout rate after every activation, in training only (0: none,
      the paper; small-data BiGANs use 0.2 in H and J).
  """

  def __init__(self, width: int, num_blocks: int,
               use_spectral_norm: bool = True, use_batch_norm: bool = False,
               dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1); received {dropout}.")
    self.width = int(width)
    self.num_blocks = int(num_blocks)
    self.dropout = (keras.layers.Dropout(dropout, name="dropout")
                    if dropout > 0 else None)
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

  def _drop(self, h, training):
    return h if self.dropout is None else self.dropout(h, training=training)

  def call(self, inputs, training=None):
    h = inputs
    for i, (linear1, linear2) in enumerate(self.linears):
      shortcut = h
      if i == 0 and self._project:
        shortcut = self.projection(h, training=training)
      if i > 0:  # The raw input (e.g. z) is not pre-activated.
        if self.norms is not None:
          h = self.norms[i][0](h, training=training)
        h = self._drop(tf.nn.relu(h), training)
      h = linear1(h, training=training)
      if self.norms is not None:
        h = self.norms[i][1](h, training=training)
      h = linear2(self._drop(tf.nn.relu(h), training), training=training)
      h = h + shortcut
    return h
