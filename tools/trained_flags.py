"""Flags shared by the tools that use a trained model (bigbigan-encode,
-reconstruct, -interpolate, -neighbours, -sample): which model, how many
images per batch."""

from absl import app
from absl import flags

from bigbigan_tf import trained

flags.DEFINE_string("model_dir", None,
                    "A training run's directory (its EMA networks with "
                    "standing batch-norm statistics).")
flags.DEFINE_string("checkpoint", None,
                    "With --model_dir: a checkpoint path (default: latest).")
flags.DEFINE_string("hub_module", None,
                    "Instead of --model_dir: an exported bigbigan module "
                    "(bigbigan-export's EXPORT/bigbigan).")
flags.DEFINE_integer("batch_size", 64, "Images per call of the networks.")

FLAGS = flags.FLAGS


def load_model():
  """The model the flags name; a usage error if they name none or two."""
  try:
    return trained.load(FLAGS.model_dir, FLAGS.hub_module, FLAGS.checkpoint)
  except ValueError as error:
    raise app.UsageError(str(error)) from error


def images_for(model, sources):
  """The images of `sources` (files, folders, globs) at E's resolution."""
  try:
    trained.require_encoder(model)
    return trained.read_images(trained.image_paths(sources),
                               model.encoder_resolution)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
