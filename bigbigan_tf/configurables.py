"""Every module that defines gin configurables, imported in one place.

`config.parse` imports this module first, so that a binding to any
configurable of the library resolves (and a typo fails naming the unknown
configurable or parameter). A module that adds a configurable is listed
here; the modules listed import neither this module nor `config`.
"""

# pylint: disable=unused-import
from bigbigan_tf import data  # make_dataset, load_arrays
from bigbigan_tf import model  # bigbigan
from bigbigan_tf import networks  # generator, encoder, discriminator, prior
from bigbigan_tf import training  # trainer, train
from bigbigan_tf.evaluation import evaluator  # evaluation
from bigbigan_tf.evaluation import feature_extractors  # *_extractor
from bigbigan_tf.evaluation import linear_probe  # linear_probe, knn_accuracy
