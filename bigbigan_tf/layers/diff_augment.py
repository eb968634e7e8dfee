"""Differentiable augmentation of the images D sees (Zhao et al. 2020).

On a few thousand images D memorises the real ones and stops teaching G and
E. Applying the same family of random, differentiable transforms to every
image D sees, real and generated, in D's and in E+G's updates, keeps D from
telling them apart by memorised details, and gradients still reach G through
the transform. In a BiGAN only D's image input is transformed: E encodes the
clean x, so D judges the pair (T(x), E(x)) against (T(G(z)), z).

Transforms (each with its own random draw per example, stateless seeds):
  * "translation": shift by up to 1/8 of the size in each direction, with
    the background value (-1) shifted in;
  * "cutout": a square of half the size, at a random place, set to 0;
  * "color": random brightness (+-0.5), saturation (x0 to x2) and contrast
    (x0.5 to x1.5), as in the paper's "color" policy, in [-1, 1] units.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

POLICIES = ("translation", "cutout", "color")


def check_policy(policy: Sequence[str]) -> tuple[str, ...]:
  """The policy as a tuple, or a ValueError naming the unknown transforms."""
  if isinstance(policy, str):
    raise ValueError(f"Expected a sequence of transforms from {POLICIES}, "
                     f"got the string {policy!r} (write ({policy!r},)).")
  policy = tuple(policy)
  unknown = [p for p in policy if p not in POLICIES]
  if unknown:
    raise ValueError(f"Unknown augmentation(s) {unknown}; expected any of "
                     f"{POLICIES}.")
  return policy


def _uniform(seed, shape, low=0.0, high=1.0):
  return tf.random.stateless_uniform(shape, seed, low, high)


def _translation(x: tf.Tensor, seed: tf.Tensor, ratio: float = 0.125):
  batch = tf.shape(x)[0]
  size = x.shape[1]
  shift = int(size * ratio + 0.5)
  if shift == 0:
    return x
  offsets = tf.random.stateless_uniform([batch, 2], seed, -shift, shift + 1,
                                        dtype=tf.int32)
  padded = tf.pad(x, [[0, 0], [shift, shift], [shift, shift], [0, 0]],
                  constant_values=-1.0)
  # Gather each example's window: rows/cols shift + offset + arange(size).
  base = tf.range(size)[None, :] + shift
  rows = base - offsets[:, :1]
  cols = base - offsets[:, 1:]
  x = tf.gather(padded, rows, axis=1, batch_dims=1)
  return tf.gather(x, cols, axis=2, batch_dims=1)


def _cutout(x: tf.Tensor, seed: tf.Tensor, ratio: float = 0.5):
  batch = tf.shape(x)[0]
  size = x.shape[1]
  half = int(size * ratio + 0.5) // 2
  centres = tf.random.stateless_uniform([batch, 2], seed, 0, size,
                                        dtype=tf.int32)
  grid = tf.range(size)[None, :]
  inside_rows = tf.abs(grid - centres[:, :1]) < half
  inside_cols = tf.abs(grid - centres[:, 1:]) < half
  mask = tf.logical_and(inside_rows[:, :, None], inside_cols[:, None, :])
  return x * tf.cast(tf.logical_not(mask), x.dtype)[..., None]


def _color(x: tf.Tensor, seed: tf.Tensor):
  batch = tf.shape(x)[0]
  seeds = tf.random.experimental.stateless_split(seed, 3)
  brightness = _uniform(seeds[0], [batch, 1, 1, 1], -0.5, 0.5)
  x = x + tf.cast(brightness, x.dtype) * 2.0
  mean = tf.reduce_mean(x, axis=3, keepdims=True)
  saturation = _uniform(seeds[1], [batch, 1, 1, 1], 0.0, 2.0)
  x = (x - mean) * tf.cast(saturation, x.dtype) + mean
  mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
  contrast = _uniform(seeds[2], [batch, 1, 1, 1], 0.5, 1.5)
  return (x - mean) * tf.cast(contrast, x.dtype) + mean


_TRANSFORMS = {"color": _color, "translation": _translation,
               "cutout": _cutout}


def diff_augment(images: tf.Tensor, policy: Sequence[str],
                 seed: tf.Tensor) -> tf.Tensor:
  """Applies the policy's transforms in order (color, translation, cutout).

  Args:
    images: [N, s, s, C] in [-1, 1] (static s).
    policy: transforms from POLICIES; empty returns `images` unchanged.
    seed: int [2] stateless seed; one draw per example and transform.

  Raises:
    ValueError: an unknown transform.
  """
  policy = check_policy(policy)
  for k, name in enumerate(p for p in POLICIES if p in policy):
    images = _TRANSFORMS[name](
        images, tf.random.experimental.stateless_fold_in(seed, k))
  return images
