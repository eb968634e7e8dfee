"""Prints the Adam state of E and G in training checkpoints:

  python docs/results/adam_state.py MODEL_DIR/checkpoints/ckpt-N ...

For each network: the median over all its weights of sqrt(v) (Adam's second
moment), of |m| (its first moment) and their ratio, which is about the size
of a step in units of the learning rate (docs/experiments.md, Q15b).
"""

import sys

import numpy as np
import tensorflow as tf


def _arrays(reader, names, role, kind):
  return [reader.get_tensor(name).ravel() for name in names
          if name.startswith(f"{role}_optimizer/{kind}/")]


def adam_state(checkpoint: str) -> dict:
  """role -> (median sqrt(v), median |m|, their ratio).

  A checkpoint names an optimiser variable once, under the first list that
  holds it: Adam's first moments under `_momentums`, and the second moments
  under `_velocities` or, when that list is not tracked, `_variables`
  (which then also holds the first moments in older checkpoints: told apart
  by sign, second moments being >= 0).
  """
  reader = tf.train.load_checkpoint(checkpoint)
  names = reader.get_variable_to_shape_map()
  state = {}
  for role in ("encoder", "generator"):
    others = _arrays(reader, names, role, "_variables")
    m = _arrays(reader, names, role, "_momentums") or [
        a for a in others if a.min() < 0]
    v = _arrays(reader, names, role, "_velocities") or [
        a for a in others if a.min() >= 0]
    if not m or not v:
      raise ValueError(f"{checkpoint} holds no Adam moments of the {role}.")
    sqrt_v = float(np.median(np.sqrt(np.concatenate(v))))
    abs_m = float(np.median(np.abs(np.concatenate(m))))
    state[role] = (sqrt_v, abs_m, abs_m / sqrt_v)
  return state


if __name__ == "__main__":
  for path in sys.argv[1:]:
    for role, (sqrt_v, abs_m, ratio) in adam_state(path).items():
      print(f"{path} {role}: median sqrt(v) {sqrt_v:.3g}, "
            f"median |m| {abs_m:.3g}, ratio {ratio:.3f}")
