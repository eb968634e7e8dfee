"""Framework-neutral weights (bigbigan_tf/weights.py, bigbigan-export
--weights_format=safetensors) and the NumPy reader docs/export.md shows."""

import json
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import restore
from bigbigan_tf import training
from bigbigan_tf import weights

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent


def _outputs(trainer):
  """Every network's inference outputs (live and EMA) on fixed inputs."""
  model = trainer.model
  x = tf.random.stateless_uniform(
      [4, model.encoder_resolution, model.encoder_resolution, 3], [1, 2],
      -1.0, 1.0)
  z = tf.random.stateless_normal([4, model.z_dim], [3, 4])
  out = {}
  for copy, net in (("live", model), ("ema", trainer.ema_model())):
    out[f"{copy}/G"] = net.generate(z, training=False)
    out[f"{copy}/E"] = net.encode(x, training=False)["z_mean"]
  out["live/D"] = model.discriminate(model.pool_for_discriminator(x), z,
                                     training=False)["score_xz"]
  return {k: np.asarray(v) for k, v in out.items()}


def _numpy_reader():
  """The reader of docs/export.md, executed as written there."""
  text = (ROOT / "docs" / "export.md").read_text()
  code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
  namespace = {}
  exec(code, namespace)  # pylint: disable=exec-used
  return namespace["read_safetensors"]


@pytest.mark.slow
def test_weights_round_trip_into_fresh_networks(smoke_run_dir, tmp_path):
  trainer = restore.restore_trainer(smoke_run_dir)
  variables = weights.trainer_variables(trainer)
  path = str(tmp_path / "weights.safetensors")
  layout_path = weights.save(variables, path)
  expected = _outputs(trainer)

  # Fresh networks of the run's config: other weights until loaded.
  config.parse([str(pathlib.Path(smoke_run_dir) / "config.gin")])
  with tf.distribute.get_strategy().scope():
    fresh = training.Trainer(config.build_model(), tf.distribute.get_strategy(),
                             8)
  before = _outputs(fresh)
  assert not np.allclose(before["ema/G"], expected["ema/G"])
  weights.load(weights.trainer_variables(fresh), path)
  got = _outputs(fresh)
  for key, value in expected.items():
    np.testing.assert_array_equal(got[key], value, err_msg=key)

  # The description and the NumPy-only reader.
  layout = json.loads(pathlib.Path(layout_path).read_text())
  tensors = _numpy_reader()(path)
  assert sorted(tensors) == sorted(layout) == sorted(variables)
  for name, variable in variables.items():
    np.testing.assert_array_equal(tensors[name], variable.numpy(),
                                  err_msg=name)
    assert layout[name]["shape"] == list(variable.shape)
  assert {layout[n]["copy"] for n in layout} == {"live", "ema"}
  assert {layout[n]["network"] for n in layout if layout[n]["copy"] == "live"
         } == {"generator", "encoder", "discriminator"}
  kernels = [n for n in layout if n.endswith("/kernel")
             and len(layout[n]["shape"]) == 4]
  assert kernels and all("HWIO" in layout[n]["layout"] for n in kernels)
  assert any(layout[n]["variable"] == "sn_u" for n in layout)


def test_loading_into_other_networks_is_a_clear_error(tmp_path):
  a = keras.layers.Dense(3, name="dense_a")
  a.build((None, 2))
  path = str(tmp_path / "w.safetensors")
  weights.save(weights.named_variables({"a": a}, "live"), path)
  b = keras.layers.Dense(4, name="dense_a")  # Same names, other shapes.
  b.build((None, 2))
  with pytest.raises(ValueError, match="expected shape"):
    weights.load(weights.named_variables({"a": b}, "live"), path)
  with pytest.raises(ValueError, match="missing"):
    weights.load({"live/other": b.kernel}, path)
  with pytest.raises(ValueError, match="ending in .safetensors"):
    weights.save({}, str(tmp_path / "w.bin"))


@pytest.mark.slow
def test_export_tool_writes_the_weights(smoke_run_dir, tmp_path):
  result = subprocess.run(
      [str(BIN / "bigbigan-export"), f"--model_dir={smoke_run_dir}",
       f"--export_dir={tmp_path / 'out'}", "--weights_format=safetensors"],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
  path = tmp_path / "out" / "weights.safetensors"
  assert f"weights: {path}" in result.stdout
  tensors = _numpy_reader()(str(path))
  layout = json.loads((tmp_path / "out" /
                       "weights.safetensors.json").read_text())
  assert sorted(tensors) == sorted(layout) and len(tensors) > 100
