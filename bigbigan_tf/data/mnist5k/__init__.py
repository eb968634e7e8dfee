"""The mnist5k TFDS dataset, in the folder layout of TFDS's own datasets.

The builder and its helpers are in `mnist5k_dataset_builder`;
bigbigan_tf.data re-exports the public ones, so this file, like the
``__init__.py`` of TFDS's dataset folders, imports nothing.
"""
