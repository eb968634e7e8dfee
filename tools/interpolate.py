r"""Walks a trained BigBiGAN's latent space between two images or two seeds.

  bigbigan-interpolate --model_dir=RUN --images=a.png --images=b.png \
      --steps=8 --output=walk.png
  bigbigan-interpolate --hub_module=EXPORT/bigbigan --seeds=1,2,3,4 \
      --spherical --output=walks.png

Images are taken two by two (E(a) -> E(b), E's z_mean), seeds likewise
(prior samples); each pair is one row of --steps images decoded by G, ends
included. --spherical follows the great circle between the two latents
(slerp) instead of the straight line.
"""

from absl import app
from absl import flags

from bigbigan_tf.tools import log_progress
from bigbigan_tf.tools import quiet_native_start

with quiet_native_start():
  import numpy as np
  import tensorflow as tf  # Devices set up here, with the native start-up lines muted.
  from bigbigan_tf import trained
  from bigbigan_tf.evaluation import images as images_lib
  from bigbigan_tf.tools import trained_flags
  tf.config.list_logical_devices()

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("images", None,
                          "Image files, folders or globs; taken two by two.")
flags.DEFINE_list("seeds", None, "Seeds of prior samples; taken two by two.")
flags.DEFINE_integer("steps", 8, "Images per row, both ends included.")
flags.DEFINE_bool("spherical", False, "Slerp instead of a straight line.")
flags.DEFINE_float("truncation", None, "With --seeds: redraw coordinates "
                   "beyond +-truncation.")
flags.DEFINE_string("output", None, "The PNG to write (one row per pair).")
flags.mark_flag_as_required("output")


def _ends(model):
  if bool(FLAGS.images) == bool(FLAGS.seeds):
    raise app.UsageError("Give either --images or --seeds.")
  if FLAGS.seeds:
    try:
      seeds = [int(s) for s in FLAGS.seeds]
    except ValueError as error:
      raise app.UsageError(f"--seeds takes integers, got {FLAGS.seeds}.") from error
    z = np.concatenate([trained.sample_latents(model.z_dim, 1, s,
                                               FLAGS.truncation)
                        for s in seeds])
  else:
    images = trained_flags.images_for(model, FLAGS.images)
    z = trained.encode(model, images.pixels, FLAGS.batch_size)["z_mean"]
  if len(z) < 2 or len(z) % 2:
    raise app.UsageError(f"Expected an even number (at least 2) of images or "
                         f"seeds, got {len(z)}.")
  return z


def main(argv):
  del argv
  log_progress()
  model = trained_flags.load_model()
  z = _ends(model)
  try:
    walks = np.concatenate([
        trained.interpolate(z[i], z[i + 1], FLAGS.steps, FLAGS.spherical)
        for i in range(0, len(z), 2)])
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  decoded = trained.generate(model, walks, FLAGS.batch_size)
  images_lib.write_png(FLAGS.output, images_lib.image_grid(
      decoded, num_columns=FLAGS.steps,
      zoom=images_lib.display_zoom(decoded.shape[1])))
  print(f"{len(z) // 2} walks of {FLAGS.steps} steps: {FLAGS.output}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
