"""Claim 3: dropout reduces overfitting (Srivastava et al. 2014).

A 2x512 ReLU net learns 1,000 fashion_mnist images with Adam at several
dropout rates, long enough for the net without dropout to overfit. Accuracies
and losses on the training images are measured after training in inference
mode (every unit used; Keras's inverted dropout scaled activations during
training, so none is needed now), beside the validation ones.

Srivastava et al. approximate the average over the 2^n thinned nets with that
single deterministic pass ("weight scaling") and show that Monte-Carlo
averaging over ~50 sampled nets matches it. The study repeats that check: the
fraction of validation images where the class of the MC average agrees with
the class of the deterministic pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from studies.common import Study, fit, load_images, log_final, log_learning_curves
from studies.report import Claim, Findings, pyplot, save_figure

TITLE = "Dropout reduces overfitting (Srivastava et al. 2014)"


@dataclass(frozen=True)
class Settings:
    rates: tuple[float, ...]  # dropout rates of the grid: 0 first, a moderate one, an underfitting one
    epochs: int  # passes over the training images
    num_val: int  # validation images, from the end of the train split
    moderate_rate: float = 0.5  # the rate compared with no dropout (the paper's hidden-unit rate)
    high_rate: float = 0.9  # the rate expected to underfit
    num_train: int = 1_000  # fashion_mnist training images: few, so the net overfits
    units: int = 512
    layers: int = 2
    learning_rate: float = 1e-3  # Adam
    batch_size: int = 100
    mc_passes: int = 50  # stochastic forward passes averaged by Monte-Carlo dropout


QUICK = Settings(rates=(0.0, 0.5, 0.9), epochs=40, num_val=2_000)
FULL = Settings(rates=(0.0, 0.2, 0.5, 0.7, 0.9), epochs=100, num_val=10_000)


def run(study: Study) -> Findings:
    settings: Settings = study.settings
    for rate in (0.0, settings.moderate_rate, settings.high_rate):
        if rate not in settings.rates:
            raise ValueError(f"rates must include {rate!r}, got {settings.rates!r}")
    data = load_images(num_train=settings.num_train, num_val=settings.num_val, data_dir=study.data_dir)
    rows = [_train_rate(study, data, rate) for rate in settings.rates]
    figure = _plot(study, rows)
    return Findings(
        results={"dataset": data.source, "rates": rows},
        claims=_claims(settings, {row["rate"]: row for row in rows}),
        body=_body(settings, data.source, rows),
        figures=[figure],
    )


def _train_rate(study: Study, data, rate: float) -> dict:
    from components.data import evaluation_batches, training_batches
    from models import build_model, build_optimizer, compile_model

    settings: Settings = study.settings
    params = {"dropout": rate, "units": settings.units, "layers": settings.layers,
              "optimizer": "adam", "learning_rate": settings.learning_rate, "epochs": settings.epochs}
    with study.cell(f"dropout-{rate:g}", params):
        model = build_model(
            input_shape=data.x_train.shape[1:], input_kind="image", num_classes=data.num_classes,
            encoder="mlp", units=settings.units, layers=settings.layers, batch_norm=False,
            dropout=rate, activation="relu", seed=study.seed,
        )
        compile_model(model, optimizer=build_optimizer("adam", settings.learning_rate),
                      num_classes=data.num_classes)
        model.jit_compile = False  # XLA compiles longer than these few hundred steps take
        train, steps = training_batches(data.x_train, data.y_train, batch_size=settings.batch_size, seed=study.seed)
        validation = evaluation_batches(data.x_val, data.y_val, batch_size=1_000)
        trained = fit(model, train, epochs=settings.epochs, steps_per_epoch=steps, validation=validation)
        train_loss, train_accuracy = model.evaluate(
            evaluation_batches(data.x_train, data.y_train, batch_size=1_000),
            verbose=0,
        )
        final = {
            "train_accuracy": float(train_accuracy),
            "val_accuracy": trained.last("val_accuracy"),
            "train_loss": float(train_loss),
            "val_loss": trained.last("val_loss"),
            "best_val_accuracy": max(trained.history["val_accuracy"]),
            "min_val_loss": min(trained.history["val_loss"]),
        }
        final["accuracy_gap"] = final["train_accuracy"] - final["val_accuracy"]
        final["loss_gap"] = final["val_loss"] - final["train_loss"]
        if rate > 0:
            final.update(_monte_carlo(model, data, settings.mc_passes))
        log_final(final)
        log_learning_curves(trained)
    return {"rate": rate, **final}


def _monte_carlo(model, data, passes: int) -> dict[str, float]:
    """Agreement of the MC-dropout average over `passes` with the deterministic pass."""
    import keras

    deterministic = keras.ops.convert_to_numpy(model(data.x_val, training=False))
    average = np.zeros_like(deterministic)
    for _ in range(passes):
        average += keras.ops.convert_to_numpy(model(data.x_val, training=True))
    average /= passes
    mc_class, deterministic_class = average.argmax(axis=1), deterministic.argmax(axis=1)
    return {
        "mc_agreement": float((mc_class == deterministic_class).mean()),
        "mc_val_accuracy": float((mc_class == data.y_val).mean()),
    }


def _claims(settings: Settings, by_rate: dict[float, dict]) -> list[Claim]:
    none, moderate, high = by_rate[0.0], by_rate[settings.moderate_rate], by_rate[settings.high_rate]
    rate = f"{settings.moderate_rate:g}"
    noise = _difference_standard_error(none["val_accuracy"], moderate["val_accuracy"], settings.num_val)
    return [
        Claim(
            name="dropout reduces overfitting",
            paper="dropout prevents overfitting: training and test performance stay closer together",
            measured=f"train-val accuracy gap {none['accuracy_gap']:.3f} without dropout vs "
                     f"{moderate['accuracy_gap']:.3f} at rate {rate}; val-train loss gap "
                     f"{none['loss_gap']:.3f} vs {moderate['loss_gap']:.3f} (val loss {none['val_loss']:.3f} "
                     f"vs {moderate['val_loss']:.3f})",
            held=moderate["accuracy_gap"] < none["accuracy_gap"] and moderate["loss_gap"] < none["loss_gap"],
        ),
        Claim(
            name="dropout lowers the error on held-out data",
            paper="MNIST test error 1.60% without dropout, ~1.25% with (accuracy 98.40% vs ~98.75%)",
            measured=f"validation error {1 - none['val_accuracy']:.2%} without vs "
                     f"{1 - moderate['val_accuracy']:.2%} at rate {rate}; a difference under "
                     f"{noise:.2%} (one standard error) counts as noise",
            held=moderate["val_accuracy"] - none["val_accuracy"] > noise,
        ),
        Claim(
            name="too much dropout underfits",
            paper="retaining too few units (p small) raises training and test error",
            measured=f"training accuracy {high['train_accuracy']:.3f} at rate {settings.high_rate:g} vs "
                     f"{none['train_accuracy']:.3f} without dropout and {moderate['train_accuracy']:.3f} "
                     f"at rate {rate}",
            held=high["train_accuracy"] < min(none["train_accuracy"], moderate["train_accuracy"]),
        ),
        Claim(
            name="one scaled deterministic pass stands in for the average of thinned nets",
            paper="Monte-Carlo averaging over ~50 sampled nets matches the weight-scaling pass",
            measured=f"MC average over {settings.mc_passes} passes agrees with the deterministic pass on "
                     f"{moderate['mc_agreement']:.1%} of validation images at rate {rate} "
                     f"(MC accuracy {moderate['mc_val_accuracy']:.3f} vs {moderate['val_accuracy']:.3f})",
            held=moderate["mc_agreement"] >= 0.95,
        ),
    ]


def _difference_standard_error(first: float, second: float, count: int) -> float:
    """Standard error of the difference of two accuracies, each measured on `count` images."""
    return math.sqrt((first * (1 - first) + second * (1 - second)) / count)


def _body(settings: Settings, source: str, rows: list[dict]) -> str:
    def mc(row: dict, key: str) -> str:
        return f"{row[key]:.3f}" if key in row else "-"

    lines = [
        "## Per dropout rate",
        "",
        f"Data: {source}, {settings.num_train} training images. {settings.layers}x{settings.units} ReLU MLP "
        f"with dropout after each hidden layer, Adam (learning rate {settings.learning_rate}), batch "
        f"{settings.batch_size}, {settings.epochs} epochs, no BN. Train figures are measured after "
        "training in inference mode; the gaps are train minus val accuracy and val minus train loss. "
        "The paper's error rates come from MNIST with 60,000 training images and larger nets: compare "
        "directions, not levels.",
        "",
        "| rate | train acc | val acc | acc gap | train loss | val loss | loss gap | best val acc | "
        "min val loss | MC agreement | MC val acc |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(f"| {r['rate']:g} | {r['train_accuracy']:.3f} | {r['val_accuracy']:.3f} | {r['accuracy_gap']:.3f} | "
          f"{r['train_loss']:.3f} | {r['val_loss']:.3f} | {r['loss_gap']:.3f} | {r['best_val_accuracy']:.3f} | "
          f"{r['min_val_loss']:.3f} | {mc(r, 'mc_agreement')} | {mc(r, 'mc_val_accuracy')} |" for r in rows),
    ]
    return "\n".join(lines)


def _plot(study: Study, rows: list[dict]):
    plt = pyplot()
    rates = [row["rate"] for row in rows]
    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    accuracy.plot(rates, [r["train_accuracy"] for r in rows], marker="o", label="train")
    accuracy.plot(rates, [r["val_accuracy"] for r in rows], marker="o", label="validation")
    loss.plot(rates, [r["train_loss"] for r in rows], marker="o", label="train")
    loss.plot(rates, [r["val_loss"] for r in rows], marker="o", label="validation")
    for axis, title in ((accuracy, "accuracy"), (loss, "loss")):
        axis.set_xlabel("dropout rate")
        axis.set_title(f"final {title}")
        axis.grid(alpha=0.3)
        axis.legend()
    return save_figure(figure, study.figure_path("rates"))
