"""Test setup shared by every test file.

Two logical CPU devices are configured before TensorFlow runs any op, so that
multi-replica behaviour (MirroredStrategy over "/cpu:0" and "/cpu:1") can be
tested on a machine with one physical CPU (DESIGN.md section 8).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# Graph optimisation (grappler) costs more than the tiny test models gain.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
