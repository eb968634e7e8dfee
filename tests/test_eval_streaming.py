"""Streamed evaluation: features on disk, probes and kNN in bounded chunks.

The streamed path (evaluation.feature_dir) must give the figures of the
in-memory path, read at most a chunk of feature rows at a time, and refuse
stored features that do not fit with errors naming what was expected.
"""

import os

from absl import flags
import gin
import numpy as np
import pytest

from bigbigan_tf import config
from bigbigan_tf import data
from bigbigan_tf.evaluation import evaluator as evaluate
from bigbigan_tf.evaluation import feature_store
from bigbigan_tf.evaluation import linear_probe as probe
from bigbigan_tf.networks import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE_GIN = os.path.join(ROOT, "gin", "smoke.gin")


def _features(seed, rows, dim=12, num_classes=5, noise=2.0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim)) * 2.0
  labels = rng.integers(0, num_classes, size=rows)
  features = centres[labels] + rng.normal(size=(rows, dim)) * noise
  return features.astype(np.float32), labels.astype(np.int32)


def _store(directory, features, labels, batch=37, dtype="float32"):
  """Writes arrays as write_features would receive them from a pipeline."""
  batches = ((features[i:i + batch], labels[i:i + batch])
             for i in range(0, len(labels), batch))
  return feature_store.write_features(str(directory), batches, dtype=dtype)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
  """The same features in memory and memory-mapped from disk."""
  root = tmp_path_factory.mktemp("features")
  features, labels = _features(0, 750)
  train = features[:600], labels[:600]
  test = features[600:], labels[600:]
  on_disk = (_store(root / "train", *train), _store(root / "test", *test))
  return (train + test,
          (on_disk[0].features, on_disk[0].labels, on_disk[1].features,
           on_disk[1].labels))


class RecordingSource:
  """A feature source that remembers the most rows read at once and may not
  be turned into an array as a whole."""

  def __init__(self, features):
    self._features = features
    self.shape = features.shape
    self.largest_read = 0

  def __getitem__(self, index):
    rows = self._features[index]
    self.largest_read = max(self.largest_read, rows.shape[0])
    return rows

  def __array__(self, *args, **kwargs):
    raise AssertionError("the whole feature source was materialised")


# -- linear probe and kNN: streamed == in memory ------------------------------


@pytest.mark.parametrize("feature_type,optimizer", [
    ("avepool", "momentum"), ("bn_crelu", "adam")])
def test_streamed_probe_equals_in_memory_probe(stored, feature_type,
                                               optimizer):
  in_memory, on_disk = stored
  assert isinstance(on_disk[0], np.memmap)
  kwargs = dict(feature_type=feature_type, optimizer=optimizer, num_steps=120,
                batch_size=32, steps_per_loop=50)
  reference = probe.linear_probe(*in_memory, **kwargs)
  # Chunks smaller than the split: many compiled loops of 3 steps, moments
  # merged over 7 chunks, test scored in 2 chunks. Same sampler, same values:
  # equal to float32 rounding of the BN moments (exact in practice).
  streamed = probe.linear_probe(*on_disk, rows_per_chunk=100, **kwargs)
  np.testing.assert_allclose(streamed.weights, reference.weights, rtol=0,
                             atol=1e-6)
  np.testing.assert_allclose(streamed.bias, reference.bias, rtol=0, atol=1e-6)
  assert streamed.top1 == reference.top1
  assert streamed.top5 == reference.top5
  assert streamed.train_top1 == reference.train_top1
  assert 0.4 < reference.top1 < 1.0  # Neither trivial nor hopeless.


def test_streamed_knn_equals_in_memory_knn(stored):
  in_memory, on_disk = stored
  for metric in ("cosine", "euclidean"):
    for k in (1, 5, 20):
      reference = probe.knn_accuracy(*in_memory, k=k, metric=metric)
      streamed = probe.knn_accuracy(*on_disk, k=k, metric=metric,
                                    batch_size=40, key_batch_size=64)
      assert streamed == reference, (metric, k)


def test_chunked_knn_breaks_distance_ties_by_training_index():
  # Rows 0..9 and their copies 10..19 (labels shifted): every query has each
  # neighbour twice at the same distance, in different key chunks; the
  # lower index (the original) must win.
  # Small integers: every distance is exact, so copies tie exactly.
  base = np.random.default_rng(2).integers(-3, 4, size=(10, 4)).astype(float)
  labels = np.arange(10)
  train_x = np.concatenate([base, base])
  train_y = np.concatenate([labels, (labels + 1) % 10])
  for key_batch_size in (3, 7, 10, 20):
    # k=1: the nearest is the query's own row (distance 0) and its copy.
    assert probe.knn_accuracy(train_x, train_y, base, labels, k=1,
                              metric="euclidean",
                              key_batch_size=key_batch_size) == 1.0


def test_streamed_moments_match_numpy():
  features, _ = _features(3, 1000, dim=6)
  # Far from zero, where a sum of squares would lose digits.
  features = features * 100.0 + 1e4
  mean, variance = probe.feature_moments(features, rows_per_chunk=7)
  reference = features.astype(np.float64)
  np.testing.assert_allclose(mean, reference.mean(0), rtol=1e-12)
  np.testing.assert_allclose(variance, reference.var(0), rtol=1e-9)
  # One chunk: exactly NumPy's float64 mean and variance.
  one_mean, one_variance = probe.feature_moments(features)
  np.testing.assert_array_equal(one_mean, reference.mean(0))
  np.testing.assert_array_equal(one_variance, reference.var(0))


# -- bounded memory ------------------------------------------------------------


def test_probe_and_knn_read_at_most_a_chunk_of_rows(stored):
  in_memory, _ = stored
  train = RecordingSource(in_memory[0])
  test = RecordingSource(in_memory[2])
  probe.linear_probe(train, in_memory[1], test, in_memory[3],
                     feature_type="bn_crelu", num_steps=40, batch_size=16,
                     rows_per_chunk=64)
  assert 0 < train.largest_read <= 64
  assert 0 < test.largest_read <= 64

  train = RecordingSource(in_memory[0])
  test = RecordingSource(in_memory[2])
  accuracy = probe.knn_accuracy(train, in_memory[1], test, in_memory[3], k=5,
                                batch_size=20, key_batch_size=50)
  assert train.largest_read == 50 and test.largest_read == 20
  assert accuracy == probe.knn_accuracy(*in_memory, k=5)


# -- feature extraction --------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_model(data_dir):
  """An untrained smoke.gin BigBiGAN; gin bound as evaluation would see it
  (mnist5k from the fixture's data_dir, at most 150 examples per split)."""
  config.parse([SMOKE_GIN], [f"make_dataset.data_dir = '{data_dir}'",
                             "load_arrays.max_examples = 150"])
  yield config.build_model()
  gin.clear_config()


def test_extraction_writes_every_row_and_matches_encoder_features(
    smoke_model, data_dir, tmp_path):
  encoder = smoke_model.encoder
  images, labels = data.load_arrays("mnist5k", "test", 32, data_dir=data_dir,
                                    max_examples=70)
  pipeline = data.evaluation_dataset("mnist5k", "test", 32, data_dir=data_dir,
                                     max_examples=70, batch_size=32)
  stored = feature_store.extract_features(
      lambda x: encoder(x, training=False)[common.AVEPOOL_FEAT], pipeline,
      str(tmp_path / "test"), info={"split": "test"})
  expected = evaluate.encoder_features(encoder, images)
  assert stored.features.shape == expected.shape == (70, expected.shape[1])
  assert stored.info["rows"] == 70 and stored.info["split"] == "test"
  np.testing.assert_array_equal(stored.labels, labels)
  np.testing.assert_allclose(stored.features, expected, rtol=1e-5, atol=1e-6)
  # Reopened with what the caller expects.
  again = feature_store.open_features(str(tmp_path / "test"),
                                      expected_dim=expected.shape[1],
                                      expected_rows=70)
  np.testing.assert_array_equal(again.features, stored.features)

  half = feature_store.extract_features(
      lambda x: encoder(x, training=False)[common.AVEPOOL_FEAT], pipeline,
      str(tmp_path / "half"), dtype="float16")
  assert half.features.dtype == np.float16
  np.testing.assert_allclose(half.features, expected, rtol=2e-3, atol=1e-3)


@pytest.mark.slow
def test_streamed_evaluation_gives_the_in_memory_figures(smoke_model,
                                                         data_dir, tmp_path):
  kwargs = dict(dataset="mnist5k", probe_steps=30, knn_k=5,
                random_encoder_baseline=True)
  in_memory = evaluate.evaluate_model(smoke_model, **kwargs)
  feature_dir = tmp_path / "features"
  streamed = evaluate.evaluate_model(smoke_model, feature_dir=str(feature_dir),
                                     **kwargs)
  assert streamed.keys() == in_memory.keys()
  # The random encoder's weights come from evaluation.seed alone, so its
  # figures are the same in both calls too.
  for key, value in in_memory.items():
    assert streamed[key] == pytest.approx(value, abs=1e-6), key

  # The baseline is E's architecture with the weights of seed 0, standing
  # statistics from the training images (150 here, one batch), probed like E.
  size = smoke_model.encoder_resolution
  (train_x, train_y), (test_x, test_y) = (
      data.load_arrays("mnist5k", split, size, data_dir=data_dir)
      for split in ("train", "test"))
  fresh = common.clone(smoke_model.encoder, seed=0)
  evaluate.standing_statistics(fresh, [(train_x, train_y)])
  train_f, test_f = (evaluate.encoder_features(fresh, x)
                     for x in (train_x, test_x))
  assert in_memory["random_encoder_feature_effective_rank"] == (
      probe.effective_rank(train_f))
  for feature_type in ("avepool", "bn_crelu"):
    result = probe.linear_probe(train_f, train_y, test_f, test_y,
                                feature_type=feature_type, num_steps=30)
    prefix = f"random_encoder_linear_probe_{feature_type}"
    assert in_memory[f"{prefix}_top1"] == result.top1
    assert in_memory[f"{prefix}_top5"] == result.top5
  assert sorted(os.listdir(feature_dir)) == [
      "encoder_test", "encoder_train", "encoder_z_mean_test",
      "encoder_z_mean_train", "pixels_test", "pixels_train",
      "random_encoder_test", "random_encoder_train"]
  # load_arrays.max_examples = 150 caps the streamed splits too.
  assert feature_store.open_features(
      str(feature_dir / "encoder_train")).info["rows"] == 150

  # The pixel baseline's cap.
  capped = evaluate.evaluate_model(
      smoke_model, feature_dir=str(feature_dir), pixel_probe_max_examples=40,
      **{**kwargs, "random_encoder_baseline": False})
  assert feature_store.open_features(
      str(feature_dir / "pixels_train")).info["rows"] == 40
  assert capped["linear_probe_avepool_top1"] == streamed[
      "linear_probe_avepool_top1"]


def test_evaluate_tool_passes_feature_dir_as_a_gin_binding(monkeypatch,
                                                          tmp_path):
  # The installed module, imported once per process: its absl flags are
  # defined once however many tests use it.
  from bigbigan_tf.tools import evaluate as tool  # pylint: disable=g-import-not-at-top
  calls = []
  monkeypatch.setattr(
      tool.model_dir_eval, "evaluate_model_dir",
      lambda *args: calls.append(args) or {"knn5_top1": 0.5})
  argv = ["evaluate.py", f"--model_dir={tmp_path}",
          "--gin_bindings=evaluation.probe_steps = 10",
          f"--feature_dir={tmp_path / 'features'}",
          f"--output_json={tmp_path / 'eval.json'}"]
  try:
    flags.FLAGS(argv)
    tool.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  (_, _, _, bindings), = calls
  assert bindings == ["evaluation.probe_steps = 10",
                      f"evaluation.feature_dir = '{tmp_path / 'features'}'"]
  gin.parse_config(bindings[1:])  # A binding gin accepts.
  try:
    assert gin.query_parameter("evaluation.feature_dir") == str(
        tmp_path / "features")
  finally:
    gin.clear_config()


# -- clear errors --------------------------------------------------------------


def test_stored_features_that_do_not_fit_are_refused(tmp_path):
  features, labels = _features(4, 30, dim=8)
  directory = tmp_path / "train"
  _store(directory, features, labels)
  with pytest.raises(ValueError, match=r"Expected features of width 16;.*"
                     r"shape \(30, 8\)"):
    feature_store.open_features(str(directory), expected_dim=16)
  with pytest.raises(ValueError, match=r"Expected 40 feature rows;.*"
                     r"shape \(30, 8\)"):
    feature_store.open_features(str(directory), expected_rows=40)
  np.save(directory / feature_store.LABELS_FILE, labels[:20])
  with pytest.raises(ValueError, match=r"Expected 30 labels.*\(20,\)"):
    feature_store.open_features(str(directory))
  np.save(directory / feature_store.FEATURES_FILE, features[:25])
  with pytest.raises(ValueError,
                     match=r"shape \(30, 8\) as recorded.*\(25, 8\)"):
    feature_store.open_features(str(directory))
  os.remove(directory / feature_store.INFO_FILE)
  with pytest.raises(ValueError, match="no complete feature extraction"):
    feature_store.open_features(str(directory))


def test_bad_writes_and_settings_are_refused(tmp_path, stored):
  features, labels = _features(5, 20, dim=8)
  with pytest.raises(ValueError, match="must be local paths"):
    _store("gs://bucket/features", features, labels)
  with pytest.raises(ValueError, match="dtype must be one of"):
    _store(tmp_path / "a", features, labels, dtype="bfloat16")
  mixed = [(features[:10], labels[:10]), (features[10:, :4], labels[10:])]
  with pytest.raises(ValueError, match="Expected every batch to have 8 "
                     "features.*width 4"):
    feature_store.write_features(str(tmp_path / "b"), mixed)
  with pytest.raises(ValueError, match="No rows"):
    feature_store.write_features(str(tmp_path / "c"), [])
  # A failed write leaves no directory that passes for complete features.
  with pytest.raises(ValueError, match="no complete feature extraction"):
    feature_store.open_features(str(tmp_path / "b"))

  in_memory, on_disk = stored
  narrow = _store(tmp_path / "narrow", features, labels)
  with pytest.raises(ValueError, match="same dimension; received 12 and 8"):
    probe.linear_probe(on_disk[0], on_disk[1], narrow.features, narrow.labels)
  with pytest.raises(ValueError, match="rows_per_chunk must be an int >= 1"):
    probe.linear_probe(*in_memory, rows_per_chunk=0)
  with pytest.raises(ValueError, match="key_batch_size must be an int >= 1"):
    probe.knn_accuracy(*in_memory, key_batch_size=0)
  with pytest.raises(ValueError, match="feature_dtype must be one of"):
    evaluate.evaluate_model(None, feature_dtype="int8")
  with pytest.raises(ValueError,
                     match="pixel_probe_max_examples must be None or an int"):
    evaluate.evaluate_model(None, pixel_probe_max_examples=0)
