"""Tests of bigbigan_tf.evaluation.metrics against plain NumPy references."""

import numpy as np
import pytest
import scipy.linalg

from bigbigan_tf.evaluation import metrics


def _reference_fid(act1, act2):
  """FID written directly from the formula, independent of the library."""
  mu1, mu2 = act1.mean(0), act2.mean(0)
  c1 = (act1 - mu1).T @ (act1 - mu1) / (act1.shape[0] - 1)
  c2 = (act2 - mu2).T @ (act2 - mu2) / (act2.shape[0] - 1)
  # Tr((C1 C2)^(1/2)) = Tr((C1^(1/2) C2 C1^(1/2))^(1/2)), a symmetric form.
  root1 = scipy.linalg.sqrtm(c1).real
  middle = scipy.linalg.sqrtm(root1 @ c2 @ root1).real
  return (np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2)
          - 2 * np.trace(middle))


def _reference_inception_score(logits, num_splits):
  probs = np.exp(logits - logits.max(1, keepdims=True))
  probs /= probs.sum(1, keepdims=True)
  scores = []
  for part in np.array_split(probs, num_splits):
    marginal = part.mean(0)
    kl = [sum(p[j] * np.log(p[j] / marginal[j]) for j in range(len(p)))
          for p in part]
    scores.append(np.exp(np.mean(kl)))
  return np.mean(scores), np.std(scores)


def _reference_mmd2(x, y):
  d = x.shape[1]
  kernel = lambda a, b: (np.dot(a, b) / d + 1) ** 3
  m = len(x)
  xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m))
  return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_fid_of_set_with_itself_is_zero():
  acts = np.random.default_rng(0).normal(size=(500, 16))
  assert metrics.fid_from_activations(acts, acts) == pytest.approx(0, abs=1e-8)


def test_fid_matches_reference_on_random_activations():
  rng = np.random.default_rng(1)
  act1 = rng.normal(size=(300, 12))
  act2 = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) * 0.7 + 0.5
  fid = metrics.fid_from_activations(act1, act2)
  assert fid > 1.0
  assert fid == pytest.approx(_reference_fid(act1, act2), rel=1e-8)


def test_frechet_distance_of_known_gaussians():
  # Isotropic Gaussians: |mu1 - mu2|^2 + d (s1 - s2)^2 for std devs s1, s2.
  mu1, mu2 = np.zeros(4), np.full(4, 2.0)
  fid = metrics.frechet_distance(mu1, np.eye(4) * 1.0, mu2, np.eye(4) * 9.0)
  assert fid == pytest.approx(16.0 + 4 * (1.0 - 3.0) ** 2)


def test_frechet_distance_rejects_inconsistent_shapes():
  with pytest.raises(ValueError, match="expected shapes"):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_fewer_samples_than_dimensions_raises():
  acts = np.random.default_rng(0).normal(size=(10, 32))
  with pytest.raises(ValueError, match=r"10 samples of dimension 32"):
    metrics.activation_statistics(acts)
  with pytest.raises(ValueError, match="singular"):
    metrics.fid_from_activations(acts, acts)


def test_inception_score_matches_reference():
  logits = np.random.default_rng(2).normal(size=(103, 7)) * 3
  mean, std = metrics.inception_score(logits, num_splits=5)
  ref_mean, ref_std = _reference_inception_score(logits, 5)
  assert mean == pytest.approx(ref_mean, rel=1e-10)
  assert std == pytest.approx(ref_std, rel=1e-8)
  assert 1.0 < mean < 7.0


def test_inception_score_of_uniform_logits_is_one():
  mean, std = metrics.inception_score(np.full((40, 1008), 3.0), num_splits=4)
  assert mean == pytest.approx(1.0, abs=1e-12)
  assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_balanced_predictions_is_num_classes():
  logits = np.eye(10)[np.arange(100) % 10] * 100.0
  mean, _ = metrics.inception_score(logits, num_splits=10)
  assert mean == pytest.approx(10.0, rel=1e-6)


def test_inception_score_rejects_too_many_splits():
  with pytest.raises(ValueError, match=r"\[1, 5\].*received 6"):
    metrics.inception_score(np.zeros((5, 3)), num_splits=6)


def test_kid_of_identical_sets_is_near_zero_and_shift_is_positive():
  rng = np.random.default_rng(3)
  acts = rng.normal(size=(400, 8))
  same, _ = metrics.kernel_inception_distance(acts, acts, num_subsets=20,
                                              max_subset_size=200)
  shifted, _ = metrics.kernel_inception_distance(acts, acts + 1.0,
                                                 num_subsets=20,
                                                 max_subset_size=200)
  assert abs(same) < 0.1
  assert shifted > 1.0
  assert shifted > 100 * abs(same)


def test_kid_of_independent_samples_of_one_distribution_is_near_zero():
  rng = np.random.default_rng(7)
  kid, _ = metrics.kernel_inception_distance(
      rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), num_subsets=10,
      max_subset_size=300)
  shifted, _ = metrics.kernel_inception_distance(
      rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 0.3,
      num_subsets=10, max_subset_size=300)
  assert abs(kid) < 0.05
  assert shifted > 0.15


def test_kid_matches_reference_on_full_sets():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(30, 5))
  y = rng.normal(size=(30, 5)) + 0.3
  # A subset as large as the sets is a permutation of them; MMD^2 ignores order.
  kid, std = metrics.kernel_inception_distance(x, y, num_subsets=1,
                                               max_subset_size=100)
  assert kid == pytest.approx(_reference_mmd2(x, y), rel=1e-10)
  assert std == 0.0


def test_statistics_cache_round_trip(tmp_path):
  acts = np.random.default_rng(5).normal(size=(50, 6))
  stats = metrics.ReferenceStatistics.from_activations(
      acts, "mnist/train/domain_classifier:embedding")
  path = str(tmp_path / "cache" / "stats.npz")
  metrics.save_statistics(path, stats)
  loaded = metrics.load_statistics(path,
                                   "mnist/train/domain_classifier:embedding")
  np.testing.assert_array_equal(loaded.mu, stats.mu)
  np.testing.assert_array_equal(loaded.sigma, stats.sigma)
  assert loaded.count == 50
  assert loaded.description == stats.description
  assert metrics.fid_against_statistics(acts, loaded) == pytest.approx(
      0, abs=1e-9)


def test_statistics_cache_description_mismatch_raises(tmp_path):
  acts = np.random.default_rng(6).normal(size=(20, 3))
  path = str(tmp_path / "stats.npz")
  metrics.save_statistics(
      path, metrics.ReferenceStatistics.from_activations(acts, "mnist/train"))
  with pytest.raises(ValueError, match="'mnist/train'.*'mnist/test'"):
    metrics.load_statistics(path, "mnist/test")
  with pytest.raises(FileNotFoundError):
    metrics.load_statistics(str(tmp_path / "missing.npz"))
