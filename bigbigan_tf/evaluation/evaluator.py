"""Evaluation of a trained encoder and generator (docs/design.md section 5).

`evaluate_model(model, ...)` measures a BigBiGAN (its encoder and generator
as given, e.g. EMA weights with standing statistics):
  * linear probe on frozen E features (AvePool and BN+CReLU), top-1/top-5;
  * kNN top-1 on AvePool features;
  * reconstruction score: how often a classifier gives x and G(E(x)) the same
    class (the classifier: a linear probe on raw pixels of the training split,
    or any callable the caller passes);
  * the same linear probe on a randomly initialised encoder of the same
    architecture (the baseline a learned encoder must beat);
  * the effective rank of E's AvePool features (`linear_probe.effective_rank`,
    first 10,000 training examples), for E and for the random encoder: how
    many directions the features spread over; an encoder whose features
    collapse into a few directions scores far below its width;
  * joint pairing scores (`joint_pairing_scores`): whether D's joint score
    s_xz tells a matched (x, z) pair from the same x with another example's
    z (0.5: s_xz does not depend on the pairing, so E gets no signal from it
    to invert G).
`evaluation.model_dir.evaluate_model_dir(model_dir)` restores the EMA model
of a training run, evaluates it with this and writes eval.json and
TensorBoard summaries into model_dir. Exported modules are evaluated through
`export.ExportedBigBiGAN`, which has the same interface.

`evaluation.dataset = "image_dir"` measures the encoder on a user's labelled
image folders (class folders ROOT/<class>/...): `evaluation.train_image_dir`
and `evaluation.test_image_dir`, or one `evaluation.image_dir` split by
`evaluation.validation_fraction` (docs/evaluation.md, "Your own images").

Small datasets are evaluated in memory. For ImageNet, bind
`evaluation.feature_dir` to a local directory: the splits are then streamed
through the evaluation pipeline batch by batch, E's features are written to
disk (evaluation.feature_store) and the probes and kNN read them in bounded
chunks, with the same figures (see `evaluate_model`).
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Optional, Sequence, Union

from absl import logging
import gin
import numpy as np
import tensorflow as tf

from bigbigan_tf import bindings
from bigbigan_tf import checkpoints
from bigbigan_tf import layers
from bigbigan_tf import data
from bigbigan_tf.data import image_dir as image_dir_lib
from bigbigan_tf import model as model_lib
from bigbigan_tf.evaluation import feature_extractors
from bigbigan_tf.evaluation import feature_store
from bigbigan_tf.evaluation import inversion
from bigbigan_tf.evaluation import judge as judge_lib
from bigbigan_tf.evaluation import linear_probe as probe_lib
from bigbigan_tf.evaluation import metrics
from bigbigan_tf.networks import common

def _map_batches(fn: Callable, images: np.ndarray, batch_size: int):
  """Runs the tf.function of `fn` over `images` in batches; concatenates
  its outputs (an array, or a dict of arrays)."""
  call = tf.function(fn, autograph=False)
  outputs = [tf.nest.map_structure(np.asarray, call(images[i:i + batch_size]))
             for i in range(0, len(images), batch_size)]
  return tf.nest.map_structure(lambda *parts: np.concatenate(parts),
                               *outputs)


def _output_fn(encoder, key: str = common.AVEPOOL_FEAT
               ) -> Callable[[tf.Tensor], tf.Tensor]:
  """One of E's outputs (AvePool features by default) of a batch of images,
  in inference mode."""
  return lambda x: encoder(x, training=False)[key]


def encoder_features(encoder, images: np.ndarray, batch_size: int = 250,
                     key: str = common.AVEPOOL_FEAT) -> np.ndarray:
  """E's AvePool features (or output `key`) of `images` (inference mode)."""
  return encoder_outputs(encoder, images, (key,), batch_size)[key]


def encoder_outputs(encoder, images: np.ndarray, keys: Sequence[str],
                    batch_size: int = 250) -> dict[str, np.ndarray]:
  """Several of E's outputs of `images` from one pass (inference mode)."""
  keys = tuple(dict.fromkeys(keys))

  def outputs(x):
    out = encoder(x, training=False)
    missing = [k for k in keys if k not in out]
    if missing:
      raise ValueError(f"Expected the encoder to output {list(keys)}; it "
                       f"outputs {sorted(out)}.")
    return {k: out[k] for k in keys}

  return _map_batches(outputs, images, batch_size)


def _probe_results(train_f, train_y, test_f, test_y, num_steps: int,
                   prefix: str) -> dict:
  """Linear probes of both feature types on (in-memory or stored) features,
  and the effective rank of the training split's features."""
  results = {f"{prefix}feature_effective_rank":
             probe_lib.effective_rank(train_f)}
  for feature_type in ("avepool", "bn_crelu"):
    result = probe_lib.linear_probe(train_f, train_y, test_f, test_y,
                                    feature_type=feature_type,
                                    num_steps=num_steps)
    results[f"{prefix}linear_probe_{feature_type}_top1"] = result.top1
    results[f"{prefix}linear_probe_{feature_type}_top5"] = result.top5
  return results


def _reconstruction_scores(reconstruct: Callable, classify: Callable,
                           test_batches: Iterable, prefix: str = "",
                           pool: Callable = lambda x: x) -> dict:
  """How often x and G(E(x)) get the same class (and x's label), over
  (images, labels) batches of the test split.

  Args:
    reconstruct: images at E's resolution -> G(E(x)) at G's.
    classify: images at G's resolution -> class indices.
    test_batches: (images, labels) at E's resolution.
    prefix: of the result keys, after "reconstruction_".
    pool: E's images to G's resolution, for `classify`.
  """
  reconstruct = tf.function(reconstruct, reduce_retracing=True,
                            autograph=False)
  same_class = keeps_label = count = 0
  for images, labels in test_batches:
    recon = reconstruct(images).numpy()
    x_class = classify(_pool_array(pool, images))
    recon_class = classify(recon)
    same_class += int(np.sum(x_class == recon_class))
    keeps_label += int(np.sum(recon_class == labels))
    count += len(labels)
  if not count:
    raise ValueError("The test split has no examples; expected at least one "
                     "for the reconstruction score.")
  return {f"reconstruction_{prefix}same_class": same_class / count,
          f"reconstruction_{prefix}keeps_label": keeps_label / count}


def _pairing_wins(matched: np.ndarray, mismatched: np.ndarray) -> float:
  """Examples whose matched score is the higher one; ties count half."""
  return float(np.sum(matched > mismatched) +
               0.5 * np.sum(matched == mismatched))


def joint_pairing_scores(model, test_batches: Iterable,
                         seed: int = 0) -> dict[str, float]:
  """Whether D's joint score s_xz uses the pairing of x and z at all.

  On real images x and on generated pairs (G(z), z), s_xz is compared with
  the score of the same x paired with another example's latent (a fixed
  permutation within each batch), so the marginals of x and z are unchanged
  and only their pairing differs:

    joint_pairing_encoder_pairs: fraction of x with
      s_xz(x, E(x)) > s_xz(x, E(x')), i.e. the matched real pair looks more
      real than a mismatched one.
    joint_pairing_generator_pairs: fraction of z with
      s_xz(G(z), z) < s_xz(G(z), z'), i.e. the matched generated pair looks
      more fake.

  Ties count half, so 0.5 on both means s_xz does not depend on how x and
  z are paired (J ignores the pairing and E gets no signal from it to
  invert G); a J that uses the pairing moves either fraction away from 0.5.
  E's latent is its mean.

  Args:
    model: has encoder, generate, discriminate, pool_for_discriminator
      and prior (or z_dim), as evaluate_model's model.
    test_batches: iterable of (images, labels) at E's resolution.
    seed: seed of the prior samples and the permutations.

  Returns:
    The two fractions, or {} when D has no joint score.
  """
  def pair_scores(images, other, z):
    """s_xz of matched and mismatched (x, E(x)) and (G(z), z) pairs, from
    one call of D on the four kinds of pair (D in inference mode scores
    each example on its own)."""
    x = model.pool_for_discriminator(images)
    z_hat = model.encoder(images, training=False)[common.Z_MEAN]
    x_gen = model.generate(z, training=False)
    scores = model.discriminate(
        tf.concat([x, x, x_gen, x_gen], 0),
        tf.concat([z_hat, tf.gather(z_hat, other), z, tf.gather(z, other)],
                  0), training=False)
    if common.SCORE_XZ not in scores:
      return None
    return tf.split(scores[common.SCORE_XZ], 4)

  pair_scores = tf.function(pair_scores, reduce_retracing=True,
                            autograph=False)
  rng = np.random.RandomState(seed)
  encoder_wins = generator_wins = 0.0
  count = 0
  for images, _ in test_batches:
    n = len(images)
    if n < 2:
      continue
    # A permutation without fixed points: a random order, shifted by one.
    order = rng.permutation(n)
    other = np.empty(n, np.int64)
    other[order] = np.roll(order, 1)
    z = inversion.prior_samples(model, n, seed + 1, count)
    scores = pair_scores(tf.constant(images, tf.float32), other, z)
    if scores is None:
      return {}
    real, real_mismatched, generated, generated_mismatched = map(
        np.asarray, scores)
    encoder_wins += _pairing_wins(real, real_mismatched)
    generator_wins += _pairing_wins(generated_mismatched, generated)
    count += n
  if not count:
    raise ValueError("The test split has no batch of two or more examples; "
                     "expected some for the joint pairing scores.")
  return {"joint_pairing_encoder_pairs": encoder_wins / count,
          "joint_pairing_generator_pairs": generator_wins / count}


def _pool_array(pool: Callable, images) -> np.ndarray:
  """pool (a TF function of a batch) applied to a NumPy array."""
  return np.asarray(pool(tf.constant(images)))


class _InMemorySplits:
  """Evaluation data of `evaluate_model` held in memory (data.load_arrays,
  each split loaded on first use): small datasets such as mnist5k.

  `pool` maps images to D's resolution (model.pool_for_discriminator).
  """

  def __init__(self, dataset, sources, resolution, data_dir,
               pool: Callable, batch_size: int = 250):
    self._load = lambda source: data.load_arrays(
        dataset, resolution=resolution, data_dir=data_dir, **source)
    self._splits = sources
    self._arrays = {}
    self._features = []  # (encoder, {key: (train, test)}) of each encoder.
    self._pool = pool
    self._batch_size = batch_size

  def _split(self, role: str) -> tuple[np.ndarray, np.ndarray]:
    if role not in self._arrays:
      self._arrays[role] = self._load(self._splits[role])
    return self._arrays[role]

  def features(self, encoder, tag: str, key: str = common.AVEPOOL_FEAT):
    """E's output `key` of both splits. One pass per encoder gives its
    AvePool features and its latent mean (both are measured)."""
    del tag  # Only stored features need a name.
    (train_x, train_y), (test_x, test_y) = map(self._split, ("train", "test"))
    cached = next((f for e, f in self._features if e is encoder), None)
    if cached is None:
      cached = {}
      self._features.append((encoder, cached))
    if key not in cached:
      keys = (key,) if cached else (common.AVEPOOL_FEAT, common.Z_MEAN, key)
      train, test = (encoder_outputs(encoder, x, keys, self._batch_size)
                     for x in (train_x, test_x))
      cached.update({k: (train[k], test[k]) for k in train})
    return cached[key][0], train_y, cached[key][1], test_y

  def train_batches(self, max_examples: int):
    train_x, train_y = self._split("train")
    for i in range(0, min(len(train_x), max_examples), self._batch_size):
      end = min(i + self._batch_size, max_examples)
      yield train_x[i:end], train_y[i:end]

  def pixel_features(self, max_examples: Optional[int]):
    flat = lambda x: _pool_array(self._pool, x).reshape(len(x), -1)
    (train_x, train_y), (test_x, test_y) = map(self._split, ("train", "test"))
    rows = slice(None, max_examples)
    return (flat(train_x[rows]), train_y[rows], flat(test_x[rows]),
            test_y[rows])

  def test_batches(self):
    test_x, test_y = self._split("test")
    for i in range(0, len(test_x), self._batch_size):
      yield (test_x[i:i + self._batch_size], test_y[i:i + self._batch_size])

  def real_images(self) -> np.ndarray:
    return _pool_array(self._pool, self._split("test")[0])


class _StreamedSplits:
  """Evaluation data of `evaluate_model` read batch by batch from the
  evaluation pipeline (data.evaluation_dataset, with the gin bindings of
  load_arrays); features are written to `feature_dir` and memory mapped."""

  def __init__(self, dataset, sources, resolution, data_dir,
               pool: Callable, feature_dir: str, feature_dtype: str):
    self._dataset = dataset
    self._splits = sources
    self._resolution = resolution
    self._settings = {**gin.get_bindings("load_arrays"), "data_dir": data_dir}
    self._pool = pool
    self._feature_dir = feature_dir
    self._feature_dtype = feature_dtype

  def _pipeline(self, role: str, max_examples: Optional[int] = None):
    settings = dict(self._settings)
    if max_examples is not None:
      bound = settings.get("max_examples")
      settings["max_examples"] = (max_examples if bound is None else
                                  min(bound, max_examples))
    settings.update(self._splits[role])
    return data.evaluation_dataset(self._dataset,
                                   resolution=self._resolution, **settings)

  def _extract(self, feature_fn, tag: str, max_examples=None):
    splits = []
    for role in ("train", "test"):
      stored = feature_store.extract_features(
          feature_fn, self._pipeline(role, max_examples),
          os.path.join(self._feature_dir, f"{tag}_{role}"),
          dtype=self._feature_dtype,
          info={"features": tag, "dataset": self._dataset,
                "split": self._splits[role]["split"],
                "source": self._splits[role], "resolution": self._resolution,
                "pipeline": self._settings, "max_examples": max_examples})
      splits += [stored.features, stored.labels]
    return tuple(splits)

  def features(self, encoder, tag: str, key: str = common.AVEPOOL_FEAT):
    return self._extract(_output_fn(encoder, key), tag)

  def train_batches(self, max_examples: int):
    for batch in self._pipeline("train", max_examples).as_numpy_iterator():
      yield batch[data.IMAGE], batch[data.LABEL]

  def pixel_features(self, max_examples: Optional[int]):
    pool = self._pool
    return self._extract(lambda x: tf.reshape(pool(x), [tf.shape(x)[0], -1]),
                         "pixels", max_examples)

  def test_batches(self):
    for batch in self._pipeline("test").as_numpy_iterator():
      yield batch[data.IMAGE], batch[data.LABEL]

  def real_images(self):
    return (_pool_array(self._pool, images)
            for images, _ in self.test_batches())


def standing_statistics(encoder, batches: Iterable) -> None:
  """Recomputes an encoder's batch-norm statistics on (images, labels)
  batches (training-mode passes; weights unchanged)."""
  with layers.accumulating_standing_stats(encoder):
    step = tf.function(lambda x: encoder(x, training=True),
                       autograph=False)
    for images, _ in batches:
      step(images)


def _first_pair(model, splits):
  """A tiny (x, z) batch at D's resolution, to see which scores D has."""
  images, _ = next(iter(splits.test_batches()))
  x = images[:2]
  return (_pool_array(model.pool_for_discriminator, x),
          model.encoder(x, training=False)[common.Z_MEAN])


def _memorisation_gap(model, splits, max_examples: int) -> float:
  """Mean s_x on held-out real images minus on training images (D scoring
  (x, E(x)) pairs; negative: D rates the images it trained on higher)."""
  score = tf.function(lambda x: model.discriminate(
      model.pool_for_discriminator(x),
      model.encoder(x, training=False)[common.Z_MEAN],
      training=False)[common.SCORE_X], reduce_retracing=True,
      autograph=False)

  def mean_score(batches):
    scores = []
    for images, _ in batches:
      scores.append(score(images).numpy())
      if sum(map(len, scores)) >= max_examples:
        break
    return float(np.mean(np.concatenate(scores)[:max_examples]))

  return (mean_score(splits.test_batches())
          - mean_score(splits.train_batches(max_examples)))


def _check_evaluation_options(feature_dtype: str,
                              pixel_probe_max_examples: Optional[int]) -> None:
  if feature_dtype not in feature_store.DTYPES:
    raise ValueError(f"evaluation.feature_dtype must be one of "
                     f"{feature_store.DTYPES}; received {feature_dtype!r}.")
  common.check_int(pixel_probe_max_examples,
                   "evaluation.pixel_probe_max_examples", allow_none=True)


def _encoder_figures(splits, encoder, prefix: str, probe_steps: int,
                     knn_k: Optional[int] = None) -> dict[str, float]:
  """Linear probes (and kNN when knn_k is given) on an encoder's features."""
  train_f, train_y, test_f, test_y = splits.features(
      encoder, prefix.rstrip("_") or "encoder")
  results = _probe_results(train_f, train_y, test_f, test_y, probe_steps,
                           prefix)
  if knn_k is not None:
    results[f"{prefix}knn{knn_k}_top1"] = probe_lib.knn_accuracy(
        train_f, train_y, test_f, test_y, k=knn_k, metric="cosine")
  return results


def _pixel_probe(splits, pool: Callable, max_examples: Optional[int],
                 num_steps: int) -> tuple[Callable, float]:
  """A linear probe on raw pixels at D's resolution: the default pixel
  classifier of reconstructions (logits of images at G's resolution), and
  its held-out top-1."""
  probe = probe_lib.linear_probe(*splits.pixel_features(max_examples),
                                 num_steps=num_steps)
  flat = lambda x: np.asarray(x).reshape(len(x), -1)
  return (lambda x: flat(x) @ probe.weights + probe.bias), probe.top1


_FOLDER_PARAMETERS = ("image_dir", "train_image_dir", "test_image_dir",
                      "validation_fraction")


def _data_sources(dataset: str, train_split: str, test_split: str,
                  folders: dict) -> dict[str, dict]:
  """data.load_arrays arguments of the probe's training ("train") and
  held-out ("test") data; checks the image-folder parameters.

  Args:
    folders: the evaluation.* values of `_FOLDER_PARAMETERS`.
  """
  given = {f"evaluation.{k}": v for k, v in folders.items() if v is not None}
  if dataset != data.IMAGE_DIR:
    if given:
      raise ValueError(
          f"{', '.join(sorted(given))} only apply with evaluation.dataset = "
          f"{data.IMAGE_DIR!r}; got evaluation.dataset = {dataset!r}.")
    return {"train": {"split": train_split}, "test": {"split": test_split}}
  two = (folders["train_image_dir"], folders["test_image_dir"])
  one = (folders["image_dir"], folders["validation_fraction"])
  if all(v is not None for v in two) and all(v is None for v in one):
    return {"train": {"split": "train", "image_dir": two[0]},
            "test": {"split": "test", "image_dir": two[1]}}
  if all(v is not None for v in one) and all(v is None for v in two):
    image_dir_lib.check_validation_fraction(one[1])
    return {role: {"split": role, "image_dir": one[0],
                   "validation_fraction": one[1]}
            for role in ("train", "test")}
  received = ", ".join(f"{k} = {v!r}" for k, v in sorted(given.items()))
  raise ValueError(
      f"evaluation.dataset = {data.IMAGE_DIR!r} needs either "
      "evaluation.train_image_dir and evaluation.test_image_dir (class "
      "folders of the probe's training images and of held-out images) or "
      "evaluation.image_dir and evaluation.validation_fraction (one folder, "
      "a share of every class held out); got "
      f"{received or 'none of them'}.")


def _labelled_folders(sources: dict[str, dict]) -> dict:
  """Checks that the evaluation folders can be probed; their class record.

  Raises:
    ValueError: a folder without class folders (or with images beside
      them), fewer than two classes, different classes in the training and
      held-out folders, or a validation_fraction that leaves a class empty.
  """
  names = {"train": "evaluation.train_image_dir",
           "test": "evaluation.test_image_dir"}
  if "validation_fraction" in sources["train"]:
    names = {"train": "evaluation.image_dir", "test": "evaluation.image_dir"}
  record, scanned = {}, {}
  for role, source in sources.items():
    root = source["image_dir"]
    if root not in scanned:
      scanned[root] = image_dir_lib.scan_image_folder(root, what=names[role])
    folder = scanned[root]
    image_dir_lib.warn_about_bad_files(folder)
    expected = (f"class folders {names[role]}/<class name>/<images> (a "
                "probe needs labels)")
    if folder.loose_images:
      raise ValueError(
          f"Expected {expected}, but {folder.root!r} also holds "
          f"{len(folder.loose_images)} images directly, e.g. "
          f"{', '.join(folder.loose_images[:3])}: move them into a class "
          "folder, or remove them.")
    if not folder.labelled:
      raise ValueError(
          f"Expected {expected}, but {folder.root!r} holds its images "
          "directly (a flat folder is unlabelled: it trains, but cannot be "
          "evaluated on).")
    if len(folder.class_names) < 2:
      raise ValueError(
          f"Expected at least 2 class folders in {names[role]} "
          f"{folder.root!r} (a probe tells classes apart), found "
          f"{len(folder.class_names)}: {list(folder.class_names)}.")
    rows = image_dir_lib.select(folder, source["split"],
                                source.get("validation_fraction"))
    record[role] = image_dir_lib.class_record(
        folder, rows, source["split"], source.get("validation_fraction"))
  train_classes = record["train"]["classes"]
  test_classes = record["test"]["classes"]
  if train_classes != test_classes:
    raise ValueError(
        "Expected the same class folders in evaluation.train_image_dir and "
        "evaluation.test_image_dir (class indices follow the sorted names); "
        f"only in {record['train']['image_dir']!r}: "
        f"{sorted(set(train_classes) - set(test_classes))}, only in "
        f"{record['test']['image_dir']!r}: "
        f"{sorted(set(test_classes) - set(train_classes))}.")
  return {"classes": train_classes, **record}


def _write_class_index(path: Optional[str], record: Optional[dict]) -> None:
  if path is None or record is None:
    return
  tf.io.gfile.makedirs(os.path.dirname(path) or ".")
  checkpoints.write_json(path, record)


@gin.configurable("evaluation", denylist=["model", "class_index_path"])
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
                   seed: int = 0,
                   feature_dir: Optional[str] = None,
                   feature_dtype: str = "float32",
                   pixel_probe_max_examples: Optional[int] = 10_000,
                   pixel_probe_steps: Optional[int] = None,
                   standing_stats_examples: int = 2_500,
                   judge: bool = True,
                   judge_samples: int = 5000,
                   inversion_samples: int = 1000,
                   memorisation_examples: int = 1000,
                   inverse_fit_steps: int = 0,
                   image_dir: Optional[str] = None,
                   train_image_dir: Optional[str] = None,
                   test_image_dir: Optional[str] = None,
                   validation_fraction: Optional[float] = None,
                   class_index_path: Optional[str] = None
                  ) -> dict[str, float]:
  """Measures `model` on a labelled dataset (labels used only here).

  Two ways to hold the data, with the same figures:
    * feature_dir None (default; small datasets such as mnist5k): both splits
      are loaded into memory (data.load_arrays) and so are their features.
    * feature_dir set (ImageNet): images are read batch by batch from the
      evaluation pipeline (data.evaluation_dataset with the gin bindings of
      load_arrays, e.g. load_arrays.augmentation and load_arrays.max_examples);
      features are written to feature_dir (see evaluation.feature_store;
      float32 AvePool features of ImageNet's training split take 10 GB for
      ResNet-50) and read back in bounded chunks by the probes and kNN.
      Subdirectories encoder_{train,test}, random_encoder_{train,test} and
      pixels_{train,test} are overwritten by every call. Memory then holds
      the labels, chunks of features, one batch of images and, with a
      sample_feature_extractor, the real images' extractor features.

  Args:
    model: the BigBiGAN to measure (with an encoder).
    dataset: dataset name for data.load_arrays; "image_dir" for labelled
      image folders (below).
    train_split, test_split: probe training and held-out splits (not used
      with image folders).
    probe_steps: linear-probe steps (zero-initialised, lr 0.01, EMA).
    knn_k: neighbours for the kNN accuracy (cosine).
    random_encoder_baseline: also probe a freshly initialised encoder (its
      initial weights depend on `seed` alone).
    pixel_classifier: maps a batch of images [B, h, w, 3] in [-1, 1] at G's
      (and D's) resolution to logits (x is pooled to it first); default a
      linear probe on the training split's pixels at that resolution.
    data_dir: tfds data_dir (default: make_dataset's, as bound in gin).
    sample_feature_extractor: a feature_extractors.ClassifierFeatureExtractor
      (e.g. `@inception_extractor()` for FID/IS/KID as in the paper, or
      `@classifier_extractor()` on any classifier SavedModel for a
      "domain FID"); None skips the sample-quality metrics.
    num_samples: generated samples for FID/IS/KID (50K in the paper).
    seed: seed of the prior samples and of the random encoder's weights.
    feature_dir: local directory for streamed evaluation (see above); None
      evaluates in memory.
    feature_dtype: storage dtype of the features in feature_dir: "float32"
      (the in-memory figures) or "float16" (half the disk, ~1e-3 relative
      precision).
    pixel_probe_max_examples: the default pixel classifier is trained on the
      first this-many training examples and its top-1
      (pixel_linear_probe_top1) measured on the first this-many test
      examples (raw pixels of ImageNet at 128x128 are 196 KB per image);
      None uses whole splits. The reconstruction score always covers the
      whole test split.
    pixel_probe_steps: steps of that pixel probe; None: probe_steps.
    standing_stats_examples: training images the random encoder's batch
      norm statistics are recomputed on before it is measured, as for the
      trained (EMA) encoder (a fresh network's moving statistics are 0/1;
      0 keeps them, the baseline reported before this option existed).
    judge: also score reconstructions with the dataset's CNN judge
      (evaluation.judge; cached per dataset): reconstruction_judge_*, and
      judge_test_top1, its own held-out accuracy. Skipped, with a logged
      reason, for image folders: a judge is trained for a TFDS dataset and
      cached under its name.
    judge_samples: with the judge, samples of G for sample_fid_judge (the
      Fréchet distance of the judge's penultimate features, samples against
      the held-out images), sample_kid_judge and sample_is_judge (inception
      score of the judge's class probabilities); 0 skips them.
    inversion_samples: prior samples for inversion_error
      (‖E(G(z)) − z‖² / mean ‖z − z′‖²; 0 skips it) and for
      reconstruction_ratio_generated (reconstruction_ratio_real, on the
      held-out images, is always reported).
    memorisation_examples: images of each split for D's memorisation gap
      (mean s_x on held-out minus on training images; 0 skips it).
    inverse_fit_steps: > 0 trains a fresh encoder of E's architecture on
      ‖E(G(z)) − z‖² alone with G frozen for this many steps and reports its
      inversion error and judge score (inverse_fit_*): can E's architecture
      invert G at all?
    image_dir, train_image_dir, test_image_dir, validation_fraction: with
      dataset "image_dir": either train_image_dir (the probe's training
      images) and test_image_dir (held-out images), each a folder of class
      folders with the same class names, or one image_dir of class folders
      of which validation_fraction of every class is held out (stratified,
      fixed seed; data.image_dir). Local paths or gs://.
    class_index_path: where to write the class index of the image folders
      (class names in index order, images per class and split, files
      skipped; checkpoints.CLASSES_FILE); None, or a dataset other than
      image folders, writes nothing.

  Returns:
    A flat dict of figures.

  Raises:
    ValueError: a bad feature_dtype or pixel_probe_max_examples, a
      non-local feature_dir, or empty splits; image folders that are
      missing, unlabelled, of fewer than two classes or of different classes,
      and a validation_fraction not in (0, 1) or leaving a class empty.
  """
  _check_evaluation_options(feature_dtype, pixel_probe_max_examples)
  sources = _data_sources(dataset, train_split, test_split, {
      "image_dir": image_dir, "train_image_dir": train_image_dir,
      "test_image_dir": test_image_dir,
      "validation_fraction": validation_fraction})
  if data_dir is None:  # Read the data where training read it.
    data_dir = bindings.bound_value("make_dataset.data_dir")

  def make_splits(resolution, pool):
    if feature_dir is None:
      return _InMemorySplits(dataset, sources, resolution, data_dir, pool)
    return _StreamedSplits(dataset, sources, resolution, data_dir, pool,
                           feature_dir, feature_dtype)

  if model.encoder is None:  # StandardGAN: only sample quality applies.
    if sample_feature_extractor is None:
      return {}
    real_images = make_splits(model.resolution, lambda x: x).real_images()
    return sample_quality(model, sample_feature_extractor, real_images,
                          num_samples, seed)
  folders, judge = _image_folders(dataset, sources, judge)
  _write_class_index(class_index_path, folders)
  splits = make_splits(model.encoder_resolution, model.pool_for_discriminator)
  results = _representation_figures(
      model, splits, probe_steps, knn_k, random_encoder_baseline,
      standing_stats_examples, seed)
  reconstruction_judge = (judge_lib.cached_judge(
      dataset, model.resolution, train_split, test_split, data_dir)
                          if judge else None)
  results.update(_reconstruction_figures(
      model, splits, pixel_classifier, pixel_probe_max_examples,
      probe_steps if pixel_probe_steps is None else pixel_probe_steps,
      reconstruction_judge, judge_samples, seed))
  results.update(_generator_figures(
      model, splits, inversion_samples, memorisation_examples,
      inverse_fit_steps, reconstruction_judge, seed))
  if sample_feature_extractor is not None:
    results.update(sample_quality(model, sample_feature_extractor,
                                  splits.real_images(), num_samples, seed))
  return {k: float(v) for k, v in results.items()}


def _image_folders(dataset: str, sources: dict,
                   judge: bool) -> tuple[Optional[dict], bool]:
  """The labelled folders' record (None for a TFDS dataset) and whether the
  judge applies (not to image folders: it is trained per TFDS dataset)."""
  if dataset != data.IMAGE_DIR:
    return None, judge
  folders = _labelled_folders(sources)
  logging.info("Evaluating on image folders: classes %s; %d probe "
               "training and %d held-out images.", folders["classes"],
               folders["train"]["num_images"],
               folders["test"]["num_images"])
  if judge:
    logging.info(
        "Skipping the reconstruction judge (evaluation.judge): it is a "
        "CNN trained for a TFDS dataset and cached under its name, and an "
        "image folder has none; reconstruction_same_class still scores "
        "reconstructions with the pixel classifier.")
  return folders, False


def _representation_figures(model, splits, probe_steps: int, knn_k: int,
                            random_encoder_baseline: bool,
                            standing_stats_examples: int,
                            seed: int) -> dict:
  """E's probes, kNN and effective rank, kNN on its latent, and the same
  probes of a freshly initialised encoder (with standing statistics)."""
  results = _encoder_figures(splits, model.encoder, "", probe_steps, knn_k)
  latent = splits.features(model.encoder, "encoder_z_mean", common.Z_MEAN)
  results[f"latent_knn{knn_k}_top1"] = probe_lib.knn_accuracy(
      *latent, k=knn_k, metric="cosine")
  if random_encoder_baseline and hasattr(model.encoder,
                                         "constructor_arguments"):
    fresh = common.clone(model.encoder, seed=seed)
    if standing_stats_examples:
      standing_statistics(fresh,
                          splits.train_batches(standing_stats_examples))
    results.update(_encoder_figures(splits, fresh, "random_encoder_",
                                    probe_steps))
  return results


def _reconstruction_figures(model, splits, pixel_classifier: Optional[Callable],
                            pixel_probe_max_examples: Optional[int],
                            pixel_probe_steps: int,
                            reconstruction_judge: Optional[judge_lib.Judge],
                            judge_samples: int, seed: int) -> dict:
  """How often G(E(x)) keeps x's class (pixel classifier, judge), the
  pixel probe's own accuracy, and the samples' quality under the judge."""
  pool = model.pool_for_discriminator
  results = {}
  if pixel_classifier is None:
    pixel_classifier, results["pixel_linear_probe_top1"] = _pixel_probe(
        splits, pool, pixel_probe_max_examples, pixel_probe_steps)
  reconstruct = lambda x: model.reconstruct(x, training=False)
  results.update(_reconstruction_scores(
      reconstruct, lambda x: np.argmax(pixel_classifier(x), axis=-1),
      splits.test_batches(), pool=pool))
  if reconstruction_judge is not None:
    results["judge_test_top1"] = reconstruction_judge.test_top1
    results.update(_reconstruction_scores(
        reconstruct, reconstruction_judge.classify, splits.test_batches(),
        "judge_", pool))
    if judge_samples:
      results.update(judge_sample_quality(
          model, reconstruction_judge, splits.test_batches(), pool,
          judge_samples, seed))
  return results


def _generator_figures(model, splits, inversion_samples: int,
                       memorisation_examples: int, inverse_fit_steps: int,
                       reconstruction_judge: Optional[judge_lib.Judge],
                       seed: int) -> dict:
  """Does E invert G (ratios, inversion error, a fitted inverse), D's
  memorisation gap, and J's use of the pairing."""
  pool = model.pool_for_discriminator
  results = inversion.reconstruction_ratios(
      model, model.encoder, splits.test_batches(), pool, inversion_samples,
      seed)
  if inversion_samples:
    results["inversion_error"] = inversion.inversion_error(
        model, model.encoder, inversion_samples, seed)
  if memorisation_examples and "score_x" in model.discriminate(
      *_first_pair(model, splits), training=False):
    results["discriminator_memorisation_gap"] = _memorisation_gap(
        model, splits, memorisation_examples)
  if inverse_fit_steps:
    fitted = inversion.fit_inverse_encoder(model, inverse_fit_steps,
                                           seed=seed)
    results["inverse_fit_inversion_error"] = inversion.inversion_error(
        model, fitted, inversion_samples or 1000, seed)
    if reconstruction_judge is not None:
      results.update(_reconstruction_scores(
          lambda x: model.generate(fitted(x, training=False)[common.Z_MEAN],
                                   training=False),
          reconstruction_judge.classify, splits.test_batches(),
          "inverse_fit_judge_", pool))
  if getattr(model, "has_joint_score", True):
    results.update(joint_pairing_scores(model, splits.test_batches(), seed))
  return results


def _real_activations(extractor: Callable,
                      real_images: Union[np.ndarray, Iterable[np.ndarray]]
                     ) -> np.ndarray:
  """Extractor features of real images: an array, or batches of one."""
  if isinstance(real_images, np.ndarray):
    return extractor(real_images)[0]
  features = [extractor(np.asarray(images))[0] for images in real_images]
  if not features:
    raise ValueError("Expected real images for FID/KID; received none.")
  return np.concatenate(features)


def sample_quality(model, extractor: Callable,
                   real_images: Union[np.ndarray, Iterable[np.ndarray]],
                   num_samples: int, seed: int = 0,
                   batch_size: int = 250) -> dict[str, float]:
  """FID and KID of G's samples against real images, and IS of samples.

  Args:
    model: has `generate` (and `prior` or `z_dim`).
    extractor: maps images to (features, logits or None).
    real_images: an array [N, h, w, 3], or an iterable of such batches (only
      their features are kept).
    num_samples: generated samples.
    seed: seed of the prior samples.
    batch_size: samples generated at once.

  Raises:
    ValueError: fewer samples (or real images) than feature dimensions.
  """
  real_features = _real_activations(extractor, real_images)
  fake_features, fake_logits = [], []
  for start in range(0, num_samples, batch_size):
    n = min(batch_size, num_samples - start)
    z = inversion.prior_samples(model, n, seed, start)
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


def judge_sample_quality(model, judge: judge_lib.Judge, test_batches: Iterable,
                         pool: Callable, num_samples: int, seed: int = 0
                        ) -> dict[str, float]:
  """FID, KID and IS of G's samples with the dataset's judge as the
  feature extractor, against the held-out images (pooled to G's size)."""
  real = (_pool_array(pool, images) for images, _ in test_batches)
  results = sample_quality(model, judge.features_and_logits, real,
                           num_samples, seed)
  return {"sample_fid_judge": results["fid"],
          "sample_kid_judge": results["kid"],
          "sample_is_judge": results["inception_score"]}


def format_results(results: dict[str, float]) -> str:
  """One aligned "name  value" line per figure, sorted by name."""
  width = max(len(k) for k in results)
  return "\n".join(f"{k:<{width}}  {v:.4f}" for k, v in sorted(results.items()))
