"""Evaluation of a trained encoder and generator (DESIGN.md section 5).

`evaluate_model(model, ...)` measures a BigBiGAN (its encoder and generator
as given, e.g. EMA weights with standing statistics):
  * linear probe on frozen E features (AvePool and BN+CReLU), top-1/top-5;
  * kNN top-1 on AvePool features;
  * reconstruction score: how often a classifier gives x and G(E(x)) the same
    class (the classifier: a linear probe on raw pixels of the training split,
    or any callable the caller passes);
  * the same linear probe on a randomly initialised encoder of the same
    architecture (the baseline a learned encoder must beat).
`evaluate_model_dir(model_dir)` restores the EMA model of a training run,
evaluates it and writes eval.json and TensorBoard summaries into model_dir.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

import gin
import numpy as np
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import model as model_lib
from bigbigan_tf.evaluation import feature_extractors
from bigbigan_tf.evaluation import linear_probe as probe_lib
from bigbigan_tf.evaluation import metrics
from bigbigan_tf.networks import common

RESULTS_FILE = "eval.json"


class ExportedBigBiGAN:
  """A BigBiGAN SavedModel exported by bigbigan_tf.export (or one with the
  released modules' signatures), with the interface evaluate_model uses.

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
    factor = self.encoder_resolution // self.resolution
    return x if factor == 1 else tf.nn.avg_pool2d(x, factor, factor, "VALID")


def _map_batches(fn: Callable, images: np.ndarray,
                 batch_size: int) -> np.ndarray:
  """Runs the tf.function of `fn` over `images` in batches; concatenates."""
  call = tf.function(fn)
  return np.concatenate([call(images[i:i + batch_size]).numpy()
                         for i in range(0, len(images), batch_size)])


def encoder_features(encoder, images: np.ndarray,
                     batch_size: int = 250) -> np.ndarray:
  """E's AvePool features of `images` (inference mode)."""
  return _map_batches(
      lambda x: encoder(x, training=False)[common.AVEPOOL_FEAT], images,
      batch_size)


def reconstructions(model: model_lib.BigBiGAN, images: np.ndarray,
                    batch_size: int = 250) -> np.ndarray:
  """G(E(x)) of `images` (inference mode)."""
  return _map_batches(lambda x: model.reconstruct(x, training=False), images,
                      batch_size)


def _probe_features(encoder, train_x, train_y, test_x, test_y,
                    num_steps: int, prefix: str) -> dict:
  train_f = encoder_features(encoder, train_x)
  test_f = encoder_features(encoder, test_x)
  results = {}
  for feature_type in ("avepool", "bn_crelu"):
    result = probe_lib.linear_probe(train_f, train_y, test_f, test_y,
                                    feature_type=feature_type,
                                    num_steps=num_steps)
    results[f"{prefix}linear_probe_{feature_type}_top1"] = result.top1
    results[f"{prefix}linear_probe_{feature_type}_top5"] = result.top5
  return results, train_f, test_f


@gin.configurable("evaluation", denylist=["model"])
def evaluate_model(model: model_lib.BigBiGAN,
                   dataset: str = "mnist5k",
                   train_split: str = "train",
                   test_split: str = "test",
                   probe_steps: int = 3000,
                   knn_k: int = 5,
                   random_encoder_baseline: bool = True,
                   pixel_classifier: Optional[Callable] = None,
                   data_dir: Optional[str] = None,
                   sample_feature_extractor: Optional[Callable] = None,
                   num_samples: int = 50_000,
                   seed: int = 0) -> dict[str, float]:
  """Measures `model` on a labelled dataset (labels used only here).

  Args:
    model: the BigBiGAN to measure (with an encoder).
    dataset: dataset name for data.load_arrays.
    train_split, test_split: probe training and held-out splits.
    probe_steps: linear-probe steps (zero-initialised, lr 0.01, EMA).
    knn_k: neighbours for the kNN accuracy (cosine).
    random_encoder_baseline: also probe a freshly initialised encoder.
    pixel_classifier: maps images [N, h, w, 3] in [-1, 1] (D's resolution)
      to logits; default a linear probe on the training split's pixels.
    data_dir: tfds data_dir (default: make_dataset's, as bound in gin).
    sample_feature_extractor: a feature_extractors.ClassifierFeatureExtractor
      (e.g. `@inception_extractor()` for FID/IS/KID as in the paper, or
      `@classifier_extractor()` on any classifier SavedModel for a
      "domain FID"); None skips the sample-quality metrics.
    num_samples: generated samples for FID/IS/KID (50K in the paper).
    seed: seed of the prior samples.

  Returns:
    A flat dict of figures.
  """
  if data_dir is None:  # Read the data where training read it.
    data_dir = config.bound_value("make_dataset.data_dir")
  if model.encoder is None:  # StandardGAN: only sample quality applies.
    if sample_feature_extractor is None:
      return {}
    real_x, _ = data.load_arrays(dataset, test_split, model.resolution,
                                 data_dir=data_dir)
    return sample_quality(model, sample_feature_extractor, real_x,
                          num_samples, seed)
  resolution = model.encoder_resolution
  train_x, train_y = data.load_arrays(dataset, train_split, resolution,
                                      data_dir=data_dir)
  test_x, test_y = data.load_arrays(dataset, test_split, resolution,
                                    data_dir=data_dir)
  results, train_f, test_f = _probe_features(
      model.encoder, train_x, train_y, test_x, test_y, probe_steps, "")
  results[f"knn{knn_k}_top1"] = probe_lib.knn_accuracy(
      train_f, train_y, test_f, test_y, k=knn_k, metric="cosine")
  if random_encoder_baseline and hasattr(model.encoder,
                                         "constructor_arguments"):
    fresh = common.clone(model.encoder)
    baseline, _, _ = _probe_features(fresh, train_x, train_y, test_x, test_y,
                                     probe_steps, "random_encoder_")
    results.update(baseline)

  pool = lambda x: model.pool_for_discriminator(tf.constant(x)).numpy()
  if pixel_classifier is None:
    flat = lambda x: pool(x).reshape(len(x), -1)
    pixel_probe = probe_lib.linear_probe(flat(train_x), train_y, flat(test_x),
                                         test_y, num_steps=probe_steps)
    results["pixel_linear_probe_top1"] = pixel_probe.top1
    pixel_classifier = lambda x: flat(x) @ pixel_probe.weights + pixel_probe.bias
  recon = reconstructions(model, test_x)
  x_class = np.argmax(pixel_classifier(test_x), axis=-1)
  recon_class = np.argmax(pixel_classifier(recon), axis=-1)
  results["reconstruction_same_class"] = float(np.mean(x_class == recon_class))
  results["reconstruction_keeps_label"] = float(np.mean(recon_class == test_y))
  if sample_feature_extractor is not None:
    results.update(sample_quality(model, sample_feature_extractor,
                                  pool(test_x), num_samples, seed))
  return {k: float(v) for k, v in results.items()}


def sample_quality(model, extractor: Callable, real_images: np.ndarray,
                   num_samples: int, seed: int = 0,
                   batch_size: int = 250) -> dict[str, float]:
  """FID and KID of G's samples against `real_images`, and IS of samples.

  Raises:
    ValueError: fewer samples (or real images) than feature dimensions.
  """
  real_features, _ = extractor(real_images)
  fake_features, fake_logits = [], []
  for start in range(0, num_samples, batch_size):
    n = min(batch_size, num_samples - start)
    z = model.prior.sample(n, seed=tf.constant([seed, start], tf.int64)) if (
        hasattr(model, "prior")) else tf.random.stateless_normal(
            [n, model.z_dim], [seed, start])
    features, logits = extractor(model.generate(z, training=False).numpy())
    fake_features.append(features)
    if logits is not None:
      fake_logits.append(logits)
  fake_features = np.concatenate(fake_features)
  results = {
      "fid": metrics.fid_from_activations(fake_features, real_features),
      "kid": metrics.kernel_inception_distance(fake_features,
                                               real_features)[0]}
  if fake_logits:
    results["inception_score"] = metrics.inception_score(
        np.concatenate(fake_logits))[0]
  return results


def evaluate_model_dir(model_dir: str,
                       checkpoint: Optional[str] = None,
                       gin_files=(), gin_bindings=()) -> dict[str, float]:
  """Evaluates the EMA model of a training run; writes eval.json there.

  The run's config.gin is parsed first, then `gin_files` and `gin_bindings`
  (evaluation settings such as the feature extractor).

  Raises:
    ValueError: model_dir has no config or no checkpoint.
  """
  from bigbigan_tf import training  # pylint: disable=g-import-not-at-top
  model = training.restore_inference_model(model_dir, checkpoint)
  if gin_files or gin_bindings:
    config.parse(gin_files, gin_bindings, clear=False)
  results = evaluate_model(model)
  with tf.io.gfile.GFile(os.path.join(model_dir, RESULTS_FILE), "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  checkpoint = checkpoint or tf.train.latest_checkpoint(
      os.path.join(model_dir, training.CHECKPOINT_DIR))
  step = int(checkpoint.rsplit("-", 1)[-1])
  writer = tf.summary.create_file_writer(os.path.join(model_dir, "eval"))
  with writer.as_default(step=step):
    for key, value in results.items():
      tf.summary.scalar(f"eval/{key}", value)
  writer.flush()
  return results


def format_results(results: dict[str, float]) -> str:
  width = max(len(k) for k in results)
  return "\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(results.items()))
