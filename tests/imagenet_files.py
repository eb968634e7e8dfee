"""Writes ImageNet's two manual-download tars with made-up photos, so that
TFDS prepares `imagenet2012` from them offline (the real format: one tar of
per-synset tars of JPEGs, and a tar of validation JPEGs, whose labels TFDS
ships).

  python tests/imagenet_files.py MANUAL_DIR --classes=10 --images=100

Images are 256-500 pixels a side (ImageNet's are about 400x350 on average),
smooth colour fields with noise, JPEG quality 90.
"""

import argparse
import io
import os
import tarfile

import numpy as np
from PIL import Image

# The first synsets of TFDS's imagenet2012 label list (sorted ids).
SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361", "n01494475",
           "n01496331", "n01498041", "n01514668", "n01514859", "n01518878")


def _jpeg(rng: np.random.Generator) -> bytes:
  height, width = rng.integers(256, 501, size=2)
  rows, columns = np.meshgrid(np.linspace(0, 1, height),
                              np.linspace(0, 1, width), indexing="ij")
  colour = rng.uniform(0, 255, size=(3, 3))
  field = (colour[:, 0] * rows[..., None] + colour[:, 1] * columns[..., None]
           + colour[:, 2] * (1 - rows[..., None]) * columns[..., None])
  pixels = np.clip(field / 2 + rng.normal(0, 25, field.shape), 0, 255)
  out = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90)
  return out.getvalue()


def _add(archive: tarfile.TarFile, name: str, contents: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(contents)
  archive.addfile(info, io.BytesIO(contents))


def write_manual_dir(manual_dir: str, classes: int, images: int,
                     validation_images: int = 10, seed: int = 0) -> None:
  """ILSVRC2012_img_train.tar (`images` per class of the first `classes`
  synsets) and ILSVRC2012_img_val.tar (the first `validation_images`)."""
  if not 1 <= classes <= len(SYNSETS):
    raise ValueError(f"Expected 1 to {len(SYNSETS)} classes, got {classes}.")
  rng = np.random.default_rng(seed)
  os.makedirs(manual_dir, exist_ok=True)
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"),
                    "w") as train:
    for synset in SYNSETS[:classes]:
      inner = io.BytesIO()
      with tarfile.open(fileobj=inner, mode="w") as per_class:
        for i in range(images):
          _add(per_class, f"{synset}_{i + 1}.JPEG", _jpeg(rng))
      _add(train, f"{synset}.tar", inner.getvalue())
  with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"),
                    "w") as validation:
    for i in range(validation_images):
      _add(validation, f"ILSVRC2012_val_{i + 1:08d}.JPEG", _jpeg(rng))


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("manual_dir")
  parser.add_argument("--classes", type=int, default=10)
  parser.add_argument("--images", type=int, default=100)
  args = parser.parse_args()
  write_manual_dir(args.manual_dir, args.classes, args.images)
