"""Tests of the linear probe, BN+CReLU features and kNN accuracy."""

import gin
import numpy as np
import pytest

from bigbigan_tf.evaluation import linear_probe as probe


def _clustered(seed, num_classes=10, dim=32, per_class=40, spread=0.3):
  """Points around well separated class centres, with labels."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim)) * 3.0
  labels = np.repeat(np.arange(num_classes), per_class)
  features = centres[labels] + rng.normal(size=(len(labels), dim)) * spread
  return features.astype(np.float32), labels


def _split(features, labels, seed):
  order = np.random.default_rng(seed).permutation(len(labels))
  cut = int(0.75 * len(labels))
  train, test = order[:cut], order[cut:]
  return features[train], labels[train], features[test], labels[test]


def _reference_knn(train_x, train_y, test_x, k, metric):
  """Brute force: sort by (distance, index), vote; ties -> nearest class."""
  predictions = []
  for query in test_x:
    if metric == "cosine":
      distances = [1 - np.dot(query, x) / np.linalg.norm(query) /
                   np.linalg.norm(x) for x in train_x]
    else:
      distances = [np.linalg.norm(query - x) for x in train_x]
    neighbours = sorted(range(len(train_x)), key=lambda i: (distances[i], i))
    neighbour_labels = [train_y[i] for i in neighbours[:k]]
    counts = {c: neighbour_labels.count(c) for c in neighbour_labels}
    best = max(counts.values())
    predictions.append(next(c for c in neighbour_labels if counts[c] == best))
  return np.array(predictions)


@pytest.mark.parametrize("feature_type,optimizer", [
    ("avepool", "momentum"), ("bn_crelu", "adam")])
def test_separable_features_reach_full_accuracy(feature_type, optimizer):
  data = _split(*_clustered(0), seed=0)
  result = probe.linear_probe(*data, feature_type=feature_type,
                              optimizer=optimizer, num_steps=300,
                              batch_size=64, steps_per_loop=100)
  assert result.top1 == 1.0
  assert result.train_top1 == 1.0
  assert result.top5 >= result.top1
  expected_width = 64 if feature_type == "bn_crelu" else 32
  assert result.weights.shape == (expected_width, 10)


def test_random_labels_stay_near_chance():
  rng = np.random.default_rng(1)
  features = rng.normal(size=(2000, 16)).astype(np.float32)
  labels = rng.integers(0, 10, size=2000)
  result = probe.linear_probe(features[:1500], labels[:1500], features[1500:],
                              labels[1500:], num_steps=300, batch_size=64)
  assert result.top1 < 0.2
  assert 0.3 < result.top5 < 0.7  # Chance is 0.5.
  assert result.top5 >= result.top1


def test_zero_steps_is_the_zero_classifier():
  features, labels = _clustered(2, num_classes=40, per_class=5)
  result = probe.linear_probe(features, labels, features, labels,
                              num_steps=0)
  assert not np.any(result.weights) and not np.any(result.bias)
  # All-zero logits predict class 0 (and classes 0..4 for top-5).
  assert result.top1 == pytest.approx(np.mean(labels == 0))
  assert result.top5 == pytest.approx(np.mean(labels < 5))


def test_each_call_restarts_from_zero():
  data = _split(*_clustered(3), seed=3)
  first = probe.linear_probe(*data, num_steps=50, batch_size=32)
  second = probe.linear_probe(*data, num_steps=50, batch_size=32)
  np.testing.assert_allclose(first.weights, second.weights, rtol=1e-5,
                             atol=1e-7)
  assert np.any(first.weights)


def test_ema_without_warmup_stays_near_zero_weights():
  data = _split(*_clustered(4), seed=4)
  warm = probe.linear_probe(*data, num_steps=20, ema_decay=0.9999)
  cold = probe.linear_probe(*data, num_steps=20, ema_decay=0.9999,
                            ema_warmup=False)
  assert np.abs(cold.weights).max() < 0.01 * np.abs(warm.weights).max()


def test_linear_probe_rejects_bad_options():
  data = _split(*_clustered(5), seed=5)
  with pytest.raises(ValueError, match="feature_type must be one of"):
    probe.linear_probe(*data, feature_type="logits")
  with pytest.raises(ValueError, match="optimizer must be one of"):
    probe.linear_probe(*data, optimizer="rmsprop")
  with pytest.raises(ValueError, match="train_labels must have shape"):
    probe.linear_probe(data[0], data[1][:-1], data[2], data[3])


def test_bn_crelu_doubles_width_and_matches_numpy_reference():
  rng = np.random.default_rng(6)
  train = rng.normal(size=(100, 8)) * 3 + 1
  test = rng.normal(size=(20, 8))
  mean, variance = probe.feature_moments(train)
  out = probe.bn_crelu(test, mean, variance, epsilon=1e-5)
  assert out.shape == (20, 16)
  normalized = (test - train.mean(0)) / np.sqrt(train.var(0) + 1e-5)
  expected = np.concatenate([np.where(normalized > 0, normalized, 0),
                             np.where(normalized < 0, -normalized, 0)], axis=1)
  np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
  # Exactly one of each (relu(h), relu(-h)) pair is non-zero.
  assert np.all((out[:, :8] > 0) != (out[:, 8:] > 0))


def test_knn_on_clustered_data_is_perfect():
  data = _split(*_clustered(7), seed=7)
  for metric in ("cosine", "euclidean"):
    assert probe.knn_accuracy(*data, k=5, metric=metric) == 1.0


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_matches_brute_force_reference(metric):
  rng = np.random.default_rng(8)
  train_x = rng.normal(size=(120, 6))
  train_y = rng.integers(0, 4, size=120)
  test_x = rng.normal(size=(40, 6))
  test_y = rng.integers(0, 4, size=40)
  for k in (1, 4, 7):
    predictions = _reference_knn(train_x, train_y, test_x, k, metric)
    expected = np.mean(predictions == test_y)
    # Small batches exercise the chunked path.
    assert probe.knn_accuracy(train_x, train_y, test_x, test_y, k=k,
                              metric=metric, batch_size=16) == expected
    # With the reference's predictions as labels the accuracy must be 1.
    assert probe.knn_accuracy(train_x, train_y, test_x, predictions, k=k,
                              metric=metric, batch_size=16) == 1.0


def test_knn_vote_tie_goes_to_nearest_tied_class():
  train_x = np.array([[0.0], [1.0], [2.0], [3.0]])
  train_y = np.array([3, 1, 1, 3])
  # k=4 from 0.4: neighbours 0 (class 3), 1 (1), 2 (1), 3 (3): 2-2 tie -> 3.
  assert probe.knn_accuracy(train_x, train_y, np.array([[0.4]]),
                            np.array([3]), k=4, metric="euclidean") == 1.0
  # From 0.6 the nearest is index 1 (class 1).
  assert probe.knn_accuracy(train_x, train_y, np.array([[0.6]]),
                            np.array([1]), k=4, metric="euclidean") == 1.0


def test_knn_rejects_bad_k_and_metric():
  data = _split(*_clustered(9), seed=9)
  with pytest.raises(ValueError, match=r"k must be in \[1, 300\]"):
    probe.knn_accuracy(*data, k=301)
  with pytest.raises(ValueError, match="metric must be one of"):
    probe.knn_accuracy(*data, metric="manhattan")


def test_gin_bindings_configure_the_probe_and_knn():
  data = _split(*_clustered(10), seed=10)
  try:
    gin.parse_config(["linear_probe.num_steps = 0",
                      "knn_accuracy.k = 301"])
    result = probe.linear_probe(*data)
    assert not np.any(result.weights)
    with pytest.raises(ValueError, match="received 301"):
      probe.knn_accuracy(*data)
  finally:
    gin.clear_config()


def test_repeated_probes_trace_once_and_start_from_scratch():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(200, 6)).astype(np.float32)
  y = (x[:, 0] > 0).astype(np.int64)
  kwargs = dict(num_steps=50, batch_size=16, steps_per_loop=20,
                num_classes=2)
  first = probe.linear_probe(x, y, x, y, seed=1, **kwargs)
  program = next(reversed(probe._PROGRAMS.values()))
  traces = (program.train_loop.experimental_get_tracing_count(),
            program.draw_indices.experimental_get_tracing_count())
  other = probe.linear_probe(x, y, x, y, seed=2, **kwargs)
  again = probe.linear_probe(x, y, x, y, seed=1, **kwargs)
  assert next(reversed(probe._PROGRAMS.values())) is program
  assert (program.train_loop.experimental_get_tracing_count(),
          program.draw_indices.experimental_get_tracing_count()) == traces
  np.testing.assert_array_equal(first.weights, again.weights)
  assert first.final_loss == again.final_loss
  assert not np.array_equal(first.weights, other.weights)


def test_effective_rank_counts_independent_directions():
  rng = np.random.default_rng(0)
  g = rng.normal(size=(20000, 3))
  # Three independent directions, each appearing twice (a scaled copy, a
  # negated copy, a shifted copy), and two constant (dead) dimensions.
  features = np.concatenate(
      [g, 2.0 * g[:, :1], -g[:, 1:2], g[:, 2:] + 1.0, np.zeros((20000, 1)),
       np.full((20000, 1), 3.0)], axis=1).astype(np.float32)
  assert probe.effective_rank(features, max_rows=None) == pytest.approx(
      3.0, abs=0.01)
  assert probe.effective_rank(g, max_rows=None) == pytest.approx(3.0, abs=0.01)
  assert probe.effective_rank(np.ones((10, 4))) == 0.0


def test_effective_rank_matches_a_numpy_reference():
  rng = np.random.default_rng(1)
  features = (rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) *
              rng.uniform(0.1, 5.0, size=12)).astype(np.float32)
  correlation = np.corrcoef(features.astype(np.float64), rowvar=False)
  expected = 12.0**2 / np.sum(np.square(correlation))
  assert probe.effective_rank(features) == pytest.approx(expected, rel=1e-9)
  # Chunked reads give the same figure.
  assert probe.effective_rank(features, rows_per_chunk=7) == pytest.approx(
      expected, rel=1e-9)
  # Only the first max_rows rows count.
  assert probe.effective_rank(features, max_rows=100) == pytest.approx(
      probe.effective_rank(features[:100]), rel=1e-12)
  assert probe.effective_rank(features, max_rows=100) != pytest.approx(
      expected, rel=1e-3)


def test_effective_rank_of_a_memmap(tmp_path):
  rng = np.random.default_rng(2)
  features = rng.normal(size=(64, 5)).astype(np.float32)
  stored = np.lib.format.open_memmap(str(tmp_path / "f.npy"), mode="w+",
                                     dtype=np.float32, shape=features.shape)
  stored[:] = features
  assert probe.effective_rank(stored, rows_per_chunk=10) == pytest.approx(
      probe.effective_rank(features), rel=1e-12)


@pytest.mark.parametrize("features, kwargs, message", [
    (np.zeros((1, 3)), {}, "at least 2 rows"),
    (np.zeros((5, 3)), {"max_rows": 1}, "max_rows"),
    (np.zeros((5, 3)), {"max_rows": 2.5}, "max_rows"),
    (np.zeros(5), {}, r"\[N, D\]"),
])
def test_effective_rank_rejects_bad_input(features, kwargs, message):
  with pytest.raises(ValueError, match=message):
    probe.effective_rank(features, **kwargs)
