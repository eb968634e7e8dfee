"""What users do with a trained BigBiGAN: load it, read their own images,
encode them, reconstruct them, walk between latents, find neighbours, sample.

The command-line tools (bigbigan-encode, -reconstruct, -interpolate,
-neighbours, -sample) are thin wrappers around these functions. A model is
either a training run's directory (its EMA networks with standing batch-norm
statistics, `restore.restore_inference_model`) or an exported module
(`export.ExportedBigBiGAN`); both have `encoder`, `generate`,
`reconstruct`, `encoder_resolution` and `z_dim`.

Images are read with the image-folder policy of bigbigan_tf.data (any size,
jpg/png/bmp/gif, grey or colour; the central square of the short side,
resized to E's resolution) and files that do not decode are skipped and
counted, never fatal.
"""

from __future__ import annotations

import dataclasses
import io
import time
from typing import Callable, Iterable, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from bigbigan_tf.data import augmentation
from bigbigan_tf.data import image_dir as image_dir_lib
from bigbigan_tf.networks import common

ENCODE_KEYS = (common.Z_MEAN, common.Z_SAMPLE, common.AVEPOOL_FEAT,
               common.BN_CRELU_FEAT)
FEATURES = (common.AVEPOOL_FEAT, common.BN_CRELU_FEAT)


def load(model_dir: Optional[str] = None, hub_module: Optional[str] = None,
         checkpoint: Optional[str] = None):
  """The model of a training run (`model_dir`) or of an export.

  Raises:
    ValueError: not exactly one of model_dir and hub_module.
  """
  if (model_dir is None) == (hub_module is None):
    raise ValueError("Expected exactly one of model_dir and hub_module, got "
                     f"model_dir={model_dir!r}, hub_module={hub_module!r}.")
  if model_dir is not None:
    from bigbigan_tf import restore  # pylint: disable=g-import-not-at-top
    return restore.restore_inference_model(model_dir, checkpoint)
  from bigbigan_tf import export  # pylint: disable=g-import-not-at-top
  return export.ExportedBigBiGAN(hub_module)


def save_npz(path: str, **arrays) -> None:
  """np.savez to a local path or gs://."""
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())


def load_npz(path: str) -> dict[str, np.ndarray]:
  """The arrays of an .npz (local path or gs://)."""
  with tf.io.gfile.GFile(path, "rb") as f:
    return dict(np.load(io.BytesIO(f.read())))


def _has_encoder(model) -> bool:
  return getattr(model, "encoder", None) is not None


def require_encoder(model) -> None:
  """Raises ValueError for a model without E (a StandardGAN run)."""
  if not _has_encoder(model):
    raise ValueError("This model has no encoder (bigbigan.encoder = None): "
                     "it can sample, not encode or reconstruct.")


def image_paths(sources: Iterable[str]) -> list[str]:
  """The image files named by `sources`, in order, without repeats.

  Each source is a folder (its image files, recursively, sorted), a glob
  pattern, or a file. Local paths or gs://.

  Raises:
    ValueError: a source names nothing, or no image file is found.
  """
  paths: list[str] = []
  for source in sources:
    if tf.io.gfile.isdir(source):
      found, _ = image_dir_lib.list_image_files(source)
    elif any(c in source for c in "*?["):
      found = sorted(tf.io.gfile.glob(source))
    elif tf.io.gfile.exists(source):
      found = [source]
    else:
      raise ValueError(f"Expected an image file, a folder or a glob pattern, "
                       f"got {source!r}: nothing there.")
    paths.extend(found)
  paths = list(dict.fromkeys(paths))
  if not paths:
    raise ValueError(f"No image files in {list(sources)}.")
  return paths


@dataclasses.dataclass
class Images:
  """Images read for a model: `pixels` float32 [N, r, r, 3] in [-1, 1], the
  `paths` they came from, and the `skipped` files with the reason."""
  pixels: np.ndarray
  paths: list[str]
  skipped: list[tuple[str, str]]


def read_images(paths: Sequence[str], resolution: int) -> Images:
  """Decodes `paths` to the model's input: the central square of each
  image's short side, resized to `resolution`. Undecodable files are
  skipped (logged with a count).

  Raises:
    ValueError: no file could be read.
  """
  pixels, kept, skipped = [], [], []
  for path in paths:
    problem = image_dir_lib.file_problem(path)
    if problem is not None:
      skipped.append((path, problem))
      continue
    image = image_dir_lib.decode_image_file_contents(tf.io.read_file(path))
    pixels.append(augmentation.preprocess(
        image, None, augmentation="none", training=False,
        resolution=resolution).numpy())
    kept.append(path)
  if skipped:
    logging.warning("Skipped %d of %d files that are not images that decode, "
                    "e.g. %s (%s).", len(skipped), len(paths), *skipped[0])
  if not kept:
    raise ValueError(f"None of the {len(paths)} files could be read as an "
                     f"image, e.g. {skipped[0][0]}: {skipped[0][1]}.")
  return Images(np.stack(pixels), kept, skipped)


class Progress:
  """Logs `done/total` with the rate and the time left, at most every
  `every` seconds (and at the end)."""

  def __init__(self, total: int, what: str, every: float = 5.0):
    self.total, self.what, self.every = total, what, every
    self.start = self.last = time.time()

  def update(self, done: int) -> None:
    now = time.time()
    if now - self.last < self.every and done < self.total:
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    left = (self.total - done) / rate if rate > 0 else 0.0
    logging.info("%s %d/%d | %.1f/s | ETA %s", self.what, done, self.total,
                 rate, time.strftime("%H:%M:%S", time.gmtime(left)))


def _batched(function: Callable[[tf.Tensor], object], inputs: np.ndarray,
             batch_size: int, what: str) -> list:
  progress = Progress(len(inputs), what)
  outputs = []
  for start in range(0, len(inputs), batch_size):
    outputs.append(function(tf.constant(inputs[start:start + batch_size])))
    progress.update(min(start + batch_size, len(inputs)))
  return outputs


def encode(model, pixels: np.ndarray, batch_size: int = 64
          ) -> dict[str, np.ndarray]:
  """E's outputs of every image: `ENCODE_KEYS` -> float32 [N, ...]."""
  require_encoder(model)
  batches = _batched(lambda x: model.encoder(x, training=False), pixels,
                     batch_size, "encoded")
  return {key: np.concatenate([np.asarray(b[key]) for b in batches])
          for key in ENCODE_KEYS}


def reconstruct(model, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """G(E(x)) of every image, float32 [N, G's resolution, ..., 3]."""
  require_encoder(model)
  return np.concatenate([np.asarray(b) for b in _batched(
      lambda x: model.reconstruct(x, training=False), pixels, batch_size,
      "reconstructed")])


def to_resolution(pixels: np.ndarray, size: int) -> np.ndarray:
  """Images resized to `size` (E's inputs shown beside G's outputs when E
  works at a higher resolution)."""
  if pixels.shape[1] == size:
    return pixels
  return np.asarray(tf.image.resize(pixels, [size, size], antialias=True))


def generate(model, z: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """G(z), float32 [N, r, r, 3] in [-1, 1]."""
  return np.concatenate([np.asarray(b) for b in _batched(
      lambda z: model.generate(z, training=False), z.astype(np.float32),
      batch_size, "generated")])


def sample_latents(z_dim: int, num: int, seed: int,
                   truncation: Optional[float] = None) -> np.ndarray:
  """`num` latents from N(0, I) (the released modules' prior), seeded;
  with `truncation`, every coordinate beyond ±truncation is drawn again
  (BigGAN's truncation trick).

  Raises:
    ValueError: truncation is not positive.
  """
  if truncation is not None and truncation <= 0:
    raise ValueError(f"Expected a positive truncation, got {truncation}.")
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((num, z_dim))
  if truncation is not None:
    outside = np.abs(z) > truncation
    while outside.any():
      z[outside] = rng.standard_normal(int(outside.sum()))
      outside = np.abs(z) > truncation
  return z.astype(np.float32)


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int,
                spherical: bool = False) -> np.ndarray:
  """`steps` latents from z0 to z1 (both ends included), along the line or,
  with `spherical`, the great circle (slerp, with the norms interpolated
  linearly).

  Raises:
    ValueError: fewer than 2 steps, or the latents' shapes differ.
  """
  z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
  if steps < 2:
    raise ValueError(f"Expected at least 2 steps, got {steps}.")
  if z0.shape != z1.shape or z0.ndim != 1:
    raise ValueError(f"Expected two latents of one shape [z_dim], got "
                     f"{z0.shape} and {z1.shape}.")
  t = np.linspace(0.0, 1.0, steps)[:, None]
  if not spherical:
    return ((1 - t) * z0 + t * z1).astype(np.float32)
  n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
  u0, u1 = z0 / max(n0, 1e-12), z1 / max(n1, 1e-12)
  omega = np.arccos(np.clip(np.dot(u0, u1), -1.0, 1.0))
  if omega < 1e-6:
    directions = (1 - t) * u0 + t * u1
  else:
    directions = (np.sin((1 - t) * omega) * u0
                  + np.sin(t * omega) * u1) / np.sin(omega)
  return (directions * ((1 - t) * n0 + t * n1)).astype(np.float32)


def label_cells(grid: np.ndarray, labels: Sequence[Sequence[str]],
                cell: int, padding: int = 2) -> np.ndarray:
  """Writes labels[row][column] in the top-left corner of each cell of a
  uint8 image grid (`evaluation.images.image_grid` with `cell`-pixel cells),
  white on a black box; empty strings are skipped."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  image = Image.fromarray(grid)
  draw = ImageDraw.Draw(image)
  for row, row_labels in enumerate(labels):
    for column, text in enumerate(row_labels):
      if not text:
        continue
      left = padding + column * (cell + padding)
      top = padding + row * (cell + padding)
      box = draw.textbbox((left + 2, top + 1), text)
      draw.rectangle(box, fill=(0, 0, 0))
      draw.text((left + 2, top + 1), text, fill=(255, 255, 255))
  return np.asarray(image)


def nearest_neighbours(queries: np.ndarray, gallery: np.ndarray, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:
  """The `k` gallery rows nearest each query by cosine distance
  (1 - cosine similarity): (indices [Q, k], distances [Q, k]), nearest first
  (ties by gallery order).

  Raises:
    ValueError: k is not in 1..len(gallery), or the feature sizes differ.
  """
  queries = np.asarray(queries, np.float64)
  gallery = np.asarray(gallery, np.float64)
  if queries.ndim != 2 or gallery.ndim != 2 or (
      queries.shape[1] != gallery.shape[1]):
    raise ValueError(f"Expected features [Q, d] and [G, d], got "
                     f"{queries.shape} and {gallery.shape}.")
  if not 1 <= k <= len(gallery):
    raise ValueError(f"Expected k between 1 and the gallery's "
                     f"{len(gallery)} images, got {k}.")
  unit = lambda f: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True),
                                  1e-12)
  distances = 1.0 - unit(queries) @ unit(gallery).T
  order = np.argsort(distances, axis=1, kind="stable")[:, :k]
  return order, np.take_along_axis(distances, order, axis=1)
