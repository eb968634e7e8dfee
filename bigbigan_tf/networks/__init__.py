"""The BigBiGAN networks: generator G, encoder E, discriminator D, prior P_z."""

from bigbigan_tf.networks.discriminator import Discriminator
from bigbigan_tf.networks.mlp import ResidualMLP
from bigbigan_tf.networks.encoder import Encoder
from bigbigan_tf.networks.generator import Generator
from bigbigan_tf.networks.prior import Prior
