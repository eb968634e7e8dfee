"""Layers shared by the BigBiGAN networks."""

from bigbigan_tf.layers.attention import SelfAttention
from bigbigan_tf.layers.normalization import ConditionalBatchNorm
from bigbigan_tf.layers.normalization import CrossReplicaBatchNorm
from bigbigan_tf.layers.normalization import accumulating_standing_stats
from bigbigan_tf.layers.normalization import moving_statistics_frozen
from bigbigan_tf.layers.normalization import reference_moments
from bigbigan_tf.layers.normalization import reset_standing_statistics
from bigbigan_tf.layers.normalization import standing_statistics_mode
from bigbigan_tf.layers.normalization import batch_norm_layers
from bigbigan_tf.layers.normalization import cross_replica_moments
from bigbigan_tf.layers.spectral_norm import SNConv2D
from bigbigan_tf.layers.spectral_norm import SNDense
from bigbigan_tf.layers.spectral_norm import SNEmbedding
from bigbigan_tf.layers.spectral_norm import spectral_norm_layers
