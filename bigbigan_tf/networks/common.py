"""Helpers shared by the networks: output keys and input-shape checks."""

from __future__ import annotations

import inspect
import random
from typing import Optional, Sequence

import gin
import numpy as np
import tensorflow as tf

# Encoder output keys (the released BigBiGAN Hub module's names).
Z_MEAN = "z_mean"
Z_STDEV = "z_stdev"
Z_SAMPLE = "z_sample"
AVEPOOL_FEAT = "avepool_feat"
BN_CRELU_FEAT = "bn_crelu_feat"

# Discriminator output keys.
SCORE_X = "score_x"
SCORE_Z = "score_z"
SCORE_XZ = "score_xz"
# Every score D can emit, in this order.
SCORE_KEYS = (SCORE_X, SCORE_Z, SCORE_XZ)
FEATURES_X = "features_x"


def check_int(value: object, name: str, minimum: int = 1,
              allow_none: bool = False) -> None:
  """Raises ValueError unless `value` is an int (Python or NumPy, not a
  bool) >= `minimum`, or None when `allow_none`."""
  if value is None and allow_none:
    return
  if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
      or value < minimum):
    expected = f"{'None or ' if allow_none else ''}an int >= {minimum}"
    raise ValueError(f"{name} must be {expected}; received {value!r}.")


def check_shape(name: str, tensor: tf.Tensor,
                expected: Sequence[int | None]) -> None:
  """Raises ValueError unless tensor's static shape matches `expected`.

  `expected` lists every dimension; None matches any size (the batch).
  """
  shape = tuple(tensor.shape.as_list()) if tensor.shape.rank is not None else None
  expected = tuple(expected)
  ok = shape is not None and len(shape) == len(expected) and all(
      e is None or s is None or s == e for s, e in zip(shape, expected))
  if not ok:
    shown = tuple("N" if e is None else e for e in expected)
    raise ValueError(f"{name}: expected shape {shown} (N = batch), "
                     f"received {shape}.")


def keras_configurable(name: str):
  """`gin.configurable` for Keras layers and models.

  gin wraps `__init__` in a `(*args, **kwargs)` function; Keras inspects
  `__init__` with `getfullargspec`, which does not follow `__wrapped__`.
  Restoring the signature keeps both working, and gin still rejects bindings
  to parameters the class does not have.
  """

  def decorate(cls):
    cls = gin.configurable(name)(cls)
    cls.__init__.__signature__ = inspect.signature(cls.__init__)
    return cls

  return decorate


class BuiltByFirstCall:
  """Mixin for composite layers: the first call builds their sublayers.

  Keras builds a layer that has no `build` method of its own by first tracing
  its `call` on symbolic inputs in a scratch graph, where every weight that
  is read runs its initialiser and every spectral norm its power iteration
  as graph ops. The networks call themselves eagerly on a small batch at
  construction anyway, and that call builds each sublayer as it reaches it,
  so the trace is pure cost (about half of building a model). Mix this in
  before the Keras base class.
  """

  def build(self, input_shape):
    del input_shape  # Sublayers build themselves when the call reaches them.


def arguments_of(local_variables: dict) -> dict:
  """A constructor's arguments, from `locals()` taken as its first statement.

  Stored by the networks as `constructor_arguments` so that a model can be
  rebuilt with the same architecture (EMA copies, export) by `clone`.
  """
  return {k: v for k, v in local_variables.items()
          if k not in ("self", "__class__")}


def clone(model, seed: Optional[int] = None):
  """A freshly initialised model of the same class and arguments.

  With `seed`, the initial weights depend on it alone: Keras 3 draws an
  unseeded initializer's seed from Python's `random` module when the
  initializer is made, so that module is seeded while the model is built
  and its state restored afterwards (no effect on the caller's randomness).
  """
  if seed is None:
    return type(model)(**model.constructor_arguments)
  state = random.getstate()
  random.seed(seed)
  try:
    return type(model)(**model.constructor_arguments)
  finally:
    random.setstate(state)


def upsample(images: tf.Tensor, factor: int) -> tf.Tensor:
  """Nearest-neighbour upsampling of NHWC images by an integer factor (a
  repeat along height and width: XLA friendly)."""
  if factor == 1:
    return images
  return tf.repeat(tf.repeat(images, factor, axis=1), factor, axis=2)


def upsample_to_resolution(images: tf.Tensor, resolution: int) -> tf.Tensor:
  """Square images [N, s, s, C] upsampled (nearest) to [N, r, r, C]: how G's
  images are shown to an encoder of a higher resolution.

  Raises:
    ValueError: `resolution` is not a multiple of the images' static size.
  """
  size = images.shape[1]
  if size is None or resolution % size:
    raise ValueError(f"Cannot show {size}-pixel images to an encoder of "
                     f"resolution {resolution}: expected a known size that "
                     f"divides {resolution}.")
  return upsample(images, resolution // size)


def pool_to_resolution(images: tf.Tensor, resolution: int) -> tf.Tensor:
  """Average-pools square images [N, s, s, C] down to [N, r, r, C].

  How D sees E's input when E works at a higher resolution than G and D
  (2x2 average pooling from 256 to 128, as in the released modules).

  Raises:
    ValueError: the images' static size is unknown or not a multiple of
      `resolution`.
  """
  size = images.shape[1]
  if size is None or size % resolution:
    raise ValueError(f"Images of size {size} cannot be pooled to "
                     f"{resolution}x{resolution}: expected a known multiple "
                     f"of {resolution}.")
  factor = size // resolution
  if factor == 1:
    return images
  return tf.nn.avg_pool2d(images, factor, factor, "VALID")
