"""Linear and nearest-neighbour evaluation of frozen encoder features.

BigBiGAN's representation metric (paper, section 3 and Appendix A): a linear
softmax classifier trained on frozen encoder features, zero-initialised,
learning rate 0.01, evaluated with an exponential moving average (0.9999) of
its weights, reset to zero before every run. Two feature types:

* "avepool": the encoder's global-average-pooled features, as given.
* "bn_crelu": parameter-free batch normalisation of the avepool features with
  the training set's mean and variance, then CReLU, [relu(h), relu(-h)],
  which doubles the width.

The optimiser is not stated in the paper; the default here is SGD with
momentum 0.9 ("momentum"), with Adam (beta1 0.9, beta2 0.999) available as
"adam". Minibatches are drawn uniformly with replacement.

`knn_accuracy` gives the "zero-shot" k-nearest-neighbour top-1 accuracy.
Inputs are NumPy arrays, so these functions work with any encoder. Both are
gin-configurable as `linear_probe` and `knn_accuracy`, e.g.
`linear_probe.num_steps = 100000`, `linear_probe.feature_type = "bn_crelu"`.
"""

import dataclasses
from typing import Optional, Tuple

import gin
import numpy as np
import tensorflow as tf

FEATURE_TYPES = ("avepool", "bn_crelu")
OPTIMIZERS = ("momentum", "adam")
METRICS = ("cosine", "euclidean")

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPSILON = 1e-8
# Rows of test features scored at once, to bound memory for 1000 classes.
_EVAL_CHUNK = 8192


def feature_moments(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Per-dimension mean and (biased) variance of features [N, D]."""
  features = np.asarray(features, np.float64)
  return features.mean(axis=0), features.var(axis=0)


def bn_crelu(features: np.ndarray,
             mean: np.ndarray,
             variance: np.ndarray,
             epsilon: float = 1e-5) -> np.ndarray:
  """BN+CReLU features from avepool features and (training-set) moments.

  Args:
    features: [N, D] avepool features.
    mean: [D] mean used for normalisation (of the training set).
    variance: [D] variance used for normalisation (of the training set).
    epsilon: added to the variance.

  Returns:
    float32 [N, 2D]: concat([relu(h), relu(-h)]) with
    h = (features - mean) / sqrt(variance + epsilon).

  Raises:
    ValueError: if the shapes of the moments do not match the features.
  """
  features = np.asarray(features, np.float64)
  mean = np.asarray(mean, np.float64)
  variance = np.asarray(variance, np.float64)
  if features.ndim != 2:
    raise ValueError(
        f"features must be [N, D]; received shape {features.shape}.")
  expected = (features.shape[1],)
  if mean.shape != expected or variance.shape != expected:
    raise ValueError(
        f"mean and variance must have shape {expected}; received "
        f"{mean.shape} and {variance.shape}.")
  normalized = (features - mean) / np.sqrt(variance + epsilon)
  return np.concatenate(
      [np.maximum(normalized, 0.0), np.maximum(-normalized, 0.0)],
      axis=1).astype(np.float32)


def _check_split(features: np.ndarray, labels: np.ndarray,
                 name: str) -> Tuple[np.ndarray, np.ndarray]:
  """Validates one split: 2-D features and matching integer labels."""
  features = np.asarray(features)
  labels = np.asarray(labels)
  if features.ndim != 2:
    raise ValueError(
        f"{name}_features must be [N, D]; received shape {features.shape}.")
  if labels.shape != (features.shape[0],):
    raise ValueError(
        f"{name}_labels must have shape ({features.shape[0]},) to match "
        f"{name}_features; received {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(
        f"{name}_labels must be integers; received dtype {labels.dtype}.")
  if labels.size and labels.min() < 0:
    raise ValueError(f"{name}_labels must be >= 0; found {labels.min()}.")
  return features, labels


def _check_splits(train_features, train_labels, test_features, test_labels):
  """Validates both splits and their agreement; returns them as arrays."""
  train_features, train_labels = _check_split(
      train_features, train_labels, "train")
  test_features, test_labels = _check_split(test_features, test_labels, "test")
  if train_features.shape[1] != test_features.shape[1]:
    raise ValueError(
        "Train and test features must have the same dimension; received "
        f"{train_features.shape[1]} and {test_features.shape[1]}.")
  if train_features.shape[0] == 0 or test_features.shape[0] == 0:
    raise ValueError(
        "Both splits need at least one example; received "
        f"{train_features.shape[0]} train and {test_features.shape[0]} test.")
  return train_features, train_labels, test_features, test_labels


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of rows whose label is among the k largest logits.

  Equal logits are ranked by class index (lower first), so all-zero logits
  predict class 0 for top-1 and classes 0..k-1 for top-k.

  Args:
    logits: [N, C] scores.
    labels: [N] integer labels.
    k: how many top classes count as correct.

  Returns:
    The accuracy in [0, 1].
  """
  k = min(k, logits.shape[1])
  top_classes = np.argsort(-logits, axis=1, kind="stable")[:, :k]
  return float(np.mean(np.any(top_classes == labels[:, None], axis=1)))


@dataclasses.dataclass(frozen=True)
class LinearProbeResult:
  """Outcome of one linear-probe run.

  Attributes:
    top1: top-1 accuracy on the test split with the EMA weights.
    top5: top-5 accuracy on the test split with the EMA weights.
    train_top1: top-1 accuracy on the training split with the EMA weights.
    final_loss: training cross-entropy of the last minibatch (raw weights).
    weights: [D', C] EMA weights (D' = 2D for "bn_crelu").
    bias: [C] EMA bias.
  """
  top1: float
  top5: float
  train_top1: float
  final_loss: float
  weights: np.ndarray
  bias: np.ndarray


def _evaluate(features: np.ndarray, labels: np.ndarray, weights: np.ndarray,
              bias: np.ndarray) -> Tuple[float, float]:
  """Top-1 and top-5 accuracies of the linear classifier, in chunks."""
  top1_hits = top5_hits = 0.0
  for start in range(0, features.shape[0], _EVAL_CHUNK):
    chunk = slice(start, start + _EVAL_CHUNK)
    logits = features[chunk].astype(np.float64) @ weights + bias
    count = logits.shape[0]
    top1_hits += top_k_accuracy(logits, labels[chunk], 1) * count
    top5_hits += top_k_accuracy(logits, labels[chunk], 5) * count
  return top1_hits / features.shape[0], top5_hits / features.shape[0]


@gin.configurable("linear_probe")
def linear_probe(train_features: np.ndarray,
                 train_labels: np.ndarray,
                 test_features: np.ndarray,
                 test_labels: np.ndarray,
                 num_classes: Optional[int] = None,
                 feature_type: str = "avepool",
                 num_steps: int = 10000,
                 batch_size: int = 256,
                 learning_rate: float = 0.01,
                 optimizer: str = "momentum",
                 momentum: float = 0.9,
                 ema_decay: float = 0.9999,
                 ema_warmup: bool = True,
                 weight_decay: float = 0.0,
                 steps_per_loop: int = 1000,
                 seed: int = 0) -> LinearProbeResult:
  """Trains a zero-initialised softmax classifier on frozen features.

  Every call starts from zero weights and fresh optimiser and EMA state.

  Args:
    train_features: [N, D] avepool features of the training split.
    train_labels: [N] integer labels.
    test_features: [M, D] avepool features of the held-out split.
    test_labels: [M] integer labels.
    num_classes: number of classes; defaults to 1 + the largest label.
    feature_type: "avepool" (features as given) or "bn_crelu" (BN with the
      training split's moments, then CReLU; doubles the width).
    num_steps: optimisation steps; 0 evaluates the zero classifier.
    batch_size: examples per step, drawn uniformly with replacement.
    learning_rate: step size (paper: 0.01).
    optimizer: "momentum" (SGD with `momentum`) or "adam".
    momentum: momentum coefficient of "momentum".
    ema_decay: decay of the weight EMA used for evaluation (paper: 0.9999).
    ema_warmup: if True the decay at update t is min(ema_decay,
      (1 + t) / (10 + t)), so that the EMA follows the recent weights in short
      runs instead of staying near the zero initialisation.
    weight_decay: L2 coefficient (0.5 * weight_decay * |W|^2 in the loss).
    steps_per_loop: steps run inside one compiled loop between Python calls.
    seed: seed of the minibatch sampler.

  Returns:
    A `LinearProbeResult`.

  Raises:
    ValueError: on malformed inputs or unknown option values.
  """
  train_features, train_labels, test_features, test_labels = _check_splits(
      train_features, train_labels, test_features, test_labels)
  if feature_type not in FEATURE_TYPES:
    raise ValueError(
        f"feature_type must be one of {FEATURE_TYPES}; received "
        f"{feature_type!r}.")
  if optimizer not in OPTIMIZERS:
    raise ValueError(
        f"optimizer must be one of {OPTIMIZERS}; received {optimizer!r}.")
  if num_steps < 0 or batch_size < 1 or steps_per_loop < 1:
    raise ValueError(
        "Expected num_steps >= 0, batch_size >= 1 and steps_per_loop >= 1; "
        f"received {num_steps}, {batch_size} and {steps_per_loop}.")
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay must be in [0, 1); received {ema_decay}.")
  largest_label = int(max(train_labels.max(), test_labels.max()))
  if num_classes is None:
    num_classes = largest_label + 1
  elif largest_label >= num_classes:
    raise ValueError(
        f"Labels must be < num_classes={num_classes}; found {largest_label}.")

  if feature_type == "bn_crelu":
    mean, variance = feature_moments(train_features)
    train_features = bn_crelu(train_features, mean, variance)
    test_features = bn_crelu(test_features, mean, variance)
  train_features = np.asarray(train_features, np.float32)
  num_examples, dim = train_features.shape

  features = tf.constant(train_features)
  labels = tf.constant(train_labels, tf.int32)
  weights = tf.Variable(tf.zeros((dim, num_classes)))
  bias = tf.Variable(tf.zeros((num_classes,)))
  params = (weights, bias)
  ema_params = tuple(tf.Variable(tf.zeros_like(p)) for p in params)
  first_moments = tuple(tf.Variable(tf.zeros_like(p)) for p in params)
  second_moments = tuple(tf.Variable(tf.zeros_like(p)) for p in params)
  step = tf.Variable(0, dtype=tf.int64)
  sampler = tf.random.Generator.from_seed(seed)

  def train_step() -> tf.Tensor:
    indices = sampler.uniform((batch_size,), 0, num_examples, dtype=tf.int64)
    batch_features = tf.gather(features, indices)
    batch_labels = tf.gather(labels, indices)
    with tf.GradientTape() as tape:
      logits = tf.matmul(batch_features, weights) + bias
      loss = tf.reduce_mean(
          tf.nn.sparse_softmax_cross_entropy_with_logits(batch_labels, logits))
      if weight_decay:
        loss += 0.5 * weight_decay * tf.reduce_sum(tf.square(weights))
    gradients = tape.gradient(loss, params)
    step.assign_add(1)
    t = tf.cast(step, tf.float32)
    for param, grad, m1, m2 in zip(params, gradients, first_moments,
                                   second_moments):
      if optimizer == "momentum":
        m1.assign(momentum * m1 + grad)
        param.assign_sub(learning_rate * m1)
      else:
        m1.assign(_ADAM_BETA1 * m1 + (1.0 - _ADAM_BETA1) * grad)
        m2.assign(_ADAM_BETA2 * m2 + (1.0 - _ADAM_BETA2) * tf.square(grad))
        m1_hat = m1 / (1.0 - tf.pow(_ADAM_BETA1, t))
        m2_hat = m2 / (1.0 - tf.pow(_ADAM_BETA2, t))
        param.assign_sub(
            learning_rate * m1_hat / (tf.sqrt(m2_hat) + _ADAM_EPSILON))
    decay = tf.constant(ema_decay, tf.float32)
    if ema_warmup:
      decay = tf.minimum(decay, (1.0 + t) / (10.0 + t))
    for ema_param, param in zip(ema_params, params):
      ema_param.assign(decay * ema_param + (1.0 - decay) * param)
    return loss

  @tf.function
  def train_loop(num: tf.Tensor) -> tf.Tensor:
    loss = tf.constant(np.nan, tf.float32)
    for _ in tf.range(num):
      loss = train_step()
    return loss

  final_loss = float("nan")
  remaining = num_steps
  while remaining > 0:
    num = min(remaining, steps_per_loop)
    final_loss = float(train_loop(tf.constant(num)))
    remaining -= num

  ema_weights = ema_params[0].numpy().astype(np.float64)
  ema_bias = ema_params[1].numpy().astype(np.float64)
  top1, top5 = _evaluate(test_features, test_labels, ema_weights, ema_bias)
  train_top1, _ = _evaluate(train_features, train_labels, ema_weights,
                            ema_bias)
  return LinearProbeResult(top1=top1, top5=top5, train_top1=train_top1,
                           final_loss=final_loss, weights=ema_weights,
                           bias=ema_bias)


def _pairwise_distances(queries: np.ndarray, keys: np.ndarray,
                        metric: str) -> np.ndarray:
  """Distances [Q, K] between rows; keys are pre-normalised for "cosine"."""
  if metric == "cosine":
    norms = np.linalg.norm(queries, axis=1, keepdims=True)
    queries = queries / np.maximum(norms, 1e-12)
    return 1.0 - queries @ keys.T
  squared = (np.sum(queries ** 2, axis=1, keepdims=True)
             - 2.0 * queries @ keys.T + np.sum(keys ** 2, axis=1)[None, :])
  return np.sqrt(np.maximum(squared, 0.0))


@gin.configurable("knn_accuracy")
def knn_accuracy(train_features: np.ndarray,
                 train_labels: np.ndarray,
                 test_features: np.ndarray,
                 test_labels: np.ndarray,
                 k: int = 20,
                 metric: str = "cosine",
                 batch_size: int = 1024) -> float:
  """Top-1 accuracy of a k-nearest-neighbour majority vote.

  Neighbours are ordered by distance, then by training index. The predicted
  class is the one with most votes among the k nearest; a tie between classes
  goes to the tied class whose nearest member is closest.

  Args:
    train_features: [N, D] features of the labelled set.
    train_labels: [N] integer labels.
    test_features: [M, D] features to classify.
    test_labels: [M] integer labels.
    k: number of neighbours, 1 <= k <= N.
    metric: "cosine" (1 - cosine similarity) or "euclidean".
    batch_size: test rows processed at once.

  Returns:
    The top-1 accuracy in [0, 1].

  Raises:
    ValueError: on malformed inputs, k out of range or an unknown metric.
  """
  train_features, train_labels, test_features, test_labels = _check_splits(
      train_features, train_labels, test_features, test_labels)
  if metric not in METRICS:
    raise ValueError(f"metric must be one of {METRICS}; received {metric!r}.")
  num_train = train_features.shape[0]
  if not 1 <= k <= num_train:
    raise ValueError(
        f"k must be in [1, {num_train}] (the training set size); received {k}.")
  keys = np.asarray(train_features, np.float64)
  if metric == "cosine":
    keys = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1

  correct = 0
  for start in range(0, test_features.shape[0], batch_size):
    queries = np.asarray(test_features[start:start + batch_size], np.float64)
    distances = _pairwise_distances(queries, keys, metric)
    rows = np.arange(queries.shape[0])[:, None]
    if k < num_train:
      candidates = np.sort(
          np.argpartition(distances, k - 1, axis=1)[:, :k], axis=1)
    else:
      candidates = np.broadcast_to(np.arange(num_train),
                                   (queries.shape[0], num_train))
    # Stable sort by distance keeps ascending training index among equals.
    order = np.argsort(distances[rows, candidates], axis=1, kind="stable")
    neighbour_labels = train_labels[candidates[rows, order]]
    votes = np.zeros((queries.shape[0], num_classes), np.int64)
    np.add.at(votes, (np.broadcast_to(rows, neighbour_labels.shape),
                      neighbour_labels), 1)
    tied = votes == votes.max(axis=1, keepdims=True)
    first_tied_neighbour = np.argmax(tied[rows, neighbour_labels], axis=1)
    predictions = neighbour_labels[rows[:, 0], first_tied_neighbour]
    correct += int(np.sum(predictions == test_labels[start:start + batch_size]))
  return correct / test_features.shape[0]
