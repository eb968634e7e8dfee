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

`knn_accuracy` gives the "zero-shot" k-nearest-neighbour top-1 accuracy;
`effective_rank` how many directions the features spread over (a measure of
representation collapse).
Inputs are NumPy arrays, so these functions work with any encoder. The
first two are gin-configurable as `linear_probe` and `knn_accuracy`, e.g.
`linear_probe.num_steps = 100000`, `linear_probe.feature_type = "bn_crelu"`.

Bounded memory. Features may be any "feature source": an object with
`shape` ([N, D]) and NumPy indexing by a slice or by an integer array of row
indices, such as an in-memory array or a disk-backed `np.memmap` of an
ImageNet split (evaluation.feature_store). These functions read at most
`rows_per_chunk` (linear probe) or `batch_size` / `key_batch_size` (kNN) rows
of a source at once; labels ([N] integers) are held in memory. In-memory
arrays and memmaps go through the same code, so they give the same figures.
"""

import collections
import dataclasses
from typing import Callable, Optional, Protocol, Tuple, Union

import gin
import numpy as np
import tensorflow as tf

from bigbigan_tf.networks import common

FEATURE_TYPES = ("avepool", "bn_crelu")
OPTIMIZERS = ("momentum", "adam")
METRICS = ("cosine", "euclidean")

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPSILON = 1e-8
# Rows of a feature source read at once (moments, minibatch blocks, scoring):
# 8192 x 2048 AvePool features of ResNet-50 are 64 MB in float32.
DEFAULT_ROWS_PER_CHUNK = 8192


class FeatureSource(Protocol):
  """Rows of features [N, D] readable in parts (np.ndarray, np.memmap, ...).

  Indexing takes a slice or a sorted 1-D integer array of row indices and
  returns the rows as a NumPy array.
  """

  @property
  def shape(self) -> Tuple[int, ...]:
    ...

  def __getitem__(self, index) -> np.ndarray:
    ...


Features = Union[np.ndarray, FeatureSource]


def _as_source(features, name: str):
  """Arrays and other feature sources stay as they are (no copy, no read of
  a memmap); anything else (lists, tf.Tensors) becomes an array."""
  if isinstance(features, np.ndarray) or (
      not isinstance(features, tf.Tensor) and hasattr(features, "shape") and
      hasattr(features, "__getitem__")):
    shape = tuple(features.shape)
  else:
    features = np.asarray(features)
    shape = features.shape
  if len(shape) != 2:
    raise ValueError(f"{name} must be [N, D]; received shape {shape}.")
  return features


def _chunks(num_rows: int, rows_per_chunk: int):
  for start in range(0, num_rows, rows_per_chunk):
    yield slice(start, min(start + rows_per_chunk, num_rows))


def feature_moments(
    features: Features,
    rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK
) -> Tuple[np.ndarray, np.ndarray]:
  """Per-dimension mean and (biased) variance of features [N, D].

  One streamed pass over chunks of `rows_per_chunk` rows with float64
  accumulators, merged by Chan et al.'s pairwise update (numerically stable,
  unlike sum-of-squares). With N <= rows_per_chunk this is exactly
  `features.mean(0)` and `features.var(0)` in float64.

  Raises:
    ValueError: features not [N, D], or no rows.
  """
  features = _as_source(features, "features")
  common.check_int(rows_per_chunk, "rows_per_chunk")
  num_rows, dim = features.shape
  if num_rows == 0:
    raise ValueError("feature_moments needs at least one row; received 0.")
  count = 0
  mean = np.zeros(dim, np.float64)
  sum_squares = np.zeros(dim, np.float64)  # Of deviations from the mean.
  for chunk in _chunks(num_rows, rows_per_chunk):
    rows = np.asarray(features[chunk], np.float64)
    chunk_count = rows.shape[0]
    chunk_mean = rows.sum(axis=0) / chunk_count
    chunk_sum_squares = np.square(rows - chunk_mean).sum(axis=0)
    if count == 0:
      mean, sum_squares = chunk_mean, chunk_sum_squares
    else:
      total = count + chunk_count
      delta = chunk_mean - mean
      mean = mean + delta * (chunk_count / total)
      sum_squares = (sum_squares + chunk_sum_squares +
                     np.square(delta) * (count * chunk_count / total))
    count += chunk_count
  return mean, sum_squares / count


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


def _check_split(features: Features, labels: np.ndarray,
                 name: str) -> Tuple[Features, np.ndarray]:
  """Validates one split: 2-D features and matching integer labels."""
  features = _as_source(features, f"{name}_features")
  labels = np.asarray(labels)
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


# Maps rows [n, D] read from a feature source to the classifier's inputs.
RowTransform = Callable[[np.ndarray], np.ndarray]


def _evaluate(features: Features, labels: np.ndarray, transform: RowTransform,
              weights: np.ndarray, bias: np.ndarray,
              rows_per_chunk: int) -> Tuple[float, float]:
  """Top-1 and top-5 accuracies of the linear classifier, in chunks."""
  top1_hits = top5_hits = 0.0
  num_rows = features.shape[0]
  for chunk in _chunks(num_rows, rows_per_chunk):
    logits = transform(features[chunk]).astype(np.float64) @ weights + bias
    count = logits.shape[0]
    top1_hits += top_k_accuracy(logits, labels[chunk], 1) * count
    top5_hits += top_k_accuracy(logits, labels[chunk], 5) * count
  return top1_hits / num_rows, top5_hits / num_rows


def _gather_rows(features: Features, indices: np.ndarray,
                 transform: RowTransform) -> Tuple[np.ndarray, np.ndarray]:
  """float32 transform(rows) of the distinct rows among `indices`, read once
  each in ascending order (sequential reads from a memmap), and the
  positions of `indices` among them."""
  unique, positions = np.unique(indices, return_inverse=True)
  rows = np.asarray(transform(features[unique]), np.float32)
  return rows, positions.reshape(indices.shape).astype(np.int32)


class _ProbeProgram:
  """The probe's variables and compiled functions for one configuration.

  Built once per configuration (see `_probe_program`) and reset to zero
  weights, optimiser and EMA state and a freshly seeded sampler before each
  run, so repeated probes (the encoder, the random encoder, every
  evaluation during training) trace their functions once.
  """

  def __init__(self, dim: int, num_classes: int, num_examples: int,
               batch_size: int, optimizer: str, learning_rate: float,
               momentum: float, ema_decay: float, ema_warmup: bool,
               weight_decay: float):
    weights = tf.Variable(tf.zeros((dim, num_classes)))
    bias = tf.Variable(tf.zeros((num_classes,)))
    params = (weights, bias)
    ema_params = tuple(tf.Variable(tf.zeros_like(p)) for p in params)
    first_moments = tuple(tf.Variable(tf.zeros_like(p)) for p in params)
    second_moments = tuple(tf.Variable(tf.zeros_like(p)) for p in params)
    step = tf.Variable(0, dtype=tf.int64)
    sampler = tf.random.Generator.from_seed(0)
    self.ema_params = ema_params
    self._sampler = sampler
    self._state = params + ema_params + first_moments + second_moments + (
        step,)

    def train_step(batch_features: tf.Tensor,
                   batch_labels: tf.Tensor) -> tf.Tensor:
      with tf.GradientTape() as tape:
        logits = tf.matmul(batch_features, weights) + bias
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            batch_labels, logits))
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

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32)])
    def draw_indices(num: tf.Tensor) -> tf.Tensor:
      """[num, batch_size] row indices, one draw of the sampler per step."""
      draws = tf.TensorArray(tf.int64, size=num)
      for i in tf.range(num):
        draws = draws.write(
            i, sampler.uniform((batch_size,), 0, num_examples, dtype=tf.int64))
      return draws.stack()

    @tf.function(input_signature=[
        tf.TensorSpec([None, dim], tf.float32),
        tf.TensorSpec([None, batch_size], tf.int32),
        tf.TensorSpec([None, batch_size], tf.int32)])
    def train_loop(block_rows: tf.Tensor, block_positions: tf.Tensor,
                   block_labels: tf.Tensor) -> tf.Tensor:
      """Steps over minibatches given as positions in block_rows."""
      loss = tf.constant(np.nan, tf.float32)
      for i in tf.range(tf.shape(block_labels)[0]):
        loss = train_step(tf.gather(block_rows, block_positions[i]),
                          block_labels[i])
      return loss

    self.draw_indices = draw_indices
    self.train_loop = train_loop

  def reset(self, seed: int) -> None:
    """Zero weights, optimiser and EMA state and step; sampler from seed."""
    for variable in self._state:
      variable.assign(tf.zeros_like(variable))
    self._sampler.reset_from_seed(seed)


# Most recently used probe programs, keyed by configuration and strategy.
_PROGRAMS: "collections.OrderedDict[tuple, _ProbeProgram]" = (
    collections.OrderedDict())
_MAX_PROGRAMS = 8


def _probe_program(*config) -> _ProbeProgram:
  """The cached `_ProbeProgram` of a configuration (built if new)."""
  key = (tf.distribute.get_strategy(),) + tuple(config)
  program = _PROGRAMS.pop(key, None)
  if program is None:
    program = _ProbeProgram(*config)
  _PROGRAMS[key] = program
  while len(_PROGRAMS) > _MAX_PROGRAMS:
    _PROGRAMS.popitem(last=False)
  return program


def _checked_probe_options(train_labels, test_labels, num_classes,
                           feature_type, optimizer, num_steps, batch_size,
                           steps_per_loop, rows_per_chunk, ema_decay) -> int:
  """Validates linear_probe's options; returns the number of classes."""
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
  common.check_int(rows_per_chunk, "rows_per_chunk")
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay must be in [0, 1); received {ema_decay}.")
  largest_label = int(max(train_labels.max(), test_labels.max()))
  if num_classes is None:
    return largest_label + 1
  if largest_label >= num_classes:
    raise ValueError(
        f"Labels must be < num_classes={num_classes}; found {largest_label}.")
  return num_classes


def _feature_transform(train_features, feature_type: str,
                       rows_per_chunk: int) -> Tuple[Callable, int]:
  """The map from stored feature rows to the probe's inputs, and its width:
  the identity for AvePool, BN (training-split moments) + CReLU otherwise."""
  dim = train_features.shape[1]
  if feature_type != "bn_crelu":
    return np.asarray, dim
  mean, variance = feature_moments(train_features, rows_per_chunk)
  return (lambda rows: bn_crelu(rows, mean, variance)), 2 * dim


def _train_probe(program, train_features, train_labels, transform,
                 num_steps: int, steps_per_call: int) -> float:
  """Runs `num_steps` probe updates in compiled loops of at most
  `steps_per_call` steps; returns the last loop's loss (nan for no steps)."""
  final_loss = float("nan")
  remaining = num_steps
  while remaining > 0:
    num = min(remaining, steps_per_call)
    indices = program.draw_indices(tf.constant(num, tf.int32)).numpy()
    rows, positions = _gather_rows(train_features, indices, transform)
    final_loss = float(program.train_loop(
        rows, positions, train_labels[indices].astype(np.int32)))
    remaining -= num
  return final_loss


@gin.configurable("linear_probe")
def linear_probe(train_features: Features,
                 train_labels: np.ndarray,
                 test_features: Features,
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
                 seed: int = 0,
                 rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK
                ) -> LinearProbeResult:
  """Trains a zero-initialised softmax classifier on frozen features.

  Every call starts from zero weights and fresh optimiser and EMA state.
  Features are read in parts (see the module docstring), so they may be
  disk-backed memmaps larger than memory: the BN moments come from a streamed
  pass, each compiled loop receives the distinct rows of its minibatches (at
  most `rows_per_chunk`, read from the source on the host), and accuracies
  are computed over chunks. The minibatch indices are drawn by the same
  seeded generator, one step at a time, whatever the chunking.

  Args:
    train_features: [N, D] avepool features of the training split (an array
      or another feature source).
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
    steps_per_loop: at most this many steps run inside one compiled loop
      between Python calls.
    seed: seed of the minibatch sampler.
    rows_per_chunk: most feature rows read from a source (and held, after
      the BN+CReLU transform) at once, or batch_size if larger; when the
      training split is larger than this a compiled loop runs at most
      rows_per_chunk // batch_size steps. Changes the result only through
      the rounding of the BN moments merged over chunks (float64).

  Returns:
    A `LinearProbeResult`.

  Raises:
    ValueError: on malformed inputs or unknown option values.
  """
  train_features, train_labels, test_features, test_labels = _check_splits(
      train_features, train_labels, test_features, test_labels)
  num_classes = _checked_probe_options(
      train_labels, test_labels, num_classes, feature_type, optimizer,
      num_steps, batch_size, steps_per_loop, rows_per_chunk, ema_decay)
  num_examples = train_features.shape[0]
  transform, dim = _feature_transform(train_features, feature_type,
                                      rows_per_chunk)
  as_float32 = lambda rows: np.asarray(transform(rows), np.float32)

  program = _probe_program(dim, num_classes, num_examples, batch_size,
                           optimizer, learning_rate, momentum, ema_decay,
                           ema_warmup, weight_decay)
  program.reset(seed)
  # A compiled loop reads at most rows_per_chunk distinct rows.
  steps_per_call = steps_per_loop if num_examples <= rows_per_chunk else max(
      1, min(steps_per_loop, rows_per_chunk // batch_size))
  final_loss = _train_probe(program, train_features, train_labels, transform,
                            num_steps, steps_per_call)
  ema_params = program.ema_params

  ema_weights = ema_params[0].numpy().astype(np.float64)
  ema_bias = ema_params[1].numpy().astype(np.float64)
  top1, top5 = _evaluate(test_features, test_labels, transform, ema_weights,
                         ema_bias, rows_per_chunk)
  train_top1, _ = _evaluate(train_features, train_labels, as_float32,
                            ema_weights, ema_bias, rows_per_chunk)
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


def _nearest(distances: np.ndarray, k: int) -> np.ndarray:
  """Columns of the k smallest distances per row, ordered by (distance,
  column); exact on ties (the lower column wins)."""
  num_columns = distances.shape[1]
  if k >= num_columns:
    return np.argsort(distances, axis=1, kind="stable")
  candidates = np.argpartition(distances, k - 1, axis=1)[:, :k]
  # argpartition may keep a later column among ties at the k-th distance;
  # rows where some tie was left out are redone with a full stable sort.
  kept = np.take_along_axis(distances, candidates, axis=1)
  boundary = kept.max(axis=1, keepdims=True)
  ties_left_out = (np.sum(distances == boundary, axis=1) >
                   np.sum(kept == boundary, axis=1))
  ambiguous = np.nonzero(ties_left_out)[0]
  if ambiguous.size:
    candidates[ambiguous] = np.argsort(distances[ambiguous], axis=1,
                                       kind="stable")[:, :k]
  candidates = np.sort(candidates, axis=1)
  order = np.argsort(np.take_along_axis(distances, candidates, axis=1),
                     axis=1, kind="stable")
  return np.take_along_axis(candidates, order, axis=1)


def _merge_nearest(best_distances: np.ndarray, best_indices: np.ndarray,
                   distances: np.ndarray, indices: np.ndarray,
                   k: int) -> Tuple[np.ndarray, np.ndarray]:
  """The k nearest of two candidate sets, each sorted by (distance, index),
  where every index of the second exceeds every index of the first: a stable
  sort by distance of [first, second] then keeps (distance, index) order."""
  distances = np.concatenate([best_distances, distances], axis=1)
  indices = np.concatenate([best_indices, indices], axis=1)
  order = np.argsort(distances, axis=1, kind="stable")[:, :k]
  return (np.take_along_axis(distances, order, axis=1),
          np.take_along_axis(indices, order, axis=1))


@gin.configurable("knn_accuracy")
def knn_accuracy(train_features: Features,
                 train_labels: np.ndarray,
                 test_features: Features,
                 test_labels: np.ndarray,
                 k: int = 20,
                 metric: str = "cosine",
                 batch_size: int = 1024,
                 key_batch_size: int = 16384) -> float:
  """Top-1 accuracy of a k-nearest-neighbour majority vote.

  Neighbours are ordered by distance, then by training index. The predicted
  class is the one with most votes among the k nearest; a tie between classes
  goes to the tied class whose nearest member is closest.

  Memory is bounded: each chunk of `batch_size` queries is compared with
  chunks of `key_batch_size` training rows in turn, keeping a running top-k,
  so at most batch_size x key_batch_size distances exist at once.

  Args:
    train_features: [N, D] features of the labelled set (array or feature
      source, see the module docstring).
    train_labels: [N] integer labels.
    test_features: [M, D] features to classify.
    test_labels: [M] integer labels.
    k: number of neighbours, 1 <= k <= N.
    metric: "cosine" (1 - cosine similarity) or "euclidean".
    batch_size: test rows processed at once.
    key_batch_size: training rows compared with them at once (changes the
      result only through floating-point rounding of the distances). A
      training set larger than this is read once per chunk of queries.

  Returns:
    The top-1 accuracy in [0, 1].

  Raises:
    ValueError: on malformed inputs, k out of range or an unknown metric.
  """
  train_features, train_labels, test_features, test_labels = _check_splits(
      train_features, train_labels, test_features, test_labels)
  if metric not in METRICS:
    raise ValueError(f"metric must be one of {METRICS}; received {metric!r}.")
  common.check_int(batch_size, "batch_size")
  common.check_int(key_batch_size, "key_batch_size")
  num_train = train_features.shape[0]
  if not 1 <= k <= num_train:
    raise ValueError(
        f"k must be in [1, {num_train}] (the training set size); received {k}.")
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1

  def key_chunk(chunk: slice) -> np.ndarray:
    keys = np.asarray(train_features[chunk], np.float64)
    if metric == "cosine":
      keys = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True),
                               1e-12)
    return keys

  # One key chunk (the whole training set, up to key_batch_size rows) is
  # normalised once; larger sets are re-read for every chunk of queries.
  single_chunk = key_chunk(slice(0, num_train)) if (
      num_train <= key_batch_size) else None
  correct = 0
  for queries_chunk in _chunks(test_features.shape[0], batch_size):
    queries = np.asarray(test_features[queries_chunk], np.float64)
    best_distances = np.zeros((queries.shape[0], 0))
    best_indices = np.zeros((queries.shape[0], 0), np.int64)
    for chunk in _chunks(num_train, key_batch_size):
      keys = single_chunk if single_chunk is not None else key_chunk(chunk)
      distances = _pairwise_distances(queries, keys, metric)
      nearest = _nearest(distances, k)
      best_distances, best_indices = _merge_nearest(
          best_distances, best_indices,
          np.take_along_axis(distances, nearest, axis=1),
          nearest + chunk.start, k)
    rows = np.arange(queries.shape[0])[:, None]
    neighbour_labels = train_labels[best_indices]
    votes = np.zeros((queries.shape[0], num_classes), np.int64)
    np.add.at(votes, (np.broadcast_to(rows, neighbour_labels.shape),
                      neighbour_labels), 1)
    tied = votes == votes.max(axis=1, keepdims=True)
    first_tied_neighbour = np.argmax(tied[rows, neighbour_labels], axis=1)
    predictions = neighbour_labels[rows[:, 0], first_tied_neighbour]
    correct += int(np.sum(predictions == test_labels[queries_chunk]))
  return correct / test_features.shape[0]


class _FirstRows:
  """The first `num_rows` rows of a feature source, read by slices."""

  def __init__(self, features: Features, num_rows: int):
    self._features = features
    self.shape = (num_rows, features.shape[1])

  def __getitem__(self, rows: slice) -> np.ndarray:
    return np.asarray(self._features[rows])


def effective_rank(features: Features,
                   max_rows: Optional[int] = 10_000,
                   rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
                   relative_tolerance: float = 1e-6) -> float:
  """How many directions the features spread over (participation ratio).

  With C the correlation matrix of the feature dimensions that vary (standard
  deviation above `relative_tolerance` times the largest) and lambda_i its
  eigenvalues, the effective rank is (sum lambda_i)^2 / sum lambda_i^2 =
  trace(C)^2 / ||C||_F^2: D' for D' uncorrelated varying dimensions, k when
  they fall into k groups of perfectly correlated ones, 0 when nothing
  varies. Constant dimensions (dead ReLUs) do not count. A collapsed
  representation (most variance in a few directions) scores far below its
  width even when every dimension varies.

  Args:
    features: [N, D] features (array or feature source, see the module
      docstring).
    max_rows: use only the first this-many rows (None: all). Cost is
      max_rows x D^2 multiply-adds and a D x D float64 accumulator.
    rows_per_chunk: rows read at once.
    relative_tolerance: dimensions whose standard deviation is at most this
      times the largest one count as constant.

  Returns:
    The effective rank, between 0 and the number of varying dimensions.

  Raises:
    ValueError: features not [N, D], fewer than 2 rows, or a bad max_rows.
  """
  features = _as_source(features, "features")
  common.check_int(rows_per_chunk, "rows_per_chunk")
  common.check_int(max_rows, "max_rows", minimum=2, allow_none=True)
  num_rows = features.shape[0] if max_rows is None else min(
      features.shape[0], max_rows)
  if num_rows < 2:
    raise ValueError("effective_rank needs at least 2 rows of features; "
                     f"received {num_rows}.")
  head = _FirstRows(features, num_rows)
  mean, variance = feature_moments(head, rows_per_chunk)
  stdev = np.sqrt(variance)
  varying = stdev > relative_tolerance * stdev.max()
  if not varying.any():
    return 0.0
  scale = stdev[varying]
  products = np.zeros((scale.size, scale.size), np.float64)
  for chunk in _chunks(num_rows, rows_per_chunk):
    standardized = (np.asarray(head[chunk], np.float64)[:, varying] -
                    mean[varying]) / scale
    products += standardized.T @ standardized
  correlation = products / num_rows
  return float(np.trace(correlation)**2 / np.sum(np.square(correlation)))
