r"""Samples a trained BigBiGAN's generator.

  bigbigan-sample --model_dir=RUN --num=64 --seed=0 --output=samples.png
  bigbigan-sample --hub_module=EXPORT/bigbigan --num=16 --truncation=0.5 \
      --output=samples.png --per_image=SAMPLES_DIR

z ~ N(0, I) (the released modules' prior), seeded: the same --seed gives the
same images. --truncation redraws coordinates beyond +-truncation (BigGAN's
truncation trick: cleaner, less varied samples).
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
flags.DEFINE_integer("num", 64, "Samples.")
flags.DEFINE_integer("seed", 0, "Seed of the latents.")
flags.DEFINE_float("truncation", None, "Redraw coordinates beyond this.")
flags.DEFINE_string("output", None, "The PNG grid to write.")
flags.DEFINE_string("per_image", None,
                    "Also write each sample here as sample_<index>.png.")
flags.mark_flag_as_required("output")


def main(argv):
  del argv
  log_progress()
  if FLAGS.num < 1:
    raise app.UsageError(f"--num must be at least 1, got {FLAGS.num}.")
  model = trained_flags.load_model()
  try:
    z = trained.sample_latents(model.z_dim, FLAGS.num, FLAGS.seed,
                               FLAGS.truncation)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  samples = trained.generate(model, z, FLAGS.batch_size)
  images_lib.write_png(FLAGS.output, images_lib.image_grid(
      samples, zoom=images_lib.display_zoom(samples.shape[1])))
  if FLAGS.per_image:
    for index, sample in enumerate(samples):
      images_lib.write_png(
          os.path.join(FLAGS.per_image, f"sample_{index:05d}.png"),
          images_lib.image_grid(sample[None], padding=0))
  print(f"{FLAGS.num} samples: {FLAGS.output}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
