"""End-to-end evaluation: a checkpoint and its exported Hub module agree;
sample-quality metrics; clear errors for bad inputs."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf import export
from bigbigan_tf import restore
from bigbigan_tf.evaluation import evaluator as evaluate
from bigbigan_tf.evaluation import model_dir as model_dir_eval
from bigbigan_tf import export
from bigbigan_tf import training
from bigbigan_tf.evaluation import feature_extractors
from bigbigan_tf.evaluation import inversion
from bigbigan_tf.evaluation import linear_probe as probe_lib
from bigbigan_tf.evaluation import metrics
from bigbigan_tf.networks import common


EVAL_BINDINGS = ["evaluation.probe_steps = 200",
                 "evaluation.random_encoder_baseline = False",
                 "load_arrays.max_examples = 1000"]


@pytest.fixture(scope="module")
def trained_dir(smoke_run_dir, tmp_path_factory):
  # A copy: evaluation writes eval.json into the run's directory.
  model_dir = str(tmp_path_factory.mktemp("eval_run") / "run")
  shutil.copytree(smoke_run_dir, model_dir)
  return model_dir


@pytest.fixture(scope="module")
def restored(trained_dir):
  return restore.restore_inference_model(trained_dir)


def _pixel_stats_extractor():
  """A stand-in classifier: 4x4 average-pooled grey levels (16 features)."""

  def classify(images):
    pooled = tf.nn.avg_pool2d(tf.reduce_mean(images, -1, keepdims=True), 8, 8,
                              "VALID")
    features = tf.reshape(pooled, [tf.shape(images)[0], -1])
    return {"features": features, "logits": features[:, :10] * 5.0}

  return feature_extractors.ClassifierFeatureExtractor(
      classifier=classify, feature_key="features", logits_key="logits",
      image_size=32, name="pixel_stats")


def _expected_figures(model, probe_steps):
  """What evaluate_model must report for `model` on mnist5k in memory (seed
  0, the gin-bound load_arrays settings), recomputed from the parts it is
  made of: E's features of each split, the seeded probes and kNN on them, a
  seeded probe on D-resolution pixels as the reconstructions' classifier,
  and the joint pairing scores of the test split in batches of 250."""
  (train_x, train_y), (test_x, test_y) = (
      data.load_arrays("mnist5k", split, model.encoder_resolution,
                       data_dir=gin_data_dir()) for split in ("train", "test"))
  train_f, test_f = (evaluate.encoder_features(model.encoder, x)
                     for x in (train_x, test_x))
  figures = {"knn5_top1": probe_lib.knn_accuracy(
      train_f, train_y, test_f, test_y, k=5, metric="cosine")}
  for feature_type in ("avepool", "bn_crelu"):
    probe = probe_lib.linear_probe(train_f, train_y, test_f, test_y,
                                   feature_type=feature_type,
                                   num_steps=probe_steps)
    figures[f"linear_probe_{feature_type}_top1"] = probe.top1
    figures[f"linear_probe_{feature_type}_top5"] = probe.top5
  pixels = lambda x: np.asarray(model.pool_for_discriminator(
      tf.constant(x))).reshape(len(x), -1)
  pixel_probe = probe_lib.linear_probe(pixels(train_x), train_y,
                                       pixels(test_x), test_y,
                                       num_steps=probe_steps)
  classify = lambda flat: np.argmax(
      flat @ pixel_probe.weights + pixel_probe.bias, axis=-1)
  batches = [(test_x[i:i + 250], test_y[i:i + 250])
             for i in range(0, len(test_x), 250)]
  reconstructions = np.concatenate(
      [model.reconstruct(x, training=False).numpy() for x, _ in batches])
  figures["reconstruction_same_class"] = np.mean(
      classify(pixels(test_x)) == classify(
          reconstructions.reshape(len(test_x), -1)))
  figures.update(evaluate.joint_pairing_scores(model, batches, seed=0))
  return figures


@pytest.mark.slow
def test_checkpoint_and_exported_module_give_the_same_figures(
    trained_dir, restored, tmp_path):
  results = model_dir_eval.evaluate_model_dir(trained_dir, None, (), EVAL_BINDINGS)
  assert json.load(open(os.path.join(trained_dir, "eval.json"))) == results
  # The same computations on the same weights and images in this process:
  # the same figures, exactly.
  expected = _expected_figures(restored, probe_steps=200)
  for key in ("linear_probe_avepool_top1", "linear_probe_bn_crelu_top5",
              "knn5_top1", "reconstruction_same_class",
              "joint_pairing_encoder_pairs", "joint_pairing_generator_pairs"):
    assert results[key] == expected[key], key
  # The probe learns something from a 2-step encoder's features.
  assert results["linear_probe_bn_crelu_top1"] > 0.2
  # The effective rank is that of E's features of the training split.
  train_x = data.load_arrays("mnist5k", "train", restored.encoder_resolution,
                             data_dir=gin_data_dir())[0]
  train_f = evaluate.encoder_features(restored.encoder, train_x)
  assert 1.0 < results["feature_effective_rank"] <= train_f.shape[1]
  assert results["feature_effective_rank"] == pytest.approx(
      probe_lib.effective_rank(train_f), rel=1e-3)

  paths = export.export_modules(restored, str(tmp_path / "export"))
  # The module is evaluated the streamed way (features on disk): the same
  # figures again.
  config.parse([os.path.join(trained_dir, "config.gin")], EVAL_BINDINGS + [
      f"evaluation.feature_dir = '{tmp_path / 'features'}'"])
  hub_results = evaluate.evaluate_model(
      export.ExportedBigBiGAN(paths["bigbigan"]))
  assert os.path.exists(tmp_path / "features" / "encoder_train" /
                        "features.npy")
  assert hub_results.keys() == results.keys()
  for key, value in results.items():
    assert hub_results[key] == pytest.approx(value, abs=2e-3), key


def test_sample_quality_metrics_with_a_stand_in_classifier(restored):
  model = restored
  real = data.load_arrays("mnist5k", "test", 32,
                          data_dir=gin_data_dir())[0][:200]
  extractor = _pixel_stats_extractor()
  results = evaluate.sample_quality(model, extractor, real, num_samples=100)
  assert set(results) == {"fid", "kid", "inception_score"}
  # The 100 samples are G of the seeded prior draws (one batch); the
  # figures are those of their extractor outputs against the real images'.
  samples = model.generate(inversion.prior_samples(model, 100, seed=0),
                           training=False).numpy()
  fake_features, fake_logits = extractor(samples)
  features, _ = extractor(real)
  assert results["fid"] == metrics.fid_from_activations(fake_features,
                                                        features)
  assert results["kid"] == metrics.kernel_inception_distance(
      fake_features, features)[0]
  assert results["inception_score"] == metrics.inception_score(
      fake_logits)[0]
  # Real against itself: FID 0.
  assert metrics.fid_from_activations(features, features) == pytest.approx(
      0.0, abs=1e-6)
  with pytest.raises(ValueError, match="samples"):
    evaluate.sample_quality(model, extractor, real, num_samples=10)


def gin_data_dir():
  import gin  # pylint: disable=g-import-not-at-top
  return gin.query_parameter("make_dataset.data_dir")


def test_hub_module_without_expected_outputs_is_refused(tmp_path):
  module = tf.Module()
  module.f = tf.function(lambda x: {"logits": x},
                         input_signature=[tf.TensorSpec([None, 4])])
  path = str(tmp_path / "not_bigbigan")
  tf.saved_model.save(module, path, signatures={"encode": module.f})
  with pytest.raises(ValueError, match="expected signatures|lacks outputs"):
    export.ExportedBigBiGAN(path)


def test_model_dir_without_checkpoint_is_refused(tmp_path, trained_dir):
  with pytest.raises(ValueError, match="no config.gin"):
    model_dir_eval.evaluate_model_dir(str(tmp_path))
  empty = tmp_path / "run"
  empty.mkdir()
  (empty / "config.gin").write_text(
      open(os.path.join(trained_dir, "config.gin")).read())
  with pytest.raises(ValueError, match="No checkpoint"):
    model_dir_eval.evaluate_model_dir(str(empty))


class _PairingModel:
  """A stand-in BigBiGAN on 4x4 images: E(x) and G(z) are exact inverses
  (mean colour <-> z); s_xz either rewards matched pairs or ignores z."""

  z_dim = 3

  def __init__(self, joint_uses_z: bool = True, has_joint: bool = True):
    self.joint_uses_z = joint_uses_z
    self.has_joint = has_joint

  def encoder(self, x, training=None):
    return {common.Z_MEAN: tf.reduce_mean(tf.cast(x, tf.float32), [1, 2])}

  def generate(self, z, training=None):
    return tf.tile(tf.convert_to_tensor(z)[:, None, None, :], [1, 4, 4, 1])

  def pool_for_discriminator(self, x):
    return x

  def discriminate(self, x, z, training=None):
    if not self.has_joint:
      return {common.SCORE_X: tf.reduce_sum(x, [1, 2, 3])}
    mean = tf.reduce_mean(x, [1, 2])
    if self.joint_uses_z:  # Higher ("realer") when z = mean colour of x.
      return {common.SCORE_XZ: -tf.reduce_sum(tf.square(mean - z), -1)}
    return {common.SCORE_XZ: tf.reduce_sum(mean, -1)}


def _pairing_batches(sizes=(6, 4)):
  rng = np.random.RandomState(0)
  return [(rng.normal(size=(n, 4, 4, 3)).astype(np.float32), np.zeros(n))
          for n in sizes]


def test_joint_pairing_scores_tell_whether_j_uses_the_pairing():
  # J prefers matched pairs: every real pair beats its mismatched version,
  # and every matched generated pair also looks realer (wrong for D).
  uses = evaluate.joint_pairing_scores(_PairingModel(), _pairing_batches())
  assert uses == {"joint_pairing_encoder_pairs": 1.0,
                  "joint_pairing_generator_pairs": 0.0}
  # J ignores z: matched and mismatched pairs tie, 0.5 each.
  ignores = evaluate.joint_pairing_scores(_PairingModel(joint_uses_z=False),
                                          _pairing_batches())
  assert ignores == {"joint_pairing_encoder_pairs": 0.5,
                     "joint_pairing_generator_pairs": 0.5}
  # No joint score: no figures.
  assert evaluate.joint_pairing_scores(_PairingModel(has_joint=False),
                                       _pairing_batches()) == {}
  with pytest.raises(ValueError, match="two or more examples"):
    evaluate.joint_pairing_scores(_PairingModel(), _pairing_batches((1, 1)))


class _CountingEncoder:
  """Stands in for E: outputs that are simple functions of the images, and
  a count of the images it has encoded."""

  def __init__(self, scale):
    self.scale = scale
    self.images_seen = tf.Variable(0, dtype=tf.int64)

  def __call__(self, x, training):
    assert not training
    self.images_seen.assign_add(tf.shape(x, out_type=tf.int64)[0])
    return {common.AVEPOOL_FEAT: self.scale * tf.reduce_mean(x, [1, 2]),
            common.Z_MEAN: self.scale * x[:, 0, 0, :],
            common.Z_SAMPLE: self.scale * tf.reduce_max(x, [1, 2])}


def _direct_outputs(scale, images):
  return {common.AVEPOOL_FEAT: scale * images.mean(axis=(1, 2)),
          common.Z_MEAN: scale * images[:, 0, 0, :],
          common.Z_SAMPLE: scale * images.max(axis=(1, 2))}


def test_in_memory_features_cache_every_key_of_each_encoder(monkeypatch):
  """The first request of an encoder computes its AvePool features and
  latent mean in one pass; a key outside those is computed once, then
  served from that encoder's entry like the others."""
  rng = np.random.default_rng(0)
  arrays = {"train": (rng.uniform(-1, 1, (6, 4, 4, 3)).astype(np.float32),
                      np.arange(6)),
            "test": (rng.uniform(-1, 1, (4, 4, 4, 3)).astype(np.float32),
                     np.arange(4) + 10)}
  monkeypatch.setattr(evaluate.data, "load_arrays",
                      lambda dataset, split, **unused: arrays[split])
  passes = []
  original = evaluate.encoder_outputs

  def recorded(encoder, images, keys, batch_size=250):
    passes.append((encoder, len(images), tuple(keys)))
    return original(encoder, images, keys, batch_size)

  monkeypatch.setattr(evaluate, "encoder_outputs", recorded)
  splits = evaluate._InMemorySplits(  # pylint: disable=protected-access
      "fake", {"train": {"split": "train"}, "test": {"split": "test"}},
      resolution=4, data_dir=None, pool=lambda x: x, batch_size=4)
  first, second = _CountingEncoder(1.0), _CountingEncoder(-2.0)
  requests = [(first, common.AVEPOOL_FEAT), (first, common.Z_MEAN),
              (first, common.Z_SAMPLE), (first, common.Z_SAMPLE),
              (second, common.Z_SAMPLE), (second, common.AVEPOOL_FEAT),
              (first, common.Z_SAMPLE), (first, common.AVEPOOL_FEAT),
              (second, common.Z_SAMPLE)]
  for encoder, key in requests:
    train_f, train_y, test_f, test_y = splits.features(encoder, "tag", key)
    np.testing.assert_allclose(
        train_f, _direct_outputs(encoder.scale, arrays["train"][0])[key],
        rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        test_f, _direct_outputs(encoder.scale, arrays["test"][0])[key],
        rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(train_y, arrays["train"][1])
    np.testing.assert_array_equal(test_y, arrays["test"][1])
  both = (common.AVEPOOL_FEAT, common.Z_MEAN)
  assert passes == [
      (first, 6, both + (common.AVEPOOL_FEAT,)),
      (first, 4, both + (common.AVEPOOL_FEAT,)),
      (first, 6, (common.Z_SAMPLE,)), (first, 4, (common.Z_SAMPLE,)),
      (second, 6, both + (common.Z_SAMPLE,)),
      (second, 4, both + (common.Z_SAMPLE,))]
  # Each split went through each encoder's network once per pass.
  assert int(first.images_seen) == 2 * (6 + 4)
  assert int(second.images_seen) == 6 + 4
