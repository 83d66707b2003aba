"""Names of the model choices and the layer blocks every architecture is made of.

A dense or convolutional block is the textbook sequence
affine transform -> BatchNormalization -> nonlinearity -> Dropout
(Ioffe & Szegedy 2015 put BN between the affine map and the nonlinearity;
Srivastava et al. 2014 drop activations, which Keras implements as inverted
dropout so inference needs no rescaling).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import keras

from models.vocabulary import ACTIVATIONS, RECURRENT_ENCODERS, check_choice, check_range

_RECURRENT_LAYERS = {
    "simple_rnn": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}

# Keras's own default for Embedding ("uniform"), restated so it can carry a seed.
_EMBEDDING_INIT_LIMIT = 0.05
# Spacing between the seed streams of two models built with neighbouring seeds,
# so that model seed 1 does not reuse the layer seeds of model seed 0.
_SEED_STRIDE = 1000




def seed_stream(seed: int | None) -> Iterator[int | None]:
    """Yield one distinct seed per layer, or None forever when `seed` is None.

    Keras 3 initializers built from the same integer seed draw the same numbers,
    so every initializer and dropout layer needs its own seed for the model to be
    both deterministic and free of accidentally identical weights.
    """
    for offset in itertools.count(1):
        yield None if seed is None else seed * _SEED_STRIDE + offset


def kernel_initializer(init_std: float | None, seed: int | None) -> keras.initializers.Initializer:
    """N(0, init_std^2) when a scale is asked for, else Keras's default Glorot uniform."""
    if init_std is None:
        return keras.initializers.GlorotUniform(seed=seed)
    return keras.initializers.RandomNormal(mean=0.0, stddev=init_std, seed=seed)


def embedding_initializer(seed: int | None) -> keras.initializers.Initializer:
    return keras.initializers.RandomUniform(
        minval=-_EMBEDDING_INIT_LIMIT, maxval=_EMBEDDING_INIT_LIMIT, seed=seed
    )


@dataclass(frozen=True)
class BlockConfig:
    """How every hidden dense or convolutional block of one model is built."""

    units: int  # width of a dense layer, or number of filters of a conv layer
    batch_norm: bool  # BatchNormalization between the affine map and the nonlinearity
    dropout: float  # fraction of activations zeroed in training; 0 disables Dropout
    activation: str  # nonlinearity, one of ACTIVATIONS
    init_std: float | None  # stddev of a N(0, s^2) kernel init; None keeps Glorot uniform
    bn_momentum: float  # BN moving-average momentum (Keras convention: weight of the old value)
    bn_epsilon: float  # BN variance epsilon

    def __post_init__(self) -> None:
        check_range("units", self.units)
        check_range("dropout", self.dropout)
        check_choice("activation", self.activation, ACTIVATIONS)
        if self.init_std is not None:
            check_range("init_std", self.init_std)
        check_range("bn_momentum", self.bn_momentum)
        check_range("bn_epsilon", self.bn_epsilon)


def _normalise_activate_drop(
    x: keras.KerasTensor, block: BlockConfig, seeds: Iterator[int | None], name: str
) -> keras.KerasTensor:
    if block.batch_norm:
        x = keras.layers.BatchNormalization(
            momentum=block.bn_momentum, epsilon=block.bn_epsilon, name=f"{name}_bn"
        )(x)
    x = keras.layers.Activation(block.activation, name=f"{name}_{block.activation}")(x)
    if block.dropout > 0:
        x = keras.layers.Dropout(block.dropout, seed=next(seeds), name=f"{name}_dropout")(x)
    return x


def dense_block(
    x: keras.KerasTensor, block: BlockConfig, seeds: Iterator[int | None], name: str
) -> keras.KerasTensor:
    """Dense -> [BN] -> activation -> [Dropout].

    The Dense bias is dropped under BN because BN's beta takes its role: the
    mean subtraction would cancel any bias anyway.
    """
    x = keras.layers.Dense(
        block.units,
        use_bias=not block.batch_norm,
        kernel_initializer=kernel_initializer(block.init_std, next(seeds)),
        name=f"{name}_dense",
    )(x)
    return _normalise_activate_drop(x, block, seeds, name)


def conv_block(
    x: keras.KerasTensor, block: BlockConfig, seeds: Iterator[int | None], name: str, *, rank: int
) -> keras.KerasTensor:
    """Conv (3 or 3x3, same padding) -> [BN] -> activation -> [Dropout] -> max-pool by 2.

    Pooling uses same padding so that tiny inputs (a 1-wide feature map) never
    shrink to nothing however many blocks are stacked.
    """
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv1D
    pool = keras.layers.MaxPooling2D if rank == 2 else keras.layers.MaxPooling1D
    x = conv(
        block.units,
        kernel_size=3,
        padding="same",
        use_bias=not block.batch_norm,
        kernel_initializer=kernel_initializer(block.init_std, next(seeds)),
        name=f"{name}_conv",
    )(x)
    x = _normalise_activate_drop(x, block, seeds, name)
    return pool(pool_size=2, padding="same", name=f"{name}_pool")(x)


def recurrent_layer(
    cell: str,
    units: int,
    *,
    init_std: float | None,
    seeds: Iterator[int | None],
    name: str,
    return_sequences: bool,
    return_state: bool = False,
    go_backwards: bool = False,
) -> keras.layers.Layer:
    """A SimpleRNN, LSTM or GRU layer with the usual tanh/sigmoid cells and seeded init.

    The recurrent kernel keeps Keras's orthogonal init (Saxe et al. 2014),
    which preserves the state's norm through time at the start of training.
    """
    check_choice("cell", cell, RECURRENT_ENCODERS)
    return _RECURRENT_LAYERS[cell](
        units,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        kernel_initializer=kernel_initializer(init_std, next(seeds)),
        recurrent_initializer=keras.initializers.Orthogonal(seed=next(seeds)),
        name=name,
    )
