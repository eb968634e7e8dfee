"""Exports a BigBiGAN as TF2 SavedModels for TF-Hub, Keras 3 and tf_keras users.

`export_modules(model, export_dir)` writes three SavedModels:

  <export_dir>/bigbigan    every signature below (inference only)
  <export_dir>/encoder     E as a TF-Hub Reusable SavedModel
  <export_dir>/generator   G as a TF-Hub Reusable SavedModel

(no encoder/ and no encode/default/reconstruct signatures for a model
without E, the StandardGAN ablation). Everything is written into a temporary directory next
to `export_dir` and renamed into place at the end, so a failed export leaves
no partial directory behind; an existing `export_dir` is refused unless
`overwrite=True`. The destination must be on a file system that renames
directories (a local disk, not GCS).

Signatures of bigbigan/ (the released modules' names, docs/design.md section 7;
shown for the ResNet-50 config, gin/paper_resnet50.gin; every input is float32
with a free batch dimension N, images are NHWC in [-1, 1]):

  generate(z [N, 120])
      default   [N, 128, 128, 3]  G(z), in [-1, 1]
      upsampled [N, 256, 256, 3]  G(z) upsampled 2x (nearest neighbour, so
                                  2x2 average pooling gives `default` back)
  encode(x [N, 256, 256, 3])
      z_mean, z_stdev, z_sample [N, 120]; default = z_sample (a draw from
      E's latent distribution, the output the released module's examples
      use; which tensor its `default` was is unverified); avepool_feat
      [N, 2048]; bn_crelu_feat [N, 4096]
  default(x [N, 256, 256, 3])
      default [N, 120]  encode's `default` output, alone (the released
                        module's signature of this name)
  discriminate(x [N, 128, 128, 3], z [N, 120])
      score_x, score_z, score_xz [N]: only the scores the discriminator has.
      A D built without a head (Table 1's unary ablations, StandardGAN) has no
      such output rather than a made-up zero, so `outputs["score_xz"]` fails
      with a KeyError naming the key. z is ignored when D scores x only.
  reconstruct(x [N, 256, 256, 3])
      default [N, 128, 128, 3]  G(z_mean), E's mean latent
      z_mean  [N, 120]          the latent used
  serving_default = default (the encoder, as in the released module, whose
      unnamed signature is `default`; TF Serving and saved_model_cli look
      for the name serving_default). A model without E has neither `default`
      nor `encode`; its serving_default is `generate`.

`reconstruct` and `serving_default` are this library's additions; the other
four are the released module's signatures with its input and output names.

Sizes follow the config: generate's z is G's z_dim, encode's x is E's
resolution, discriminate's x is G's (= D's) resolution, `upsampled` is twice
that. The same functions are also attributes of the loaded object
(`hub.load(path).encode(x)`), which is how `keras.layers.TFSMLayer(path,
call_endpoint="encode")` calls them. All of them run the networks with
training=False: batch norm uses its moving (standing) statistics and spectral
norm does not update its power-iteration vector.

encoder/ and generator/ follow TF-Hub's Reusable SavedModel contract:
`obj(inputs, training=False)` (traced for training False and True), and the
attributes `variables`, `trainable_variables` and `regularization_losses` (an
empty list: BigBiGAN has no weight regularizer). encoder's call returns the
dict of `encode` (pick one with `hub.KerasLayer(path, output_key=...)`);
generator's call returns G(z), the images. training=True switches batch norm
to batch statistics (and updates its moving statistics) and makes spectral
norm run its power iteration, as in training. Each also has a
`serving_default` signature equal to `encode` or `generate` respectively.

Wrong inputs fail at the signature's boundary, naming the expected spec:
  * a wrong shape, through a signature: InvalidArgumentError "Shape of tensor
    x [4,16,16,3] is not compatible with expected shape [?,32,32,3]." (an
    in-graph check; without it TF would feed the tensor to the convolutions);
  * a wrong shape or dtype, through an attribute or a Reusable SavedModel's
    call: TypeError / ValueError from tf.function naming the expected
    TensorSpec;
  * a float64 tensor, through a signature: TF's InvalidArgumentError "...
    expected to be a float tensor but is a double tensor". NumPy arrays of
    any float type are converted to float32 by signatures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Callable, Optional, Sequence

from absl import logging
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import model as model_lib
from bigbigan_tf import restore
from bigbigan_tf.networks import common

# Sub-directories of an export.
BIGBIGAN = "bigbigan"
ENCODER = "encoder"
GENERATOR = "generator"

# Signature names.
GENERATE = "generate"
ENCODE = "encode"
DISCRIMINATE = "discriminate"
RECONSTRUCT = "reconstruct"
# The released module's `default` signature: x -> encode's `default` output.
DEFAULT_SIGNATURE = "default"
SERVING_DEFAULT = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY

# Signature input names.
IMAGES = "x"
LATENTS = "z"
# Input name of the Reusable SavedModels' call (TF-Hub's convention).
CALL_INPUTS = "inputs"

# Output keys beyond the networks' own (common.Z_MEAN, common.SCORE_X, ...).
DEFAULT = "default"
UPSAMPLED = "upsampled"

ENCODE_KEYS = (common.Z_MEAN, common.Z_STDEV, common.Z_SAMPLE, DEFAULT,
               common.AVEPOOL_FEAT, common.BN_CRELU_FEAT)
GENERATE_KEYS = (DEFAULT, UPSAMPLED)
RECONSTRUCT_KEYS = (DEFAULT, common.Z_MEAN)

UPSAMPLE_FACTOR = 2


def image_spec(resolution: int, name: str = IMAGES) -> tf.TensorSpec:
  """float32 [None, resolution, resolution, 3]."""
  return tf.TensorSpec([None, resolution, resolution, 3], tf.float32, name)


def latent_spec(z_dim: int, name: str = LATENTS) -> tf.TensorSpec:
  """float32 [None, z_dim]."""
  return tf.TensorSpec([None, z_dim], tf.float32, name)


def _checked(tensor: tf.Tensor, spec: tf.TensorSpec) -> tf.Tensor:
  """Checks the run-time shape of a function input against its spec.

  Signature functions feed whatever shape they receive into the graph (the
  spec's static shape is only an annotation), where the first convolution
  would fail deep in a kernel or, for a wrong rank, abort the process.
  """
  return tf.ensure_shape(tensor, spec.shape)


def upsample(images: tf.Tensor, factor: int = UPSAMPLE_FACTOR) -> tf.Tensor:
  """Nearest-neighbour upsampling of NHWC images by an integer factor."""
  return common.upsample(images, factor)


def _tf_variables(variables) -> list[tf.Variable]:
  """The tf.Variables behind Keras variables, without duplicates, in order.

  A SavedModel must track every variable its functions capture; the Keras 3
  variable wraps the tf.Variable that the traced graphs read and assign.
  """
  seen, result = set(), []
  for variable in variables:
    tf_variable = getattr(variable, "value", variable)
    if id(tf_variable) not in seen:
      seen.add(id(tf_variable))
      result.append(tf_variable)
  return result


def _saved_object() -> tf.__internal__.tracking.AutoTrackable:
  # Unlike tf.Module, whose `variables` is a read-only property, an
  # AutoTrackable saves plain attributes such as `variables` as they are.
  return tf.__internal__.tracking.AutoTrackable()


def _encode_outputs(bigbigan: model_lib.BigBiGAN, x: tf.Tensor,
                    training: bool) -> dict[str, tf.Tensor]:
  outputs = dict(bigbigan.encode(x, training=training))
  outputs[DEFAULT] = outputs[common.Z_SAMPLE]
  return {key: outputs[key] for key in ENCODE_KEYS}


def bigbigan_functions(bigbigan: model_lib.BigBiGAN) -> dict[str, Callable]:
  """The inference tf.functions of bigbigan/, by signature name.

  Each has a fixed input signature; `serving_default` is `default` (or
  `generate` for a model without E, `serving_signature`). Tracing
  them (`get_concrete_function()`) shows the exported interface without
  writing anything.
  """
  z_spec = latent_spec(bigbigan.z_dim)
  x_spec = image_spec(bigbigan.resolution)
  encoder_x_spec = image_spec(bigbigan.encoder_resolution)

  @tf.function(input_signature=[z_spec], autograph=False)
  def generate(z):
    images = bigbigan.generate(_checked(z, z_spec), training=False)
    return {DEFAULT: images, UPSAMPLED: upsample(images)}

  @tf.function(input_signature=[x_spec, z_spec], autograph=False)
  def discriminate(x, z):
    outputs = bigbigan.discriminate(_checked(x, x_spec), _checked(z, z_spec),
                                    training=False)
    return {key: outputs[key] for key in common.SCORE_KEYS if key in outputs}

  functions = {GENERATE: generate, DISCRIMINATE: discriminate}
  if bigbigan.encoder is None:
    return functions

  @tf.function(input_signature=[encoder_x_spec], autograph=False)
  def encode(x):
    return _encode_outputs(bigbigan, _checked(x, encoder_x_spec),
                           training=False)

  @tf.function(input_signature=[encoder_x_spec], autograph=False)
  def default(x):
    outputs = _encode_outputs(bigbigan, _checked(x, encoder_x_spec),
                              training=False)
    return {DEFAULT: outputs[DEFAULT]}

  @tf.function(input_signature=[encoder_x_spec], autograph=False)
  def reconstruct(x):
    z_mean = bigbigan.encode(_checked(x, encoder_x_spec),
                             training=False)[common.Z_MEAN]
    return {DEFAULT: bigbigan.generate(z_mean, training=False),
            common.Z_MEAN: z_mean}

  functions.update({ENCODE: encode, DEFAULT_SIGNATURE: default,
                    RECONSTRUCT: reconstruct})
  return functions


def serving_signature(functions: dict[str, Callable]) -> str:
  """The signature bigbigan/'s serving_default repeats: the encoder's
  `default`, or `generate` when the model has no E."""
  return DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in functions else GENERATE


def _signatures(functions: dict[str, Callable],
                serving: str) -> dict[str, Callable]:
  signatures = {name: function.get_concrete_function()
                for name, function in functions.items()}
  signatures[SERVING_DEFAULT] = signatures[serving]
  return signatures


def bigbigan_module(bigbigan: model_lib.BigBiGAN,
                    functions: Optional[dict[str, Callable]] = None):
  """The bigbigan/ SavedModel: (object to save, its signatures).

  `functions`: `bigbigan_functions(bigbigan)`, if already made (the three
  modules share them, so each is traced once).
  """
  saved = _saved_object()
  functions = functions or bigbigan_functions(bigbigan)
  for name, function in functions.items():
    setattr(saved, name, function)
  networks = list(bigbigan.networks().values())
  saved.variables = _tf_variables(
      v for network in networks for v in network.variables)
  saved.trainable_variables = _tf_variables(
      v for network in networks for v in network.trainable_variables)
  return saved, _signatures(functions, serving_signature(functions))


def _reusable_module(network, call: Callable, spec: tf.TensorSpec,
                     serving: Callable):
  """A Reusable SavedModel object around `call(inputs, training)`."""
  saved = _saved_object()
  saved.__call__ = tf.function(call, autograph=False)
  call_spec = tf.TensorSpec(spec.shape, spec.dtype, CALL_INPUTS)
  for training in (False, True):
    saved.__call__.get_concrete_function(call_spec, training=training)
  saved.variables = _tf_variables(network.variables)
  saved.trainable_variables = _tf_variables(network.trainable_variables)
  saved.regularization_losses = []
  return saved, {SERVING_DEFAULT: serving.get_concrete_function()}


def encoder_module(bigbigan: model_lib.BigBiGAN,
                   functions: Optional[dict[str, Callable]] = None):
  """The encoder/ Reusable SavedModel: (object to save, its signatures)."""
  spec = image_spec(bigbigan.encoder_resolution)

  def call(inputs, training=False):
    return _encode_outputs(bigbigan, _checked(inputs, spec),
                           training=bool(training))

  return _reusable_module(bigbigan.encoder, call, spec,
                          (functions or bigbigan_functions(bigbigan))[ENCODE])


def generator_module(bigbigan: model_lib.BigBiGAN,
                     functions: Optional[dict[str, Callable]] = None):
  """The generator/ Reusable SavedModel: (object to save, its signatures)."""
  spec = latent_spec(bigbigan.z_dim)

  def call(inputs, training=False):
    return bigbigan.generate(_checked(inputs, spec), training=bool(training))

  return _reusable_module(bigbigan.generator, call, spec,
                          (functions or bigbigan_functions(bigbigan))[GENERATE])


def export_modules(bigbigan: model_lib.BigBiGAN, export_dir: str,
                   overwrite: bool = False) -> dict[str, str]:
  """Writes bigbigan/, encoder/ and generator/ SavedModels under export_dir.

  Export the inference weights: after training, the EMA weights with standing
  BN statistics (`restore.restore_inference_model`).

  Args:
    bigbigan: the model to export.
    export_dir: destination directory; must not exist unless `overwrite`.
    overwrite: replace an existing export_dir (only once the new export is
      complete).

  Returns:
    The paths written, keyed by BIGBIGAN, ENCODER (when the model has one)
    and GENERATOR.

  Raises:
    FileExistsError: export_dir exists and overwrite is False, or it is not
      a directory.
  """
  export_dir = os.path.abspath(os.fspath(export_dir))
  check_destination(export_dir, overwrite)
  parent, name = os.path.split(export_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
  try:
    builders = {BIGBIGAN: bigbigan_module, GENERATOR: generator_module}
    if bigbigan.encoder is not None:
      builders[ENCODER] = encoder_module
    options = tf.saved_model.SaveOptions()
    with _traced_as_when_saving(options):
      functions = bigbigan_functions(bigbigan)
      modules = {part: build(bigbigan, functions)
                 for part, build in builders.items()}
    for part, (saved, signatures) in modules.items():
      logging.info("Writing the %s SavedModel (signatures %s).", part,
                   sorted(signatures))
      tf.saved_model.save(saved, os.path.join(staging, part),
                          signatures=signatures, options=options)
    _move_into_place(staging, export_dir, overwrite)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  logging.info("Exported to %s.", export_dir)
  return {part: os.path.join(export_dir, part) for part in builders}


@contextlib.contextmanager
def _traced_as_when_saving(options: tf.saved_model.SaveOptions):
  """Traces functions under the context tf.saved_model.save runs in.

  The save lists every tf.function's concrete functions inside its save
  context, and tf.function keys its trace cache on that context (its
  variable policy): functions traced outside it are traced a second time
  while saving, about a third of an export's time. Traced here, the save
  reuses them. The context is TensorFlow's own (not public API); where it
  is missing, the export only takes longer.
  """
  try:
    from tensorflow.python.saved_model import save_context  # pylint: disable=g-import-not-at-top
  except ImportError:  # pragma: no cover
    yield
    return
  with save_context.save_context(options):
    yield


def check_destination(export_dir: str, overwrite: bool) -> None:
  """Raises FileExistsError unless export_dir may be written.

  Call it before the (slow) model restore; `export_modules` checks again.
  """
  export_dir = os.path.abspath(os.fspath(export_dir))
  if not os.path.lexists(export_dir):
    return
  if not os.path.isdir(export_dir) or os.path.islink(export_dir):
    raise FileExistsError(
        f"Export destination {export_dir} exists and is not a directory; "
        f"remove it or choose another export_dir.")
  if not overwrite:
    raise FileExistsError(
        f"Export directory {export_dir} already exists; pass overwrite=True "
        f"(--overwrite) to replace it.")


def _move_into_place(staging: str, export_dir: str, overwrite: bool) -> None:
  """Renames staging to export_dir, replacing it only when asked to."""
  check_destination(export_dir, overwrite)  # It may have appeared meanwhile.
  if not os.path.lexists(export_dir):
    os.rename(staging, export_dir)
    return
  parent, name = os.path.split(export_dir)
  retired = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
  retired_export = os.path.join(retired, name)
  os.rename(export_dir, retired_export)
  try:
    os.rename(staging, export_dir)
  except BaseException:
    os.rename(retired_export, export_dir)
    shutil.rmtree(retired, ignore_errors=True)
    raise
  shutil.rmtree(retired, ignore_errors=True)


def model_to_export(model_dir: Optional[str] = None,
                    checkpoint: Optional[str] = None,
                    gin_files: Sequence[str] = (),
                    gin_bindings: Sequence[str] = ()) -> model_lib.BigBiGAN:
  """The model an export starts from: a trained run's, or fresh weights.

  Args:
    model_dir: a training directory: its config, the latest (or `checkpoint`)
      checkpoint, EMA weights and standing BN statistics
      (`restore.restore_inference_model`).
    checkpoint: a checkpoint path inside model_dir's run; needs model_dir.
    gin_files: without model_dir, the config of a freshly initialised model
      (for inspecting the interface and for tests).
    gin_bindings: extra bindings for gin_files.

  Raises:
    ValueError: on an invalid combination of arguments, or a bad config.
  """
  if model_dir:
    if gin_files or gin_bindings:
      raise ValueError(
          "Give either model_dir (its own config is used) or gin files and "
          f"bindings for fresh weights, not both; got model_dir={model_dir!r}, "
          f"gin_files={list(gin_files)}, gin_bindings={list(gin_bindings)}.")
    return restore.restore_inference_model(model_dir, checkpoint)
  if checkpoint:
    raise ValueError(f"checkpoint={checkpoint!r} needs model_dir, the "
                     "training directory it belongs to.")
  if not gin_files:
    raise ValueError("Give model_dir (a trained run) or at least one gin file "
                     "(fresh weights of that config).")
  config.parse(gin_files, gin_bindings)
  return config.build_model()


class ExportedBigBiGAN:
  """A BigBiGAN SavedModel exported here (or one with the released modules'
  signatures), with the interface evaluation.evaluator.evaluate_model uses
  (the same methods as model.BigBiGAN, inference only).

  Raises:
    ValueError: the module lacks the encode/generate/reconstruct signatures
      or their expected outputs.
  """

  REQUIRED = {"encode": (common.Z_MEAN, common.AVEPOOL_FEAT),
              "generate": ("default",),
              "reconstruct": ("default",)}

  def __init__(self, handle: str):
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    self.module = hub.load(handle)
    signatures = self.module.signatures
    for name, keys in self.REQUIRED.items():
      if name not in signatures:
        raise ValueError(f"{handle}: expected signatures {sorted(self.REQUIRED)}"
                         f", found {sorted(signatures.keys())}.")
      found = sorted(signatures[name].structured_outputs)
      missing = [k for k in keys if k not in found]
      if missing:
        raise ValueError(f"{handle}: signature {name!r} lacks outputs "
                         f"{missing}; expected {list(keys)}, found {found}.")
    self._encode = signatures["encode"]
    self._reconstruct = signatures["reconstruct"]
    self._generate = signatures["generate"]
    (self._x_name, x_spec), = self._encode.structured_input_signature[1].items()
    (self._z_name, z_spec), = self._generate.structured_input_signature[1].items()
    self.encoder_resolution = int(x_spec.shape[1])
    self.z_dim = int(z_spec.shape[1])
    self.resolution = int(self._generate.structured_outputs["default"].shape[1])
    self._discriminate = signatures.get("discriminate")

  @property
  def has_joint_score(self) -> bool:
    """Whether the module has D's joint score s_xz."""
    return (self._discriminate is not None and
            common.SCORE_XZ in self._discriminate.structured_outputs)

  def discriminate(self, x, z, training=None):
    del training
    if self._discriminate is None:
      raise ValueError("This module has no 'discriminate' signature.")
    # The image input is the rank-4 one, the latent the rank-2 one.
    inputs = {name: (x if spec.shape.rank == 4 else z) for name, spec in
              self._discriminate.structured_input_signature[1].items()}
    return self._discriminate(**{name: tf.convert_to_tensor(value)
                                 for name, value in inputs.items()})

  def encoder(self, x, training=None):
    del training  # The module is inference-only.
    return self._encode(**{self._x_name: tf.convert_to_tensor(x)})

  def reconstruct(self, x, training=None):
    del training
    return self._reconstruct(**{self._x_name: tf.convert_to_tensor(x)})["default"]

  def generate(self, z, training=None):
    del training
    return self._generate(**{self._z_name: tf.convert_to_tensor(z)})["default"]

  def pool_for_discriminator(self, x):
    return common.pool_to_resolution(x, self.resolution)
