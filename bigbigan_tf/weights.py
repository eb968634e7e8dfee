"""Framework-neutral weights: a run's networks as named tensors.

`save` writes G, E and D (the live networks and the EMA copies of G and E,
the latter with standing batch-norm statistics) to a safetensors file and,
beside it, a JSON description of every tensor, so that PyTorch or JAX code
can port the weights without reading this library (docs/export.md). `load`
puts such a file back into Keras networks.

Tensor names: "<copy>/<Keras variable path>", copy "live" or "ema", e.g.
"ema/generator/block0/conv1/kernel". Values are stored as they are held:
float32 (or the variable's dtype), convolution kernels HWIO.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

COPIES = ("live", "ema")
LAYOUT_FILE_SUFFIX = ".json"


def _layout(variable: keras.Variable) -> str:
  """How the values of `variable` are laid out, in words."""
  name = variable.path.rsplit("/", 1)[-1]
  rank = len(variable.shape)
  if name == "sn_u":
    return ("spectral-norm power-iteration vector u, [1, out]: the left "
            "singular vector estimate of the kernel reshaped to [-1, out]")
  if name in ("moving_mean", "moving_variance"):
    return f"batch-norm {name.replace('_', ' ')} per channel"
  if name in ("gamma", "beta"):
    return f"batch-norm {'scale' if name == 'gamma' else 'offset'} per channel"
  if name == "kernel" and rank == 4:
    return "convolution kernel HWIO: [height, width, in, out]"
  if name == "kernel" and rank == 2:
    return "dense kernel [in, out] (y = x @ kernel + bias)"
  if name == "bias":
    return "bias per output channel"
  if name == "embeddings":
    return "embedding table [rows, width]"
  return f"as held by the layer, shape {list(variable.shape)}"


def named_variables(networks: Mapping[str, keras.Model],
                    copy: str) -> dict[str, keras.Variable]:
  """{"<copy>/<variable path>": variable} of every network's weights."""
  return {f"{copy}/{v.path}": v
          for network in networks.values() for v in network.weights}


def trainer_variables(trainer) -> dict[str, keras.Variable]:
  """The live networks' and the EMA copies' variables, by tensor name."""
  return {**named_variables(trainer.model.networks(), "live"),
          **named_variables(trainer.ema, "ema")}


def save(variables: Mapping[str, keras.Variable], path: str) -> str:
  """Writes `variables` to `path` (safetensors) and their description to
  `path` + ".json"; returns the JSON's path.

  Raises:
    ValueError: the path does not end in ".safetensors".
  """
  from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  if not path.endswith(".safetensors"):
    raise ValueError(f"Expected a path ending in .safetensors, got {path!r}.")
  # (np.ascontiguousarray would make scalars 1-d.)
  tensors = {name: np.array(v.numpy(), order="C")
             for name, v in variables.items()}
  description = {
      name: {"copy": name.split("/", 1)[0],
             "network": v.path.split("/", 1)[0],
             "layer": v.path.rsplit("/", 1)[0],
             "variable": v.path.rsplit("/", 1)[-1],
             "shape": list(tensors[name].shape),
             "dtype": str(tensors[name].dtype),
             "layout": _layout(v)}
      for name, v in variables.items()}
  parent = os.path.dirname(path)
  if parent:
    tf.io.gfile.makedirs(parent)
  data = safetensors_numpy.save(tensors, metadata={"format": "bigbigan_tf"})
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(data)
  json_path = path + LAYOUT_FILE_SUFFIX
  with tf.io.gfile.GFile(json_path, "w") as f:
    json.dump(description, f, indent=1, sort_keys=True)
  return json_path


def load(variables: Mapping[str, keras.Variable], path: str) -> None:
  """Assigns the tensors of a `save`d file to `variables` (by name).

  Raises:
    ValueError: names missing on either side, or a shape differs.
  """
  from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(path, "rb") as f:
    tensors = safetensors_numpy.load(f.read())
  missing = sorted(set(variables) - set(tensors))
  extra = sorted(set(tensors) - set(variables))
  if missing or extra:
    raise ValueError(f"{path} does not match these networks: missing "
                     f"{missing[:3]} ({len(missing)}), unexpected "
                     f"{extra[:3]} ({len(extra)}).")
  for name, variable in variables.items():
    if tuple(tensors[name].shape) != tuple(variable.shape):
      raise ValueError(f"{name}: expected shape {tuple(variable.shape)}, "
                       f"got {tensors[name].shape} in {path}.")
    variable.assign(tensors[name])
