"""Reversible units and the back-propagation that need not store activations.

The RevNet BigBiGAN's best encoder uses (Kolesnikov, Zhai & Beyer 2019;
docs/design.md section 1) is made of reversible units: a unit's input can be
computed from its output, so a stage of such units does not have to keep its
activations for the backward pass. `reversible_sequence(..., recompute=True)`
runs a stage under a `tf.custom_gradient` that keeps only the stage's input
and output (both kept anyway: they are the previous and the next stage's
output and input); its gradient walks the units backwards, reconstructs each
unit's input from its output (the first unit's from the stage's input) and
recomputes the unit's residual function under a local tape to get the
gradients (Gomez et al. 2017, "The Reversible Residual Network"). Activation
memory of a stage then no longer grows with its depth, for about one more
forward pass of the units' compute.

What the recomputation has to respect:
  * Batch norm in training mode normalises with the batch moments on
    recomputation too (they are recomputed from the reconstructed inputs,
    cross-replica where the forward pass was), but must not fold the batch
    into the moving statistics a second time: the recomputation calls the
    residual function with `update_statistics=False`
    (bigbigan_tf/layers/normalization.py).
  * Schedulers run an op as soon as its inputs exist. The reconstruction
    only needs the stage's output, so without care TensorFlow's executor (or
    XLA) would run all of it right after the forward pass and hold every
    recomputed activation until the gradients arrive; XLA would also merge
    the recomputed function with the forward one (same inputs, same ops).
    Each unit's reconstruction therefore takes a data dependency on the
    gradient flowing into that unit (`_after`), which orders it after the
    later units' backward pass and makes its inputs differ from the forward
    pass's in the compiler's eyes.
  * tf.custom_gradient hands the gradient function the variables the
    forward pass read (per replica under MirroredStrategy); it must return
    one gradient per variable, in that order.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import keras
import tensorflow as tf
# stop_recording keeps an eager outer tape from holding the stage's
# activations; tf.recompute_grad relies on it the same way.
from tensorflow.python.eager import record  # pylint: disable=g-direct-tensorflow-import

from bigbigan_tf.layers import normalization


class ReversibleUnit(keras.layers.Layer):
  """[x1, x2] -> [x2, x1 + f(x2)], with f a residual function on C/2 channels.

  Inverse: x2 is the output's first half, x1 = y1 - f(x2). f is any layer
  mapping C/2 channels to C/2 channels that accepts `training` and
  `update_statistics` (the latter is False when f is recomputed in the
  backward pass).
  """

  def __init__(self, residual: keras.layers.Layer, **kwargs):
    super().__init__(**kwargs)
    self.f = residual

  def build(self, input_shape):
    channels = int(input_shape[-1])
    if channels % 2:
      raise ValueError(f"ReversibleUnit {self.name!r} needs an even channel "
                       f"count, got {channels}.")

  def call(self, inputs, training=None, update_statistics=True):
    x1, x2 = tf.split(inputs, 2, axis=-1)
    y1 = x1 + self.f(x2, training=training,
                     update_statistics=update_statistics)
    return tf.concat([x2, y1], axis=-1)

  def inverse(self, outputs, training=None):
    """The unit's input reconstructed from its output (statistics untouched)."""
    x2, y1 = tf.split(outputs, 2, axis=-1)
    x1 = y1 - self.f(x2, training=training, update_statistics=False)
    return tf.concat([x1, x2], axis=-1)


def pool_and_double_channels(x: tf.Tensor, stride: int = 2) -> tf.Tensor:
  """RevNet's parameter-free transition between stages.

  Average-pools by `stride`, then zero-pads the channel axis by C/2 on each
  side, so the channels double without weights (the layout stays
  invertible in the sense that no information is mixed across channels).
  """
  if stride > 1:
    x = tf.nn.avg_pool2d(x, stride, stride, "SAME")
  half = int(x.shape[-1]) // 2
  return tf.pad(x, [[0, 0], [0, 0], [0, 0], [half, half]])


def _after(x: tf.Tensor, gradient: tf.Tensor) -> tf.Tensor:
  """x, with a data dependency on `gradient` (one element of it is read).

  Adds zero, or NaN if that element is NaN (then the gradient is NaN
  anyway); no compiler can fold it away, unlike a control dependency, which
  XLA ignores.
  """
  element = tf.reduce_max(tf.reshape(gradient, [-1])[:1])
  zero = tf.where(tf.equal(element, element), 0.0, float("nan"))
  return x + tf.cast(zero, x.dtype)


def _unit_backward(unit: ReversibleUnit, x2: tf.Tensor, d_outputs: tf.Tensor,
                   variables: Sequence[tf.Variable],
                   training: Optional[bool]):
  """Back-propagates through one unit whose input's second half is x2.

  Returns f(x2) (which reconstructs x1 = y1 - f(x2)), the gradient of the
  unit's input and the gradients of `variables` (None where f does not use
  one). f is computed once, under a tape: its value reconstructs, its
  vector-Jacobian product gives the gradients.
  """
  d_x2_direct, d_y1 = tf.split(d_outputs, 2, axis=-1)
  with tf.GradientTape() as tape:
    tape.watch(x2)
    tape.watch(variables)
    f_x2 = unit.f(x2, training=training, update_statistics=False)
  gradients = tape.gradient(f_x2, [x2, *variables], output_gradients=d_y1)
  # y1 = x1 + f(x2): the gradient of x1 is that of y1.
  d_inputs = tf.concat([d_y1, d_x2_direct + gradients[0]], axis=-1)
  return f_x2, d_inputs, gradients[1:]


def _identity(x: tf.Tensor) -> tf.Tensor:
  return x


def reversible_sequence(units: Sequence[ReversibleUnit], x: tf.Tensor,
                        training: Optional[bool] = None,
                        recompute: bool = False,
                        transition: Optional[Callable[[tf.Tensor],
                                                      tf.Tensor]] = None
                        ) -> tf.Tensor:
  """One RevNet stage: `transition` (if any), then `units` in order.

  Args:
    units: reversible units (one RevNet stage).
    x: the stage's input.
    training: passed to the units (batch norm's mode).
    recompute: back-propagate by reconstruction and recomputation (see the
      module docstring). The forward value is the same either way; the
      gradients agree to float rounding.
    transition: a parameter-free function applied to x first (RevNet's
      `pool_and_double_channels` between stages). With `recompute`, the
      backward pass computes the first unit's input exactly from x instead
      of reconstructing it: x is kept anyway (the previous stage's output,
      or the root max-pool's), and the transition's zero-padded channels,
      whose batch variance is zero, would otherwise amplify the rounding
      of the reconstruction by batch norm's 1/sqrt(epsilon).

  Returns:
    The last unit's output.
  """
  units = list(units)
  transition = transition or _identity
  if not recompute or not units:
    x = transition(x)
    for unit in units:
      x = unit(x, training=training)
    return x

  # The backward pass is traced after the caller's `reference_moments` block
  # has ended: recompute f with the forward pass's moments all the same.
  count = normalization.reference_count(*units)

  @tf.custom_gradient
  def stage(inputs):
    with record.stop_recording():
      outputs = transition(inputs)
      for unit in units:
        outputs = unit(outputs, training=training)

    def gradient(d_outputs, variables=None):
      with normalization.reference_moments(*units, count=count):
        return backward(d_outputs, variables)

    def backward(d_outputs, variables=None):
      variables = list(variables or [])
      totals = [None] * len(variables)
      y, d_y = outputs, d_outputs
      for index in reversed(range(len(units))):
        if index:
          x2, y1 = tf.split(_after(y, d_y), 2, axis=-1)
        else:  # The first unit's input, exactly.
          with tf.GradientTape() as transition_tape:
            start = _after(inputs, d_y)
            transition_tape.watch(start)
            first_input = transition(start)
          _, x2 = tf.split(first_input, 2, axis=-1)
        f_x2, d_y, d_variables = _unit_backward(units[index], x2, d_y,
                                                variables, training)
        if index:
          y = tf.concat([y1 - f_x2, x2], axis=-1)
        totals = [t if d is None else (d if t is None else t + d)
                  for t, d in zip(totals, d_variables)]
      d_inputs = transition_tape.gradient(first_input, start,
                                          output_gradients=d_y)
      return d_inputs, totals

    return outputs, gradient

  return stage(x)
