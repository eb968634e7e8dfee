"""The latent prior P_z: N(0, I) or U(-1, 1)."""

from __future__ import annotations

from typing import Optional

import gin
import tensorflow as tf

NORMAL = "normal"
UNIFORM = "uniform"
PRIOR_TYPES = (NORMAL, UNIFORM)


@gin.configurable("prior")
class Prior:
  """Samples z of width `z_dim` from the chosen distribution.

  Args:
    z_dim: latent width (must equal G's and E's).
    distribution: "normal" (N(0, I), paired with a stochastic or deterministic
      encoder) or "uniform" (U(-1, 1), paired with the "uniform" encoder mode).
  """

  def __init__(self, z_dim: int = gin.REQUIRED, distribution: str = NORMAL):
    if distribution not in PRIOR_TYPES:
      raise ValueError(f"Prior distribution must be one of {PRIOR_TYPES}, "
                       f"got {distribution!r}.")
    self.z_dim = int(z_dim)
    self.distribution = distribution

  def sample(self, batch_size: int, seed: Optional[tf.Tensor] = None,
             dtype=tf.float32) -> tf.Tensor:
    """Returns [batch_size, z_dim] samples; `seed` is a stateless seed [2]."""
    shape = [batch_size, self.z_dim]
    if self.distribution == NORMAL:
      if seed is None:
        return tf.random.normal(shape, dtype=dtype)
      return tf.random.stateless_normal(shape, seed, dtype=dtype)
    if seed is None:
      return tf.random.uniform(shape, -1.0, 1.0, dtype=dtype)
    return tf.random.stateless_uniform(shape, seed, -1.0, 1.0, dtype=dtype)
