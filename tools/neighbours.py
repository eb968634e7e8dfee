r"""Finds the nearest images of a gallery in a trained encoder's feature space.

  bigbigan-neighbours --model_dir=RUN --queries=q1.jpg --queries=q2.jpg \
      --gallery=PHOTOS --k=8 --output=neighbours.png
  bigbigan-neighbours --hub_module=EXPORT/bigbigan --queries='q/*.png' \
      --gallery=PHOTOS --features_cache=/tmp/gallery.npz --output=nn.png

One row per query: the query, then its --k nearest gallery images by cosine
distance of --feature (avepool_feat or bn_crelu_feat), nearest first, each
with its distance in its corner (the layout of the paper's nearest-neighbour
figure). The names and distances go
to OUTPUT.json and are printed. --features_cache keeps the gallery's
features: reused while the gallery's files, the feature and the model are
the same, written again otherwise.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging

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
flags.DEFINE_multi_string("queries", None, "Query image files, folders, globs.")
flags.DEFINE_multi_string("gallery", None, "Gallery image files, folders, globs.")
flags.DEFINE_integer("k", 8, "Neighbours per query.")
flags.DEFINE_enum("feature", "avepool_feat", list(trained.FEATURES),
                  "Feature space of the distances.")
flags.DEFINE_string("features_cache", None,
                    "An .npz of the gallery's features, reused when valid.")
flags.DEFINE_string("output", None, "The PNG to write (one row per query).")
flags.mark_flags_as_required(["queries", "gallery", "output"])


def _model_name():
  return FLAGS.hub_module or f"{FLAGS.model_dir}@{FLAGS.checkpoint or 'latest'}"


def _gallery_features(model, gallery):
  """(gallery Images, features), from the cache when it matches."""
  cache = FLAGS.features_cache
  if cache and tf.io.gfile.exists(cache):
    stored = trained.load_npz(cache)
    if (list(stored["file_names"]) == gallery.paths
        and str(stored["feature"]) == FLAGS.feature
        and str(stored["model"]) == _model_name()):
      logging.info("Gallery features from %s.", cache)
      return stored["features"]
    logging.info("%s is of another gallery, feature or model: encoding "
                 "again.", cache)
  features = trained.encode(model, gallery.pixels,
                            FLAGS.batch_size)[FLAGS.feature]
  if cache:
    trained.save_npz(cache, file_names=np.array(gallery.paths),
                     features=features, feature=FLAGS.feature,
                     model=_model_name())
  return features


def main(argv):
  del argv
  log_progress()
  model = trained_flags.load_model()
  queries = trained_flags.images_for(model, FLAGS.queries)
  gallery = trained_flags.images_for(model, FLAGS.gallery)
  gallery_features = _gallery_features(model, gallery)
  query_features = trained.encode(model, queries.pixels,
                                  FLAGS.batch_size)[FLAGS.feature]
  try:
    order, distances = trained.nearest_neighbours(query_features,
                                                  gallery_features, FLAGS.k)
  except ValueError as error:
    raise app.UsageError(str(error)) from error
  rows = np.concatenate([
      np.concatenate([queries.pixels[q:q + 1], gallery.pixels[order[q]]])
      for q in range(len(order))])
  zoom = images_lib.display_zoom(rows.shape[1])
  grid = images_lib.image_grid(rows, num_columns=FLAGS.k + 1, zoom=zoom)
  # Each neighbour's cosine distance in its corner.
  labels = [[""] + [f"{d:.3f}" for d in row] for row in distances]
  images_lib.write_png(FLAGS.output, trained.label_cells(
      grid, labels, cell=rows.shape[1] * zoom))
  results = [{"query": path,
              "neighbours": [{"file": gallery.paths[i], "distance": float(d)}
                             for i, d in zip(order[q], distances[q])]}
             for q, path in enumerate(queries.paths)]
  with tf.io.gfile.GFile(os.path.splitext(FLAGS.output)[0] + ".json",
                         "w") as f:
    json.dump(results, f, indent=1)
  for result in results:
    print(result["query"])
    for neighbour in result["neighbours"]:
      print(f"  {neighbour['distance']:.4f}  {neighbour['file']}")
  print(f"{len(results)} queries, {FLAGS.k} neighbours each: {FLAGS.output}")


def run():
  """Console-script entry point."""
  app.run(main)


if __name__ == "__main__":
  run()
