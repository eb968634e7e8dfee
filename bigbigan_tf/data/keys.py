"""Names shared by the modules of bigbigan_tf.data.

The batch keys, the special dataset names and the label of unlabelled images
are used by the mnist5k builder, the image-folder source and the pipelines
alike; they live here, apart from all of them, so that those modules import
one another without cycles.
"""

# Keys of the dicts yielded by every pipeline (and features of mnist5k).
IMAGE = "image"
IMAGE_D = "image_d"
LABEL = "label"

# Special dataset names (every other name is looked up in TFDS).
MNIST5K = "mnist5k"
IMAGE_DIR = "image_dir"
IMAGENET = "imagenet2012"

# Label given to images that carry no class (image directories, TFDS
# datasets without a class-label feature).
UNLABELLED = -1
