"""Tests of the SavedModel export: load it and compare it to the live model.

Values at smoke size (gin/smoke.gin, freshly initialised); the interface
(signature names, output keys, dtypes, shapes) also at paper size
(gin/paper_resnet50.gin, docs/design.md section 7), read from the written
saved_model.pb. Downstream use is exercised the three ways users load it:
`hub.load(...).signatures`, Keras 3's TFSMLayer and tf_keras' hub.KerasLayer.
The tools run as subprocesses (their absl flags stay out of this process).
"""

import copy
import os
import pathlib
import shutil
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
import tensorflow_hub as hub

import conftest  # pylint: disable=g-bad-import-order
from bigbigan_tf import export
from bigbigan_tf import restore
from bigbigan_tf.networks import common

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE_GIN = str(ROOT / "gin" / "smoke.gin")
PAPER_GIN = str(ROOT / "gin" / "paper_resnet50.gin")
SMOKE_Z_DIM = 16
SMOKE_RESOLUTION = 32
BATCH = 4
# Loaded signatures run the same graphs on the same weights as the live model;
# on CPU they agree exactly, the tolerance leaves room for kernel fusion.
TOLERANCE = 1e-5

BIGBIGAN_SIGNATURES = {"generate", "encode", "default", "discriminate",
                       "reconstruct", "serving_default"}


def _f32(shape):
  return ("float32", list(shape))


# Signature -> (inputs, outputs), each name -> (dtype, shape), -1 the batch.
#
# RELEASED_INTERFACE: the released TF-Hub module bigbigan-resnet50/1, whose
# signatures (discriminate, default, encode, generate, with every input and
# output shape) are listed, as hub.Module reported them, in the comment block
# "# Hub module info" of the public file
# models/lasiummamlgan/maml_gan_miniimagenet_biggan.py in the repository
# siavash-khodadadeh/MetaLearning-TF2.0; docs/design.md section 7.
RELEASED_INTERFACE = {
    "generate": ({"z": _f32([-1, 120])},
                 {"default": _f32([-1, 128, 128, 3]),
                  "upsampled": _f32([-1, 256, 256, 3])}),
    "encode": ({"x": _f32([-1, 256, 256, 3])},
               {"z_mean": _f32([-1, 120]), "z_stdev": _f32([-1, 120]),
                "z_sample": _f32([-1, 120]), "default": _f32([-1, 120]),
                "avepool_feat": _f32([-1, 2048]),
                "bn_crelu_feat": _f32([-1, 4096])}),
    "default": ({"x": _f32([-1, 256, 256, 3])},
                {"default": _f32([-1, 120])}),
    "discriminate": ({"x": _f32([-1, 128, 128, 3]), "z": _f32([-1, 120])},
                     {"score_x": _f32([-1]), "score_z": _f32([-1]),
                      "score_xz": _f32([-1])}),
}
# Not part of the released interface: this library's additions.
# serving_default repeats `default` (the encoder).
LIBRARY_ADDITIONS = {
    "reconstruct": ({"x": _f32([-1, 256, 256, 3])},
                    {"default": _f32([-1, 128, 128, 3]),
                     "z_mean": _f32([-1, 120])}),
    "serving_default": RELEASED_INTERFACE["default"],
}
# What the export of gin/paper_resnet50.gin must have, no more.
PAPER_INTERFACE = {**RELEASED_INTERFACE, **LIBRARY_ADDITIONS}


@pytest.fixture(scope="module")
def smoke_model():
  return export.model_to_export(gin_files=[SMOKE_GIN])


@pytest.fixture(scope="module")
def exported(smoke_model, tmp_path_factory):
  return export.export_modules(
      smoke_model, str(tmp_path_factory.mktemp("export") / "smoke"))


def _images(seed=0, resolution=SMOKE_RESOLUTION, batch=BATCH):
  return tf.random.stateless_uniform([batch, resolution, resolution, 3],
                                     [seed, 1], -1.0, 1.0)


def _latents(seed=0, batch=BATCH):
  return tf.random.stateless_normal([batch, SMOKE_Z_DIM], [seed, 2])


def _close(actual, expected):
  np.testing.assert_allclose(np.asarray(actual), np.asarray(expected),
                             rtol=TOLERANCE, atol=TOLERANCE)


def _signature_interface(saved_model_dir):
  """{signature: (inputs, outputs)} read from saved_model.pb, no variables."""
  proto = saved_model_pb2.SavedModel()
  proto.ParseFromString(
      (pathlib.Path(saved_model_dir) / "saved_model.pb").read_bytes())
  (meta_graph,) = proto.meta_graphs
  describe = lambda infos: {
      name: (tf.dtypes.as_dtype(info.dtype).name,
             [-1 if d is None else d
              for d in tf.TensorShape(info.tensor_shape).as_list()])
      for name, info in infos.items()}
  return {name: (describe(sig.inputs), describe(sig.outputs))
          for name, sig in meta_graph.signature_def.items()
          if not name.startswith("__")}  # TF's __saved_model_init_op.


def _run(tool, *args):
  return subprocess.run(
      [sys.executable, str(ROOT / "tools" / tool), *args], cwd=ROOT,
      capture_output=True, text=True, timeout=600,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


# ---------------------------------------------------------------------------
# Layout and the interface.
# ---------------------------------------------------------------------------


def test_layout_and_smoke_interface(exported):
  assert set(exported) == {"bigbigan", "encoder", "generator"}
  root = pathlib.Path(exported["bigbigan"]).parent
  assert sorted(p.name for p in root.parent.iterdir()) == ["smoke"]  # No temp.
  for path in exported.values():
    assert (pathlib.Path(path) / "saved_model.pb").is_file()
  res, z_dim = SMOKE_RESOLUTION, SMOKE_Z_DIM
  interface = _signature_interface(exported["bigbigan"])
  assert set(interface) == BIGBIGAN_SIGNATURES
  assert interface["generate"] == (
      {"z": _f32([-1, z_dim])},
      {"default": _f32([-1, res, res, 3]),
       "upsampled": _f32([-1, 2 * res, 2 * res, 3])})
  assert interface["default"] == ({"x": _f32([-1, res, res, 3])},
                                  {"default": _f32([-1, z_dim])})
  assert interface["serving_default"] == interface["default"]
  assert interface["encode"][1]["bn_crelu_feat"] == _f32([-1, 2 * 128])
  assert set(interface["encode"][1]) == set(export.ENCODE_KEYS)
  assert interface["discriminate"][0] == {"x": _f32([-1, res, res, 3]),
                                          "z": _f32([-1, z_dim])}
  assert _signature_interface(exported["encoder"]) == {
      "serving_default": interface["encode"]}
  assert _signature_interface(exported["generator"]) == {
      "serving_default": interface["generate"]}


@pytest.mark.slow
def test_paper_size_interface_matches_design(tmp_path):
  """The ResNet-50 config's export, read back from disk. The weights are
  zeros (a shape-only build: orthogonal initialisation of the huge kernels
  would take most of a minute); the traced signatures are the real ones."""
  with conftest.shape_only_builds():
    bigbigan = export.model_to_export(gin_files=[PAPER_GIN])
  assert (bigbigan.z_dim, bigbigan.resolution,
          bigbigan.encoder_resolution) == (120, 128, 256)
  paths = export.export_modules(bigbigan, str(tmp_path / "paper"))
  del bigbigan
  try:
    interface = _signature_interface(paths["bigbigan"])
    assert interface == PAPER_INTERFACE
    assert _signature_interface(paths["encoder"]) == {
        "serving_default": PAPER_INTERFACE["encode"]}
    assert _signature_interface(paths["generator"]) == {
        "serving_default": PAPER_INTERFACE["generate"]}
  finally:
    shutil.rmtree(tmp_path / "paper")  # 2 GB; pytest keeps old tmp dirs.


# ---------------------------------------------------------------------------
# Values: loaded signatures against the live model.
# ---------------------------------------------------------------------------


def test_signatures_equal_live_model(smoke_model, exported):
  loaded = hub.load(exported["bigbigan"])
  signatures = loaded.signatures
  x, z = _images(), _latents()

  generated = signatures["generate"](z=z)
  live_images = smoke_model.generate(z, training=False)
  _close(generated["default"], live_images)
  assert np.abs(generated["default"].numpy()).max() <= 1.0
  assert generated["upsampled"].shape == (BATCH, 64, 64, 3)
  _close(tf.nn.avg_pool2d(generated["upsampled"], 2, 2, "VALID"),
         generated["default"])
  encoded = signatures["encode"](x=x)
  live = smoke_model.encode(x, training=False)
  for key in (common.Z_MEAN, common.Z_STDEV, common.AVEPOOL_FEAT,
              common.BN_CRELU_FEAT):
    _close(encoded[key], live[key])
  _close(encoded["default"], encoded[common.Z_SAMPLE])
  # z_sample = z_mean + eps * z_stdev with fresh noise eps ~ N(0, I).
  eps = ((encoded[common.Z_SAMPLE] - encoded[common.Z_MEAN]) /
         encoded[common.Z_STDEV]).numpy()
  assert 0.5 < eps.std() < 1.5 and abs(eps.mean()) < 0.5
  # `default` (and serving_default, the same signature) returns encode's
  # `default` alone: a draw of its own, z_mean + eps * z_stdev.
  for name in ("default", "serving_default"):
    outputs = signatures[name](x=x)
    assert list(outputs) == ["default"]
    eps = ((outputs["default"] - live[common.Z_MEAN]) /
           live[common.Z_STDEV]).numpy()
    assert 0.5 < eps.std() < 1.5 and abs(eps.mean()) < 0.5

  x_d = _images(seed=1)
  scores = signatures["discriminate"](x=x_d, z=z)
  live_scores = smoke_model.discriminate(x_d, z, training=False)
  assert set(scores) == set(common.SCORE_KEYS)
  for key in common.SCORE_KEYS:
    assert scores[key].shape == (BATCH,)
    _close(scores[key], live_scores[key])

  reconstructed = signatures["reconstruct"](x=x)
  _close(reconstructed[common.Z_MEAN], live[common.Z_MEAN])
  _close(reconstructed["default"],
         smoke_model.generate(live[common.Z_MEAN], training=False))

  # The same functions as attributes (what TFSMLayer calls).
  _close(loaded.encode(x)[common.AVEPOOL_FEAT], live[common.AVEPOOL_FEAT])
  _close(loaded.generate(z)["default"], live_images)


def test_default_signature_is_encodes_default_output():
  """With a deterministic latent, encode's `default` has no noise, so the
  `default` signature must return exactly the same values."""
  bigbigan = export.model_to_export(
      gin_files=[SMOKE_GIN],
      gin_bindings=['encoder.latent_mode = "deterministic"'])
  functions = export.bigbigan_functions(bigbigan)
  x = _images()
  outputs = functions["default"](x)
  assert list(outputs) == ["default"]
  np.testing.assert_array_equal(outputs["default"],
                                functions["encode"](x)["default"])
  np.testing.assert_array_equal(
      outputs["default"], bigbigan.encode(x, training=False)[common.Z_MEAN])
  _, signatures = export.bigbigan_module(bigbigan, functions)
  assert signatures["serving_default"] is signatures["default"]


def test_discriminator_without_heads_omits_their_scores():
  bigbigan = export.model_to_export(
      gin_files=[SMOKE_GIN],
      gin_bindings=["discriminator.use_score_z = False",
                    "discriminator.use_score_xz = False"])
  discriminate = export.bigbigan_functions(bigbigan)["discriminate"]
  outputs = discriminate.get_concrete_function().structured_outputs
  assert set(outputs) == {common.SCORE_X}


def test_wrong_inputs_fail_at_the_boundary(exported):
  loaded = hub.load(exported["bigbigan"])
  encode = loaded.signatures["encode"]
  for wrong in (tf.zeros([2, 16, 16, 3]), tf.zeros([2, 32, 32, 1]),
                tf.zeros([32, 32, 3])):  # Wrong rank: would abort in conv2d.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[[0-9,]+\] is "
                       r"not compatible with expected shape \[\?,32,32,3\]"):
      encode(x=wrong)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"expected shape \[\?,16\]"):
    loaded.signatures["generate"](z=tf.zeros([2, 15]))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="expected to be a float tensor but is a double"):
    encode(x=tf.zeros([2, 32, 32, 3], tf.float64))
  # NumPy input is converted to the signature's dtype.
  assert encode(x=np.zeros([2, 32, 32, 3]))["z_mean"].dtype == tf.float32

  spec = r"TensorSpec\(shape=\(None, 32, 32, 3\), dtype=tf.float32"
  with pytest.raises(TypeError, match=spec):
    loaded.encode(tf.zeros([2, 16, 16, 3]))
  with pytest.raises(TypeError, match=spec):
    loaded.encode(tf.zeros([2, 32, 32, 3], tf.float64))
  encoder = hub.load(exported["encoder"])
  with pytest.raises(ValueError, match=r"(?s)Could not find matching.*" +
                     spec):
    encoder(tf.zeros([2, 16, 16, 3]), training=False)


# ---------------------------------------------------------------------------
# Reusable SavedModels.
# ---------------------------------------------------------------------------


def test_reusable_encoder_and_generator(smoke_model, exported):
  encoder = hub.load(exported["encoder"])
  assert list(encoder.regularization_losses) == []
  assert len(encoder.variables) == len(smoke_model.encoder.variables)
  assert len(encoder.trainable_variables) == len(
      smoke_model.encoder.trainable_variables)
  assert all(v.trainable for v in encoder.trainable_variables)
  x = _images()
  inference = encoder(x, training=False)
  assert set(inference) == set(export.ENCODE_KEYS)
  _close(inference[common.AVEPOOL_FEAT],
         smoke_model.encode(x, training=False)[common.AVEPOOL_FEAT])
  _close(encoder(x)[common.AVEPOOL_FEAT], inference[common.AVEPOOL_FEAT])
  moving_means = [v for v in encoder.variables if "moving_mean" in v.name]
  before = [v.numpy() for v in moving_means]
  batch_stats = encoder(x, training=True)
  # Batch norm switches to batch statistics and updates its moving ones.
  assert np.abs(batch_stats[common.AVEPOOL_FEAT] -
                inference[common.AVEPOOL_FEAT]).max() > 1e-3
  assert any(np.abs(v.numpy() - b).max() > 0
             for v, b in zip(moving_means, before))

  generator = hub.load(exported["generator"])
  assert list(generator.regularization_losses) == []
  assert len(generator.variables) == len(smoke_model.generator.variables)
  z = _latents()
  images = generator(z, training=False)
  _close(images, smoke_model.generate(z, training=False))
  assert np.abs(generator(z, training=True) - images).max() > 1e-3


# ---------------------------------------------------------------------------
# Downstream Keras use.
# ---------------------------------------------------------------------------


def test_keras3_tfsmlayer_linear_classifier_trains(exported):
  features = keras.layers.TFSMLayer(exported["bigbigan"],
                                    call_endpoint="encode", trainable=False)
  inputs = keras.Input((SMOKE_RESOLUTION, SMOKE_RESOLUTION, 3))
  logits = keras.layers.Dense(3)(features(inputs)[common.AVEPOOL_FEAT])
  classifier = keras.Model(inputs, logits)
  classifier.compile(
      optimizer=keras.optimizers.Adam(1e-2),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = _images(batch=16)
  y = np.arange(16) % 3
  initial_loss = classifier.evaluate(x, y, verbose=0)
  encoder_before = [w.numpy() for w in features.weights]
  classifier.fit(x, y, epochs=20, batch_size=16, verbose=0)
  assert classifier.evaluate(x, y, verbose=0) < initial_loss
  assert features.weights and not features.trainable_weights
  for weight, before in zip(features.weights, encoder_before):
    np.testing.assert_array_equal(weight.numpy(), before)


def test_tf_keras_hub_keraslayer_fine_tunes_encoder(exported):
  import tf_keras  # pylint: disable=g-import-not-at-top

  encoder_layer = hub.KerasLayer(exported["encoder"], trainable=True,
                                 output_key=common.AVEPOOL_FEAT)
  classifier = tf_keras.Sequential([
      tf_keras.Input((SMOKE_RESOLUTION, SMOKE_RESOLUTION, 3)),
      encoder_layer,
      tf_keras.layers.Dense(3),
  ])
  classifier.compile(
      optimizer=tf_keras.optimizers.SGD(0.1),
      loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  x = _images(batch=8)
  y = np.arange(8) % 3
  assert len(encoder_layer.trainable_weights) > 10
  inference = encoder_layer(x, training=False).numpy()
  training = encoder_layer(x, training=True).numpy()
  assert np.abs(training - inference).max() > 1e-3  # BN on batch statistics.
  kernel = encoder_layer.trainable_weights[0]
  before = kernel.numpy()
  classifier.train_on_batch(x, y)
  assert np.abs(kernel.numpy() - before).max() > 0
  # Keras 3 still works in the same process.
  assert keras.layers.Dense(2)(np.ones((1, 3), np.float32)).shape == (1, 2)


@pytest.mark.slow
def test_revnet_with_reversible_backprop_fine_tunes_from_its_export(tmp_path):
  """A reduced-width RevNet E with `reversible_backprop` (a custom gradient
  that recomputes activations) exported and loaded under
  hub.KerasLayer(trainable=True): one training step's gradients equal the
  live encoder's, so the saved custom gradient works after reloading."""
  import tf_keras  # pylint: disable=g-import-not-at-top

  model = export.model_to_export(gin_files=[SMOKE_GIN], gin_bindings=[
      "encoder.architecture = 'revnet'", "encoder.base_channels = 8",
      "encoder.units_per_stage = (1, 1)", "encoder.stem = 'small'",
      "encoder.reversible_backprop = True"])
  paths = export.export_modules(model, str(tmp_path / "revnet"))
  saved = (pathlib.Path(paths["encoder"]) / "saved_model.pb").read_bytes()
  assert b"CustomGradient" in saved  # Absent without reversible_backprop.
  x = _images(batch=4)
  rng = np.random.default_rng(0)
  outputs = model.encoder(x, training=False)
  # Fixed projections of the features and the latent's mean and deviation:
  # every variable of E gets a gradient.
  projections = {key: tf.constant(rng.normal(
      size=[1, outputs[key].shape[1]]).astype(np.float32))
                 for key in (common.AVEPOOL_FEAT, common.Z_MEAN,
                             common.Z_STDEV)}

  def loss_of(encoded):
    return sum(tf.reduce_sum(encoded[key] * w)
               for key, w in projections.items())

  with tf.GradientTape() as tape:
    loss = loss_of(model.encoder(x, training=True))
  live = dict(zip([v.path for v in model.encoder.trainable_variables],
                  tape.gradient(loss, model.encoder.trainable_variables)))

  layer = hub.KerasLayer(paths["encoder"], trainable=True)  # All outputs.
  inputs = tf_keras.Input((SMOKE_RESOLUTION, SMOKE_RESOLUTION, 3))
  tf_keras.Model(inputs, layer(inputs))  # Builds the layer.
  with tf.GradientTape() as tape:
    hub_loss = loss_of(layer(x, training=True))
  np.testing.assert_allclose(hub_loss, loss, rtol=1e-5)
  variables = layer.trainable_weights
  gradients = tape.gradient(hub_loss, variables)
  assert len(variables) == len(live) > 10
  for variable, gradient in zip(variables, gradients):
    name = variable.name.rsplit(":", 1)[0]
    assert gradient is not None, name
    np.testing.assert_allclose(gradient, live[name], rtol=1e-4, atol=1e-5,
                               err_msg=name)


# ---------------------------------------------------------------------------
# Writing: refusal, overwrite, atomicity.
# ---------------------------------------------------------------------------


@pytest.fixture
def fake_saving(monkeypatch):
  """Builders and tf.saved_model.save replaced: writes marker files only.

  Returns the paths passed to save, in order.
  """
  written = []
  for builder in ("bigbigan_module", "encoder_module", "generator_module"):
    monkeypatch.setattr(
        export, builder,
        lambda bigbigan, functions: (None, {"serving_default": None}))

  def save(obj, path, signatures=None, options=None):
    del obj, signatures, options
    os.makedirs(path)
    pathlib.Path(path, "saved_model.pb").write_text("fake")
    written.append(path)

  monkeypatch.setattr(tf.saved_model, "save", save)
  return written


def test_refuses_existing_directory_and_overwrites_atomically(
    smoke_model, tmp_path, monkeypatch, fake_saving):
  destination = tmp_path / "export"
  paths = export.export_modules(smoke_model, str(destination))
  assert paths == {part: str(destination / part)
                   for part in ("bigbigan", "generator", "encoder")}
  assert len(fake_saving) == 3
  assert not any(p.startswith(str(destination)) for p in fake_saving)  # Staged.
  (destination / "old_file").write_text("old")

  with pytest.raises(FileExistsError, match="already exists.*overwrite"):
    export.export_modules(smoke_model, str(destination))
  with pytest.raises(FileExistsError, match="already exists"):
    export.check_destination(str(destination), overwrite=False)
  assert len(fake_saving) == 3  # Refused before any work.

  save = tf.saved_model.save
  def failing_save(obj, path, signatures=None, options=None):
    save(obj, path, signatures, options)
    raise RuntimeError("disk full")
  monkeypatch.setattr(tf.saved_model, "save", failing_save)
  with pytest.raises(RuntimeError, match="disk full"):
    export.export_modules(smoke_model, str(destination), overwrite=True)
  assert (destination / "old_file").exists()  # Untouched by the failure.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # No temp.

  monkeypatch.setattr(tf.saved_model, "save", save)
  export.export_modules(smoke_model, str(destination), overwrite=True)
  assert not (destination / "old_file").exists()
  assert sorted(p.name for p in destination.iterdir()) == [
      "bigbigan", "encoder", "generator"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]

  a_file = tmp_path / "a_file"
  a_file.write_text("")
  with pytest.raises(FileExistsError, match="not a directory"):
    export.export_modules(smoke_model, str(a_file), overwrite=True)


def test_standard_gan_has_no_encoder_parts(smoke_model, tmp_path,
                                           fake_saving):
  standard_gan = copy.copy(smoke_model)
  standard_gan.encoder = None
  functions = export.bigbigan_functions(standard_gan)
  assert set(functions) == {"generate", "discriminate"}
  assert export.serving_signature(functions) == "generate"
  paths = export.export_modules(standard_gan, str(tmp_path / "export"))
  assert set(paths) == {"bigbigan", "generator"}
  assert len(fake_saving) == 2


def test_model_to_export_arguments(monkeypatch):
  with pytest.raises(ValueError, match="model_dir.*or at least one gin"):
    export.model_to_export()
  with pytest.raises(ValueError, match="not both"):
    export.model_to_export("/run", gin_files=[SMOKE_GIN])
  with pytest.raises(ValueError, match="needs model_dir"):
    export.model_to_export(checkpoint="/run/ckpt-1", gin_files=[SMOKE_GIN])
  calls = []
  monkeypatch.setattr(
      restore, "restore_inference_model",
      lambda model_dir, checkpoint: calls.append((model_dir, checkpoint)))
  export.model_to_export("/run", "/run/ckpt-7")
  export.model_to_export("/run")
  assert calls == [("/run", "/run/ckpt-7"), ("/run", None)]


# ---------------------------------------------------------------------------
# The tools.
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_tools_export_then_train_a_linear_classifier(tmp_path):
  destination = tmp_path / "export"
  result = _run("export_hub.py", f"--gin_file={SMOKE_GIN}",
                f"--export_dir={destination}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"encoder: {destination / 'encoder'}" in result.stdout
  assert sorted(p.name for p in destination.iterdir()) == [
      "bigbigan", "encoder", "generator"]

  refused = _run("export_hub.py", f"--gin_file={SMOKE_GIN}",
                 f"--export_dir={destination}")
  assert refused.returncode != 0
  assert "already exists" in refused.stderr

  result = _run("linear_classifier_example.py",
                f"--encoder={destination / 'encoder'}",
                f"--data_dir={tmp_path / 'tfds'}", "--max_train_examples=1000",
                "--max_test_examples=300", "--epochs=10")
  assert result.returncode == 0, result.stderr[-3000:]
  accuracy = float(result.stdout.split("test accuracy:")[1].split()[0])
  print(result.stdout)
  assert accuracy > 0.3  # Chance is 0.1; random conv features do better.
