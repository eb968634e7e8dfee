"""Adam as the training step applies it: fused, and inside the replica step.

`FusedAdam` is Keras' Adam (same update, same state, so checkpoints are
interchangeable) whose per-variable update is one ResourceApplyAdam op
instead of about twenty, which keeps the traced step small.

`FusedAdam.apply_in_replica` is how the training step applies gradients: in
replica context, one all-reduce (sum) of the list of gradients, then every
replica updates its own copy of each variable and slot through the local
variable handle, with no merge_call. That is the program a TPU runs (an
all-reduce and raw variable updates, every write inside the replicated
step), and the same code runs on one device, under MirroredStrategy and
MultiWorkerMirroredStrategy. Keras' own `apply_gradients` (all-reduce, then
merge_call and `extended.update` per variable) still works and gives the
same result.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


def _handle(variable):
  """The resource handle of a Keras or TF variable; in replica context, the
  replica's own copy of a distributed variable."""
  return (variable.value if isinstance(variable, keras.Variable)
          else variable).handle


class FusedAdam(keras.optimizers.Adam):
  """Keras' Adam, each variable's update one fused op (ResourceApplyAdam).

  The same update and state (the momentum and velocity variables Keras'
  Adam keeps): m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), w -= lr
  sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).

  Args:
    learning_rate: the initial rate (a float: Keras keeps it in a variable,
      which checkpoints hold).
    schedule: optional callable of no arguments giving the rate to use now
      (e.g. a function of a global step). `apply_in_replica` calls it at
      every update and writes the value into the rate variable (each
      replica its own copy), so a checkpoint holds the rate last used.
    **kwargs: Keras Adam's.
  """

  def __init__(self, learning_rate: float = 0.001, *, schedule=None,
               **kwargs):
    super().__init__(learning_rate, **kwargs)
    self._schedule = schedule

  def _get_current_learning_rate(self):
    if self._schedule is not None:
      return self._schedule()
    return super()._get_current_learning_rate()

  def update_step(self, gradient, variable, learning_rate):
    if self.amsgrad:
      return super().update_step(gradient, variable, learning_rate)
    self._apply_adam(gradient, variable,
                     self._step_scalars(variable.dtype, learning_rate))

  def _distributed_tf_update_step(self, distribution, grads_and_vars,
                                  learning_rate):
    """Keras' cross-replica path, sharing one set of step scalars per dtype
    (about 15 ops each) instead of making them once per variable."""
    if self.amsgrad:
      return super()._distributed_tf_update_step(distribution, grads_and_vars,
                                                 learning_rate)
    update = self._update_with_shared_scalars(learning_rate)
    for gradient, variable in grads_and_vars:
      distribution.extended.update(variable, update, args=(gradient,),
                                   group=False)

  def apply_in_replica(self, gradients: Sequence[tf.Tensor],
                       variables: Sequence) -> None:
    """Sums `gradients` over replicas and updates every replica's copy of
    `variables` (and this optimiser's slots and step count) locally.

    Call in replica context (inside `strategy.run`, or anywhere without a
    strategy). The variables must be replica-identical (the network weights
    are: Keras creates them with aggregation NONE, and every replica applies
    the same summed gradient).

    Variables whose gradient is None (parts a configuration does not use)
    are left as they are.

    Raises:
      ValueError: amsgrad (not fused).
    """
    if self.amsgrad:
      raise ValueError("apply_in_replica implements Adam without amsgrad; "
                       "this optimiser has amsgrad=True.")
    pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
    # Dense gradients (an embedding's arrive as IndexedSlices): one
    # all-reduce of same-shaped tensors, as a TPU program holds them.
    gradients = [tf.convert_to_tensor(g) for g, _ in pairs]
    variables = [v for _, v in pairs]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
      gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
    learning_rate = tf.cast(self._get_current_learning_rate(),
                            self._learning_rate.dtype)
    if self._schedule is not None:  # The rate in use, for checkpoints.
      tf.raw_ops.AssignVariableOp(resource=_handle(self._learning_rate),
                                  value=learning_rate)
    update = self._update_with_shared_scalars(learning_rate)
    for gradient, variable in zip(gradients, variables):
      update(variable, gradient)
    # The step count, on every replica's own copy.
    tf.raw_ops.AssignAddVariableOp(
        resource=_handle(self.iterations),
        value=tf.constant(1, self.iterations.dtype))

  def _update_with_shared_scalars(self, learning_rate):
    """`update(variable, gradient)` applying Adam, with the step scalars made
    once per dtype and shared by every variable it updates."""
    scalars = {}

    def update(variable, gradient):
      if variable.dtype not in scalars:
        scalars[variable.dtype] = self._step_scalars(variable.dtype,
                                                     learning_rate)
      self._apply_adam(gradient, variable, scalars[variable.dtype])

    return update

  def _step_scalars(self, dtype, learning_rate) -> dict[str, tf.Tensor]:
    step = tf.cast(self.iterations + 1, dtype)
    beta1 = tf.cast(self.beta_1, dtype)
    beta2 = tf.cast(self.beta_2, dtype)
    return dict(beta1_power=tf.pow(beta1, step), beta2_power=tf.pow(beta2, step),
                lr=tf.cast(learning_rate, dtype), beta1=beta1, beta2=beta2,
                epsilon=tf.cast(self.epsilon, dtype))

  def _apply_adam(self, gradient, variable, scalars: dict) -> None:
    index = self._get_variable_index(variable)
    tf.raw_ops.ResourceApplyAdam(
        var=_handle(variable), m=_handle(self._momentums[index]),
        v=_handle(self._velocities[index]),
        grad=tf.cast(gradient, variable.dtype), use_locking=False, **scalars)
