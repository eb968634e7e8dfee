"""BigGAN's spectral normalisation, as a reparameterisation of a kernel.

The layer keeps its raw kernel W as the trainable variable and uses W / sigma(W)
in the forward pass, where sigma is estimated by power iteration:

    v = normalize(W_mat^T u);  u' = normalize(W_mat v);  sigma = u'^T W_mat v

u and v are stop-gradient, so the gradient flows through W in both the
numerator and sigma (unlike `keras.layers.SpectralNormalization`, which assigns
W / sigma back into W and blocks that gradient, docs/design.md section 8). u is a
persistent non-trainable variable: one power iteration per training call
updates it; inference calls (training=False/None) never do, so evaluation and
export are deterministic.

Precision: W and u are read as float32 whatever the layer's compute dtype
(they are created without autocasting), so under mixed bfloat16 the power
iteration and sigma are float32; the layer casts W / sigma to its inputs'
dtype for the matmul or convolution.

Replicas: every replica computes the same u from the same W, so u is created
with aggregation NONE: each replica writes its own copy inside the training
step, with no cross-replica traffic (on a TPU, a raw assign in the program).
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf


def _l2_normalize(x: tf.Tensor, eps: float = 1e-12) -> tf.Tensor:
  # A tiny epsilon inside the norm guards against a zero vector.
  return x * tf.math.rsqrt(tf.reduce_sum(tf.square(x)) + eps)


class SpectralNormMixin:
  """Adds a spectrally normalised view of `self.kernel` to a layer.

  The host layer calls `self._build_spectral_norm(kernel)` in `build()` and
  `self._normalized_kernel(training)` in `call()`.
  """

  def _build_spectral_norm(self, out_features: int) -> None:
    self.sn_u = self.add_weight(
        name="sn_u",
        shape=(1, out_features),
        initializer=keras.initializers.RandomNormal(stddev=1.0),
        trainable=False,
        # Replica-identical: each replica writes its own copy (see above).
        aggregation="none",
        autocast=False,
    )

  def spectral_norm_estimate(self, training: bool = False) -> tf.Tensor:
    """Returns sigma(W) (a scalar) and, in training, runs one power step."""
    kernel = tf.cast(tf.convert_to_tensor(self.kernel), tf.float32)
    w_mat = tf.reshape(kernel, [-1, kernel.shape[-1]])  # [in, out]
    u = tf.stop_gradient(tf.cast(tf.convert_to_tensor(self.sn_u),
                                 tf.float32))            # [1, out]
    v = tf.stop_gradient(_l2_normalize(tf.matmul(u, w_mat, transpose_b=True)))
    u_new = tf.stop_gradient(_l2_normalize(tf.matmul(v, w_mat)))
    sigma = tf.reduce_sum(tf.matmul(v, w_mat) * u_new)
    if training:
      self.sn_u.assign(tf.cast(u_new, self.sn_u.dtype))
    return sigma

  def _normalized_kernel(self, training: Optional[bool]) -> tf.Tensor:
    """W / sigma(W) in float32 (W itself without spectral norm)."""
    kernel = tf.cast(tf.convert_to_tensor(self.kernel), tf.float32)
    if not self.use_spectral_norm:
      return kernel
    return kernel / self.spectral_norm_estimate(training=bool(training))


class SNDense(SpectralNormMixin, keras.layers.Layer):
  """Dense layer with optional BigGAN spectral normalisation of its kernel."""

  def __init__(self,
               units: int,
               use_bias: bool = True,
               use_spectral_norm: bool = True,
               kernel_initializer="orthogonal",
               **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)
    self.use_bias = use_bias
    self.use_spectral_norm = use_spectral_norm
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    in_features = int(input_shape[-1])
    self.kernel = self.add_weight(
        name="kernel", shape=(in_features, self.units),
        initializer=self.kernel_initializer, trainable=True,
        autocast=False)
    self.bias = (self.add_weight(name="bias", shape=(self.units,),
                                 initializer="zeros", trainable=True)
                 if self.use_bias else None)
    if self.use_spectral_norm:
      self._build_spectral_norm(self.units)

  def call(self, inputs, training=None):
    kernel = tf.cast(self._normalized_kernel(training), inputs.dtype)
    outputs = tf.matmul(inputs, kernel)
    if self.bias is not None:
      outputs = outputs + tf.cast(self.bias, outputs.dtype)
    return outputs


class SNConv2D(SpectralNormMixin, keras.layers.Layer):
  """2-D convolution (NHWC, stride 1 or more) with optional spectral norm."""

  def __init__(self,
               filters: int,
               kernel_size: int = 3,
               strides: int = 1,
               padding: str = "SAME",
               use_bias: bool = True,
               use_spectral_norm: bool = True,
               kernel_initializer="orthogonal",
               **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.kernel_size = int(kernel_size)
    self.strides = int(strides)
    self.padding = padding.upper()
    self.use_bias = use_bias
    self.use_spectral_norm = use_spectral_norm
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    in_channels = int(input_shape[-1])
    k = self.kernel_size
    self.kernel = self.add_weight(
        name="kernel", shape=(k, k, in_channels, self.filters),
        initializer=self.kernel_initializer, trainable=True,
        autocast=False)
    self.bias = (self.add_weight(name="bias", shape=(self.filters,),
                                 initializer="zeros", trainable=True)
                 if self.use_bias else None)
    if self.use_spectral_norm:
      self._build_spectral_norm(self.filters)

  def call(self, inputs, training=None, residual=None):
    """conv(inputs) [+ residual] + bias.

    A residual block passes its other branch as `residual`: the sum is then
    taken before the bias is added. (With the bias first, grappler's
    remapper fuses Conv2D + BiasAdd + the residual Add; when that sum feeds
    a later layer, it fails on the gradient graph and logs an error.)
    """
    kernel = tf.cast(self._normalized_kernel(training), inputs.dtype)
    outputs = tf.nn.conv2d(inputs, kernel, strides=self.strides,
                           padding=self.padding)
    if residual is not None:
      outputs = outputs + tf.cast(residual, outputs.dtype)
    if self.bias is not None:
      outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
    return outputs


class SNEmbedding(SpectralNormMixin, keras.layers.Layer):
  """Class embedding table [num_classes, dim] with optional spectral norm.

  BigBiGAN is unconditional "with a single label": every image gets label 0,
  so with num_classes=1 this is one learned vector shared by all samples.
  """

  def __init__(self, num_classes: int, dim: int,
               use_spectral_norm: bool = True,
               kernel_initializer="orthogonal", **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.dim = int(dim)
    self.use_spectral_norm = use_spectral_norm
    self.kernel_initializer = keras.initializers.get(kernel_initializer)

  def build(self, input_shape):
    self.kernel = self.add_weight(
        name="kernel", shape=(self.num_classes, self.dim),
        initializer=self.kernel_initializer, trainable=True,
        autocast=False)
    if self.use_spectral_norm:
      self._build_spectral_norm(self.dim)

  def call(self, labels, training=None):
    table = tf.cast(self._normalized_kernel(training), self.compute_dtype)
    return tf.gather(table, tf.cast(labels, tf.int32))


def spectral_norm_layers(model: keras.layers.Layer) -> list:
  """The layers inside `model` that spectrally normalise their kernel."""
  return [layer for layer in model._flatten_layers(include_self=True)  # pylint: disable=protected-access
          if isinstance(layer, SpectralNormMixin) and layer.use_spectral_norm]
