r"""Encodes images with a trained BigBiGAN's encoder.

  bigbigan-encode --model_dir=RUN --images=PHOTOS --output=codes.npz
  bigbigan-encode --hub_module=EXPORT/bigbigan --images='shots/*.jpg' \
      --output=codes.npz --csv=codes.csv

--images takes files, folders (every image under them, sorted) and glob
patterns, repeatable; images of any size and mode are cropped to the central
square of their short side and resized to E's resolution. The .npz holds
`file_names` and, one row per image in that order, `z_mean`, `z_sample`,
`avepool_feat` and `bn_crelu_feat`; --csv writes the file name and z_mean
per row. Files that do not decode are skipped and counted.
"""

import csv

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import numpy as np
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import trained
  from bigbigan_tf.tools import trained_flags
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("images", None, "Image files, folders or globs.")
flags.DEFINE_string("output", None, "The .npz to write.")
flags.DEFINE_string("csv", None, "Also a .csv of file name and z_mean.")
flags.mark_flags_as_required(["images", "output"])


def main(argv):
  del argv
  log_progress()
  model = trained_flags.load_model()
  images = trained_flags.images_for(model, FLAGS.images)
  codes = trained.encode(model, images.pixels, FLAGS.batch_size)
  trained.save_npz(FLAGS.output, file_names=np.array(images.paths), **codes)
  if FLAGS.csv:
    with tf.io.gfile.GFile(FLAGS.csv, "w") as f:
      writer = csv.writer(f)
      z = codes[trained.ENCODE_KEYS[0]]
      writer.writerow(["file_name"] + [f"z_mean_{i}" for i in range(z.shape[1])])
      for path, row in zip(images.paths, z):
        writer.writerow([path] + [f"{v:.6g}" for v in row])
  print(f"Encoded {len(images.paths)} images ({len(images.skipped)} files "
        f"skipped): {FLAGS.output}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
