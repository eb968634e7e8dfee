"""Test setup shared by every test file.

Two logical CPU devices are configured before TensorFlow runs any op, so that
multi-replica behaviour (MirroredStrategy over "/cpu:0" and "/cpu:1") can be
tested on a machine with one physical CPU (docs/design.md section 8).
"""

import fcntl
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA compiles the tests' steps with LLVM's cheapest settings: the tests
# check what compiles and what it computes, not how fast it runs (a quarter
# less compile time for the smoke step).
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true")

import tensorflow as tf  # pylint: disable=g-import-not-at-top

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# Graph optimisation (grappler) costs more than the tiny test models gain.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


import contextlib  # pylint: disable=g-import-not-at-top,wrong-import-position

import gin  # pylint: disable=g-import-not-at-top,wrong-import-position
import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position



@pytest.fixture(autouse=True, scope="module")
def fresh_gin_config():
  """Every test module starts and ends with no gin bindings.

  Networks are gin-configurable, so bindings left by another module's
  fixtures in the same worker would silently change a directly constructed
  network. Within a module, tests may share the bindings of its module
  fixtures (autouse fixtures are set up before them, so this clears first).
  """
  gin.clear_config()
  yield
  gin.clear_config()


def _made_once(tmp_path_factory, name: str, make) -> str:
  """A directory made by `make(path)` once per test run.

  Under pytest-xdist every worker sets up its own run-wide fixtures. The
  workers share their base temporary directory's parent, so the first one
  to take the lock makes the directory; the others wait and reuse it.
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  path = root / name
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (root / f"{name}.done").exists():
      shutil.rmtree(path, ignore_errors=True)
      path.mkdir()
      make(str(path))
      (root / f"{name}.done").touch()
  return str(path)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A tfds data_dir with the offline mnist5k dataset prepared."""
  from bigbigan_tf import data  # pylint: disable=g-import-not-at-top
  return _made_once(tmp_path_factory, "tfds", data.prepare_mnist5k)


@pytest.fixture(scope="session")
def smoke_run_dir(tmp_path_factory, data_dir):
  """A training run of gin/smoke.gin on mnist5k: 2 steps; images and an
  evaluation at step 2 (on 1,000 images, without the random baseline).

  Shared by tests (and test workers) that need a trained model_dir; they
  must not modify it (copy it first).
  """
  import training_worker  # pylint: disable=g-import-not-at-top

  def make(model_dir):
    training_worker.train(model_dir, data_dir, 2, "train.image_every = 2",
                          "train.eval_every = 2",
                          "evaluation.probe_steps = 50",
                          "load_arrays.max_examples = 1000",
                          "evaluation.random_encoder_baseline = False")
    gin.clear_config()

  return _made_once(tmp_path_factory, "smoke_run", make)


_TWO_REPLICAS = []


def two_replica_strategy() -> tf.distribute.MirroredStrategy:
  """One MirroredStrategy over the 2 logical CPUs, shared by all tests.

  Several strategies in one process allocate the same collective group and
  instance keys; the runtime caches collective parameters by key, so a
  second strategy's all-reduce can collide with a first one's ("Shape
  mismatch in the collective instance").
  """
  if not _TWO_REPLICAS:
    _TWO_REPLICAS.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
  return _TWO_REPLICAS[0]


def _shape_only_conv2d(inputs, filters, strides, padding, **unused_kwargs):
  """Zeros of tf.nn.conv2d's output shape, after checking the channels."""
  height, width, channels = inputs.shape[1:]
  kernel_height, kernel_width, in_channels, out_channels = filters.shape
  if channels != in_channels:
    raise ValueError(f"conv2d: {channels} input channels for a kernel of "
                     f"shape {filters.shape}.")
  stride = strides if isinstance(strides, int) else strides[1]
  if padding == "SAME":
    size = lambda n, k: -(-n // stride)
  else:
    size = lambda n, k: (n - k) // stride + 1
  shape = [size(height, kernel_height), size(width, kernel_width),
           out_channels]
  return tf.zeros(tf.concat([tf.shape(inputs)[:1], shape], axis=0),
                  inputs.dtype)


@contextlib.contextmanager
def shape_only_builds():
  """Builds networks without their two costs that do not affect shapes.

  The constructors initialise kernels (orthogonal initialisation of huge
  kernels takes most of the time) and run a forward pass on two images
  (hundreds of GFLOPs for G and D at 256x256 or a RevNet-50 x4). Here the
  library's layers get zero kernels (they resolve their initialiser names
  through `keras.initializers.get`) and `tf.nn.conv2d` returns zeros of its
  output shape after checking the input channels against the kernel.
  Variable shapes, hence the parameter counts, and every tensor shape are
  unchanged.
  """
  original_get = keras.initializers.get
  original_conv2d = tf.nn.conv2d
  expensive = ("orthogonal", "he_normal", "glorot_uniform")

  def get(identifier):
    if isinstance(identifier, str) and identifier in expensive:
      return keras.initializers.Zeros()
    return original_get(identifier)

  keras.initializers.get = get
  tf.nn.conv2d = _shape_only_conv2d
  try:
    yield
  finally:
    keras.initializers.get = original_get
    tf.nn.conv2d = original_conv2d

