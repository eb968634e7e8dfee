r"""Reconstructs images with a trained BigBiGAN: x beside G(E(x)).

  bigbigan-reconstruct --model_dir=RUN --images=PHOTOS --output=recons.png
  bigbigan-reconstruct --hub_module=EXPORT/bigbigan --images=a.jpg \
      --images=b.png --output=recons.png --per_image=RECONS_DIR

The grid shows each input (as E sees it) beside its reconstruction, in
--pairs_per_row pairs per row; --per_image also writes each reconstruction
as DIR/<input name>.png.
"""

import os

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import trained
  from bigbigan_tf.evaluation import images as images_lib
  from bigbigan_tf.tools import trained_flags
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("images", None, "Image files, folders or globs.")
flags.DEFINE_string("output", None, "The PNG grid to write.")
flags.DEFINE_integer("pairs_per_row", 4, "(x, G(E(x))) pairs per grid row.")
flags.DEFINE_string("per_image", None,
                    "Also write each reconstruction here as <name>.png.")
flags.mark_flags_as_required(["images", "output"])


def main(argv):
  del argv
  log_progress()
  model = trained_flags.load_model()
  images = trained_flags.images_for(model, FLAGS.images)
  recons = trained.reconstruct(model, images.pixels, FLAGS.batch_size)
  originals = trained.to_resolution(images.pixels, recons.shape[1])
  zoom = images_lib.display_zoom(recons.shape[1])
  images_lib.write_png(FLAGS.output, images_lib.reconstruction_grid(
      originals, recons, pairs_per_row=FLAGS.pairs_per_row, zoom=zoom))
  if FLAGS.per_image:
    for path, recon in zip(images.paths, recons):
      name = os.path.splitext(os.path.basename(path))[0] + ".png"
      images_lib.write_png(os.path.join(FLAGS.per_image, name),
                           images_lib.image_grid(recon[None], padding=0))
  print(f"Reconstructed {len(images.paths)} images ({len(images.skipped)} "
        f"files skipped): {FLAGS.output}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
