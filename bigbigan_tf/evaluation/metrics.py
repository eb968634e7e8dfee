"""Sample-quality metrics computed from classifier activations: FID, IS, KID.

All functions here take NumPy arrays of activations or logits that some
classifier (usually the Inception network, see `feature_extractors.py`) has
already produced, so they are independent of the BigBiGAN models and of
TensorFlow. Computation is done in float64.

* Frechet Inception Distance (Heusel et al. 2017): the Frechet (2-Wasserstein)
  distance between two Gaussians fitted to the activations,
  ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.
* Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``,
  computed on `num_splits` disjoint splits, reported as mean and std.
* Kernel Inception Distance (Binkowski et al. 2018): the unbiased estimate of
  the squared MMD with the cubic polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3``, averaged over random subsets.

Reference statistics of real data (mean, covariance, sample count and a
description such as "imagenet2012/train/tfgan_inception_pool_3") can be cached
in an .npz file with `save_statistics` / `load_statistics`.
"""

import dataclasses
import io
from typing import Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.special
import tensorflow as tf

# Largest |imaginary part| on the diagonal of sqrtm(S1 S2) that is treated as
# round-off; larger values mean the product is far from PSD and FID is invalid.
_MAX_IMAGINARY_COMPONENT = 1e-3


def _as_2d_float64(array: np.ndarray, name: str) -> np.ndarray:
  """Returns `array` as float64 [N, D], raising ValueError otherwise."""
  array = np.asarray(array, dtype=np.float64)
  if array.ndim != 2:
    raise ValueError(
        f"{name} must be a 2-D array [num_samples, num_features]; received "
        f"shape {array.shape}.")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} contains NaN or infinite values.")
  return array


def _paired_activations(activations1: np.ndarray, activations2: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Both sets as 2-D float64; ValueError unless their widths agree."""
  activations1 = _as_2d_float64(activations1, "activations1")
  activations2 = _as_2d_float64(activations2, "activations2")
  if activations1.shape[1] != activations2.shape[1]:
    raise ValueError(
        "Both activation sets must have the same feature dimension; received "
        f"{activations1.shape[1]} and {activations2.shape[1]}.")
  return activations1, activations2


def activation_statistics(
    activations: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of a set of activations.

  Args:
    activations: [N, D] array, one row per sample.

  Returns:
    (mu, sigma): the mean [D] and the unbiased sample covariance [D, D], both
    float64.

  Raises:
    ValueError: if `activations` is not 2-D, or has N <= D, in which case the
      covariance (of rank at most N - 1) is singular and FID is meaningless.
  """
  activations = _as_2d_float64(activations, "activations")
  num_samples, num_features = activations.shape
  if num_samples <= num_features:
    raise ValueError(
        "The covariance of the activations is singular: expected more samples "
        f"than feature dimensions, received {num_samples} samples of "
        f"dimension {num_features}.")
  mu = np.mean(activations, axis=0)
  sigma = np.cov(activations, rowvar=False)
  return mu, sigma


def frechet_distance(mu1: np.ndarray,
                     sigma1: np.ndarray,
                     mu2: np.ndarray,
                     sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
  """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

  Args:
    mu1: [D] mean of the first Gaussian.
    sigma1: [D, D] covariance of the first Gaussian.
    mu2: [D] mean of the second Gaussian.
    sigma2: [D, D] covariance of the second Gaussian.
    eps: offset added to both covariance diagonals when the matrix square root
      of their product is not finite (nearly singular product).

  Returns:
    The distance ``|mu1 - mu2|^2 + Tr(sigma1) + Tr(sigma2)
    - 2 Tr((sigma1 sigma2)^(1/2))`` as a Python float.

  Raises:
    ValueError: if the shapes disagree, or if the square root has an
      imaginary component too large to be round-off.
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  dim = mu1.shape[0]
  expected = {"mu1": (dim,), "mu2": (dim,), "sigma1": (dim, dim),
              "sigma2": (dim, dim)}
  received = {"mu1": mu1.shape, "mu2": mu2.shape, "sigma1": sigma1.shape,
              "sigma2": sigma2.shape}
  if expected != received:
    raise ValueError(
        f"Inconsistent Gaussian parameters: expected shapes {expected}, "
        f"received {received}.")

  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
  if not np.all(np.isfinite(covmean)):
    offset = np.eye(dim) * eps
    covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    max_imaginary = np.max(np.abs(np.diagonal(covmean).imag))
    if max_imaginary > _MAX_IMAGINARY_COMPONENT:
      raise ValueError(
          "sqrtm(sigma1 @ sigma2) has an imaginary component of "
          f"{max_imaginary:.3g} on its diagonal, expected at most "
          f"{_MAX_IMAGINARY_COMPONENT} (round-off); are both covariances "
          "positive semi-definite?")
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
               - 2.0 * np.trace(covmean))


def fid_from_activations(activations1: np.ndarray,
                         activations2: np.ndarray) -> float:
  """Frechet Inception Distance between two sets of activations.

  Args:
    activations1: [N1, D] activations, e.g. Inception pool_3 of samples.
    activations2: [N2, D] activations, e.g. of real images.

  Returns:
    The FID as a Python float.

  Raises:
    ValueError: on mismatched feature dimensions or too few samples.
  """
  activations1, activations2 = _paired_activations(activations1,
                                                   activations2)
  mu1, sigma1 = activation_statistics(activations1)
  mu2, sigma2 = activation_statistics(activations2)
  return frechet_distance(mu1, sigma1, mu2, sigma2)


def inception_score(logits: np.ndarray,
                    num_splits: int = 10) -> Tuple[float, float]:
  """Inception Score from classifier logits.

  The samples are cut into `num_splits` contiguous splits (sizes differ by at
  most one when N is not divisible); on each split the score is
  ``exp(mean_x KL(p(y|x) || p(y)))`` with p(y) the split's mean prediction.

  Args:
    logits: [N, num_classes] unnormalised log-probabilities (for TF-GAN's
      Inception, the 1008 "logits" outputs).
    num_splits: number of splits, 1 <= num_splits <= N.

  Returns:
    (mean, std) of the per-split scores. The score lies in [1, num_classes];
    uniform predictions give exactly 1.

  Raises:
    ValueError: if `logits` is not 2-D or `num_splits` is out of range.
  """
  logits = _as_2d_float64(logits, "logits")
  num_samples = logits.shape[0]
  if not 1 <= num_splits <= num_samples:
    raise ValueError(
        f"num_splits must be in [1, {num_samples}] (the number of samples); "
        f"received {num_splits}.")
  log_probs = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
  scores = []
  for split in np.array_split(log_probs, num_splits, axis=0):
    log_marginal = scipy.special.logsumexp(
        split, axis=0) - np.log(split.shape[0])
    kl_divergences = np.sum(np.exp(split) * (split - log_marginal), axis=1)
    scores.append(np.exp(np.mean(kl_divergences)))
  return float(np.mean(scores)), float(np.std(scores))


def _cubic_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """The KID kernel (x.y / d + 1)^3 between rows of x and rows of y."""
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased squared MMD between equally sized samples x and y [m, d]."""
  m = x.shape[0]
  k_xx = _cubic_kernel(x, x)
  k_yy = _cubic_kernel(y, y)
  k_xy = _cubic_kernel(x, y)
  off_diagonal_xx = np.sum(k_xx) - np.trace(k_xx)
  off_diagonal_yy = np.sum(k_yy) - np.trace(k_yy)
  return float((off_diagonal_xx + off_diagonal_yy) / (m * (m - 1))
               - 2.0 * np.mean(k_xy))


def kernel_inception_distance(activations1: np.ndarray,
                              activations2: np.ndarray,
                              num_subsets: int = 100,
                              max_subset_size: int = 1000,
                              seed: int = 0) -> Tuple[float, float]:
  """Kernel Inception Distance: unbiased polynomial-kernel MMD^2 in subsets.

  Each of `num_subsets` rounds draws m = min(N1, N2, max_subset_size) rows
  without replacement from each set and computes the unbiased MMD^2 estimate
  with the kernel ``(x.y / d + 1)^3``. The estimate is unbiased, so it can be
  slightly negative when both sets come from one distribution.

  Args:
    activations1: [N1, D] activations.
    activations2: [N2, D] activations.
    num_subsets: number of random subsets averaged.
    max_subset_size: largest subset size.
    seed: seed of the subset sampler, for reproducible values.

  Returns:
    (mean, std) of the per-subset MMD^2 estimates.

  Raises:
    ValueError: on mismatched dimensions or fewer than 2 rows per subset.
  """
  activations1, activations2 = _paired_activations(activations1,
                                                   activations2)
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be >= 1; received {num_subsets}.")
  subset_size = min(activations1.shape[0], activations2.shape[0],
                    max_subset_size)
  if subset_size < 2:
    raise ValueError(
        "KID needs subsets of at least 2 samples; received set sizes "
        f"{activations1.shape[0]} and {activations2.shape[0]} with "
        f"max_subset_size={max_subset_size}.")
  rng = np.random.default_rng(seed)
  estimates = []
  for _ in range(num_subsets):
    subset1 = activations1[rng.choice(
        activations1.shape[0], subset_size, replace=False)]
    subset2 = activations2[rng.choice(
        activations2.shape[0], subset_size, replace=False)]
    estimates.append(_unbiased_mmd2(subset1, subset2))
  return float(np.mean(estimates)), float(np.std(estimates))


@dataclasses.dataclass(frozen=True)
class ReferenceStatistics:
  """Gaussian statistics of a reference set's activations, for FID.

  Attributes:
    mu: [D] mean activation.
    sigma: [D, D] covariance of the activations.
    count: number of samples the statistics were computed from.
    description: what they were computed on, e.g.
      "imagenet2012/train/tfgan_inception_pool_3"; checked when loading.
  """
  mu: np.ndarray
  sigma: np.ndarray
  count: int
  description: str

  @classmethod
  def from_activations(cls, activations: np.ndarray,
                       description: str) -> "ReferenceStatistics":
    """Computes the statistics of `activations` [N, D]."""
    mu, sigma = activation_statistics(activations)
    return cls(mu=mu, sigma=sigma, count=int(np.shape(activations)[0]),
               description=description)


def fid_against_statistics(activations: np.ndarray,
                           reference: ReferenceStatistics) -> float:
  """FID between `activations` [N, D] and cached reference statistics."""
  mu, sigma = activation_statistics(activations)
  return frechet_distance(mu, sigma, reference.mu, reference.sigma)


def save_statistics(path: str, statistics: ReferenceStatistics) -> None:
  """Writes reference statistics to an .npz file (local or tf.io.gfile path).

  Args:
    path: destination file name; parent directories are created.
    statistics: the statistics to write.
  """
  parent = path.rsplit("/", 1)[0] if "/" in path else ""
  if parent:
    tf.io.gfile.makedirs(parent)
  # np.savez seeks in its output, which GFile does not support: use a buffer.
  buffer = io.BytesIO()
  np.savez(buffer, mu=np.asarray(statistics.mu, dtype=np.float64),
           sigma=np.asarray(statistics.sigma, dtype=np.float64),
           count=np.int64(statistics.count),
           description=np.array(statistics.description))
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())


def load_statistics(
    path: str,
    expected_description: Optional[str] = None) -> ReferenceStatistics:
  """Reads reference statistics written by `save_statistics`.

  Args:
    path: the .npz file.
    expected_description: if given, the description stored in the file must
      equal it, so that statistics of another dataset, split or feature
      extractor are never used by mistake.

  Returns:
    The stored `ReferenceStatistics`.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file lacks a field or its description differs from
      `expected_description`.
  """
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"No statistics file at {path!r}.")
  with tf.io.gfile.GFile(path, "rb") as f:
    buffer = io.BytesIO(f.read())
  with np.load(buffer, allow_pickle=False) as data:
    missing = {"mu", "sigma", "count", "description"} - set(data.files)
    if missing:
      raise ValueError(
          f"Statistics file {path!r} lacks fields {sorted(missing)}; found "
          f"{sorted(data.files)}.")
    statistics = ReferenceStatistics(
        mu=data["mu"], sigma=data["sigma"], count=int(data["count"]),
        description=str(data["description"]))
  if (expected_description is not None and
      statistics.description != expected_description):
    raise ValueError(
        f"Statistics file {path!r} was computed for "
        f"{statistics.description!r}, expected {expected_description!r}.")
  return statistics
