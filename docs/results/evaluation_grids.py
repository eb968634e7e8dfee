"""Redraws a run's sample and reconstruction grids with the evaluation's
standing statistics (restore's default), for the same z and digits
as the grids written during training.

  python docs/results/evaluation_grids.py RUN_DIR OUT_PREFIX

writes OUT_PREFIX_samples.png and OUT_PREFIX_reconstructions.png.
"""
import sys

from bigbigan_tf import actions
from bigbigan_tf import bindings
from bigbigan_tf import restore
from bigbigan_tf.evaluation import images


def main(run_dir: str, prefix: str) -> None:
  trainer = restore.restore_trainer(run_dir)
  model = trainer.ema_model()
  fixed = actions.fixed_inputs(model, bindings.bound_value("train.seed", 0),
                               bindings.bound_value("train.dataset_split",
                                                    "train"))
  arrays = trainer.image_arrays(fixed["z"], fixed["x"])
  zoom = images.display_zoom(model.resolution)
  images.write_png(f"{prefix}_samples.png",
                   images.image_grid(arrays["samples"], zoom=zoom))
  images.write_png(f"{prefix}_reconstructions.png",
                   images.reconstruction_grid(arrays["real"],
                                              arrays["reconstructions"],
                                              zoom=zoom))


if __name__ == "__main__":
  main(*sys.argv[1:])
