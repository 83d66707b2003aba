"""Claim 8: BN is the cheap simplification of whitening each layer's inputs (Ioffe & Szegedy 2015;
decorrelated batch normalization, Huang et al. 2018).

BN standardises each unit on its own; whitening also removes the correlations
between units, which costs a covariance matrix and its inverse square root per
layer and step. Huang et al.'s decorrelated BN (DBN) whitens a mini-batch by ZCA,
x -> (x - mean) V diag(1 / sqrt(lambda)) V^T from the eigendecomposition of the
batch covariance, in groups of units (the covariance of a group must be estimated
from a batch larger than the group), then scales and shifts like BN.

The batchnorm study's MLP, 128 units wide so that groups of 16 tile it (3x128
sigmoid, plain SGD, batch 60, learning rate 0.5), learns fashion_mnist with no
normalisation, with BN and with DBN between each affine map and its sigmoid; the
study counts the steps each needs to reach a validation accuracy. It then
times one training step of the same net as the width grows, for BN, for DBN in
groups and for whitening a layer's units all at once, so the cost argument is
measured rather than asserted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studies.common import Study, fit, load_images, log_final, log_learning_curves, stop_at
from studies.report import Condition, Findings, Rule, pyplot, save_figure

TITLE = "Whitening vs batch normalization: steps to a target and seconds per step (Huang et al. 2018)"
NORMS = ("none", "bn", "dbn")  # the training comparison: no normalisation, BN, grouped ZCA whitening
TIMED = ("bn", "dbn", "zca_full")  # the cost comparison; zca_full whitens all of a layer's units at once


@dataclass(frozen=True)
class Settings:
    num_train: int  # fashion_mnist training images
    num_val: int  # validation images, from the end of the train split
    max_steps: int  # SGD steps per variant at most
    eval_every: int  # steps between validation checks (one MLflow "epoch")
    widths: tuple[int, ...]  # hidden widths at which one training step is timed
    timed_steps: int  # steps timed per width (after one warm-up pass that traces and compiles)
    target_accuracy: float = 0.80  # validation accuracy whose first crossing is counted
    units: int = 128  # width of each hidden layer in the training comparison (a multiple of group_size)
    layers: int = 3
    batch_size: int = 60  # the batchnorm study's (the BN paper's) batch
    learning_rate: float = 0.5  # plain SGD, the same for every variant
    group_size: int = 16  # units whitened together by DBN: divides every width, stays below the batch
    momentum: float = 0.9  # of BN's and DBN's moving statistics
    epsilon: float = 1e-3  # added to variances (BN) and to the covariance's diagonal (DBN)
    timing_batch: int = 600  # batch of the timed steps: above the widest layer, so full whitening is defined


QUICK = Settings(num_train=20_000, num_val=2_000, max_steps=2_400, eval_every=50, widths=(64, 512),
                 timed_steps=10)
FULL = Settings(num_train=50_000, num_val=10_000, max_steps=6_000, eval_every=100, widths=(64, 128, 256, 512),
                timed_steps=20)


def whitening_layer(group_size: int | None, *, momentum: float, epsilon: float):
    """A ZCA-whitening layer (decorrelated BN) over groups of `group_size` units (None: all units)."""
    import keras
    from keras import ops

    class Whitening(keras.layers.Layer):
        """ZCA-whitens groups of units over the batch in training, with moving statistics for inference."""

        def build(self, input_shape) -> None:
            units = input_shape[-1]
            size = group_size or units
            if units % size:
                raise ValueError(f"group_size must divide the layer's {units} units, got {size}")
            self.groups, self.size = units // size, size
            eye = np.tile(np.eye(size, dtype="float32"), (self.groups, 1, 1))
            self.moving_mean = self.add_weight(shape=(self.groups, size), initializer="zeros", trainable=False)
            self.moving_covariance = self.add_weight(shape=(self.groups, size, size), trainable=False,
                                                     initializer=keras.initializers.Constant(eye))
            self.gamma = self.add_weight(shape=(units,), initializer="ones")
            self.beta = self.add_weight(shape=(units,), initializer="zeros")

        def call(self, inputs, training=False):
            grouped = ops.transpose(ops.reshape(inputs, (-1, self.groups, self.size)), (1, 0, 2))  # (G, m, g)
            if training:
                mean = ops.mean(grouped, axis=1)
                centred = grouped - mean[:, None, :]
                count = ops.cast(ops.shape(inputs)[0], inputs.dtype)
                covariance = ops.matmul(ops.transpose(centred, (0, 2, 1)), centred) / count
                self.moving_mean.assign(momentum * self.moving_mean + (1 - momentum) * mean)
                self.moving_covariance.assign(momentum * self.moving_covariance + (1 - momentum) * covariance)
            else:
                mean, covariance = self.moving_mean, self.moving_covariance
                centred = grouped - mean[:, None, :]
            covariance = covariance + epsilon * ops.eye(self.size, dtype=inputs.dtype)
            eigenvalues, eigenvectors = ops.eigh(covariance)
            inverse_root = ops.matmul(eigenvectors * ops.rsqrt(eigenvalues)[:, None, :],
                                      ops.transpose(eigenvectors, (0, 2, 1)))
            whitened = ops.reshape(ops.transpose(ops.matmul(centred, inverse_root), (1, 0, 2)),
                                   (-1, self.groups * self.size))
            return whitened * self.gamma + self.beta

    return Whitening()


def build_net(settings: Settings, norm: str, *, input_shape: tuple[int, ...], units: int, seed: int):
    """The MLP with `norm` ("none", "bn", "dbn" or "zca_full") between each affine map and its sigmoid."""
    import keras

    if norm not in (*NORMS, "zca_full"):
        raise ValueError(f"norm must be one of {(*NORMS, 'zca_full')}, got {norm!r}")
    layers = [keras.Input(input_shape), keras.layers.Flatten()]
    for index in range(settings.layers):
        layers.append(keras.layers.Dense(units, use_bias=norm == "none",
                                         kernel_initializer=keras.initializers.GlorotUniform(seed + index)))
        if norm == "bn":
            layers.append(keras.layers.BatchNormalization(momentum=settings.momentum, epsilon=settings.epsilon))
        elif norm != "none":
            group = settings.group_size if norm == "dbn" else None
            layers.append(whitening_layer(group, momentum=settings.momentum, epsilon=settings.epsilon))
        layers.append(keras.layers.Activation("sigmoid"))
    layers.append(keras.layers.Dense(10, activation="softmax",
                                     kernel_initializer=keras.initializers.GlorotUniform(seed + settings.layers)))
    return keras.Sequential(layers)


def run(study: Study) -> Findings:
    settings: Settings = study.settings
    if settings.group_size >= settings.batch_size:
        raise ValueError(f"group_size must be below batch_size {settings.batch_size}, got {settings.group_size}")
    data = load_images(num_train=settings.num_train, num_val=settings.num_val, data_dir=study.data_dir)
    rows = [_train_variant(study, data, norm) for norm in NORMS]
    timings = [_time_step(study, data, norm, width) for norm in TIMED for width in settings.widths]
    figures = [_plot_training(study, rows), _plot_timing(study, timings)]
    return Findings(
        results={"variants": rows, "timings": timings},
        measures=_measures(settings, rows, timings),
        body=_body(settings, data.source, rows, timings),
        data=data.source,
        figures=figures,
    )


def _train_variant(study: Study, data, norm: str) -> dict:
    from components.data import evaluation_batches, training_batches
    from models import build_optimizer, compile_model

    settings: Settings = study.settings
    params = {"norm": norm, "units": settings.units, "layers": settings.layers, "group_size": settings.group_size,
              "learning_rate": settings.learning_rate, "batch_size": settings.batch_size}
    with study.cell(f"train-{norm}", params):
        model = build_net(settings, norm, input_shape=data.x_train.shape[1:], units=settings.units, seed=study.seed)
        compile_model(model, optimizer=build_optimizer("sgd", settings.learning_rate), num_classes=10)
        model.jit_compile = False  # the same (TensorFlow graph) execution for every variant, eigh included
        train, _ = training_batches(data.x_train, data.y_train, batch_size=settings.batch_size, seed=study.seed)
        validation = evaluation_batches(data.x_val, data.y_val, batch_size=1_000)
        trained = fit(model, train, epochs=settings.max_steps // settings.eval_every,
                      steps_per_epoch=settings.eval_every, validation=validation,
                      callbacks=(stop_at(settings.target_accuracy),))
        accuracy = trained.history["val_accuracy"]
        reached = next((i for i, value in enumerate(accuracy) if value >= settings.target_accuracy), None)
        row = {"norm": norm, "reached": reached is not None, "val_accuracy": accuracy,
               # A variant that never got there counts every step it trained (a censored figure).
               "steps_to_target": len(accuracy) * settings.eval_every if reached is None
               else (reached + 1) * settings.eval_every}
        log_final({"steps_to_target": row["steps_to_target"]})
        log_learning_curves(trained)
    return row


def _time_step(study: Study, data, norm: str, width: int) -> dict:
    """Seconds per training step of the net at `width`, timed after a warm-up pass that compiles it."""
    from components.data import training_batches
    from models import build_optimizer, compile_model

    settings: Settings = study.settings
    with study.cell(f"time-{norm}-w{width}", {"norm": norm, "width": width, "batch_size": settings.timing_batch}):
        model = build_net(settings, norm, input_shape=data.x_train.shape[1:], units=width, seed=study.seed)
        compile_model(model, optimizer=build_optimizer("sgd", settings.learning_rate), num_classes=10)
        model.jit_compile = False  # as in training: graph execution for every variant
        train, _ = training_batches(data.x_train, data.y_train, batch_size=settings.timing_batch, seed=study.seed)
        trained = fit(model, train, epochs=2, steps_per_epoch=settings.timed_steps)
        seconds = trained.epoch_seconds[1] / settings.timed_steps
        log_final({"seconds_per_step": seconds})
    return {"norm": norm, "width": width, "seconds_per_step": seconds}


def _measures(settings: Settings, rows: list[dict], timings: list[dict]) -> dict[str, float]:
    steps = {row["norm"]: row["steps_to_target"] for row in rows}
    measures = {f"steps to target, {norm}": steps[norm] for norm in NORMS}
    measures["speed-up of BN over none"] = steps["none"] / steps["bn"]
    measures["speed-up of DBN over BN"] = steps["bn"] / steps["dbn"]
    seconds = {(t["norm"], t["width"]): t["seconds_per_step"] for t in timings}
    for (norm, width), value in seconds.items():
        measures[f"ms/step, {norm}, width {width}"] = 1_000 * value
    narrow, wide = min(settings.widths), max(settings.widths)
    for norm in TIMED[1:]:
        for width in (narrow, wide):
            measures[f"{norm} / BN time, width {width}"] = seconds[(norm, width)] / seconds[("bn", width)]
        measures[f"{norm} / BN time, growth {narrow} to {wide}"] = (
            measures[f"{norm} / BN time, width {wide}"] / measures[f"{norm} / BN time, width {narrow}"])
    return measures


def rules(settings: Settings) -> list[Rule]:
    narrow, wide = min(settings.widths), max(settings.widths)
    censored = "a variant that never reached the target counts the steps it trained"
    return [
        Rule(
            name="BN reaches the target in fewer steps than no normalisation",
            paper="MNIST 3x100 sigmoid: BN converges faster (Ioffe & Szegedy 2015)",
            conditions=(Condition("speed-up of BN over none", ">", 1.0),),
            context=("steps to target, none", "steps to target, bn"),
            note=f"steps to {settings.target_accuracy:.0%} validation accuracy; {censored}",
        ),
        Rule(
            name="whitening (DBN) reaches the target in fewer steps than BN",
            paper="DBN converges faster than BN, on MLPs and on CNNs (Huang et al. 2018)",
            conditions=(Condition("speed-up of DBN over BN", ">", 1.0),),
            context=("steps to target, bn", "steps to target, dbn"),
            note=f"ZCA over groups of {settings.group_size} units, batch {settings.batch_size}; {censored}",
        ),
        Rule(
            name="whitening costs more per step than BN, and more so as layers widen",
            paper="whitening needs a covariance and its inverse square root per layer and step, O(d^3) in the "
                  "width d; BN is O(d) (the BN paper's reason to standardise units one by one)",
            conditions=(Condition(f"zca_full / BN time, width {wide}", ">", 1.0),
                        Condition(f"zca_full / BN time, growth {narrow} to {wide}", ">", 1.0)),
            context=(f"ms/step, bn, width {narrow}", f"ms/step, bn, width {wide}", f"ms/step, zca_full, width {narrow}",
                     f"ms/step, zca_full, width {wide}", f"dbn / BN time, width {wide}"),
            note=f"one training step of the {settings.layers}-layer net at batch {settings.timing_batch}, on this "
                 "machine's 2 CPU cores (shared with other jobs, so the intervals include their noise)",
        ),
    ]


def _body(settings: Settings, source: str, rows: list[dict], timings: list[dict]) -> str:
    seconds = {(t["norm"], t["width"]): t["seconds_per_step"] for t in timings}
    lines = [
        "## Steps to the target",
        "",
        f"Data: {source}. {settings.layers}x{settings.units} sigmoid MLP, plain SGD (learning rate "
        f"{settings.learning_rate}), batch {settings.batch_size}; BN and DBN momentum {settings.momentum}, "
        f"epsilon {settings.epsilon:g}; DBN whitens groups of {settings.group_size} units. Validation every "
        f"{settings.eval_every} steps; each variant stops at the target (at most {settings.max_steps} steps).",
        "",
        "| norm | steps to target | reached | best val acc |",
        "| --- | --- | --- | --- |",
        *(f"| {r['norm']} | {r['steps_to_target']} | {'yes' if r['reached'] else 'no'} | "
          f"{max(r['val_accuracy']):.4f} |" for r in rows),
        "",
        "## Milliseconds per training step as the layers widen",
        "",
        f"Batch {settings.timing_batch}, mean of {settings.timed_steps} steps after a warm-up pass. zca_full "
        "whitens each layer's units all at once; dbn in groups.",
        "",
        "| width | " + " | ".join(TIMED) + " |",
        "| --- | " + " | ".join("---" for _ in TIMED) + " |",
        *(f"| {width} | " + " | ".join(f"{1_000 * seconds[(norm, width)]:.1f}" for norm in TIMED) + " |"
          for width in settings.widths),
    ]
    return "\n".join(lines)


def _plot_training(study: Study, rows: list[dict]):
    settings: Settings = study.settings
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        axis.plot(np.arange(1, len(row["val_accuracy"]) + 1) * settings.eval_every, row["val_accuracy"],
                  label=row["norm"])
    axis.axhline(settings.target_accuracy, color="grey", linestyle="--", label="target")
    axis.set_xlabel("SGD steps")
    axis.set_ylabel("validation accuracy")
    axis.set_title(f"{settings.layers}x{settings.units} sigmoid MLP: none vs BN vs DBN")
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, study.figure_path("val_accuracy"))


def _plot_timing(study: Study, timings: list[dict]):
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for norm in TIMED:
        mine = [t for t in timings if t["norm"] == norm]
        axis.plot([t["width"] for t in mine], [1_000 * t["seconds_per_step"] for t in mine], marker="o", label=norm)
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("layer width")
    axis.set_ylabel("ms per training step")
    axis.set_title("cost of normalising each layer")
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, study.figure_path("seconds_per_step"))
