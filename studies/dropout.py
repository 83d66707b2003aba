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

from dataclasses import dataclass

import numpy as np

from studies.common import Study, fit, load_images, log_final, log_learning_curves
from studies.report import Condition, Findings, Rule, pyplot, save_figure

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
        results={"rates": rows},
        measures=_measures(settings, {row["rate"]: row for row in rows}),
        body=_body(settings, data.source, rows),
        data=data.source,
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


def _measures(settings: Settings, by_rate: dict[float, dict]) -> dict[str, float]:
    measures = {}
    for rate, row in by_rate.items():
        for key in ("train_accuracy", "val_accuracy", "accuracy_gap", "train_loss", "val_loss", "loss_gap",
                    "mc_agreement"):
            if key in row:
                measures[f"{key}, rate {rate:g}"] = row[key]
        measures[f"val error %, rate {rate:g}"] = 100 * (1 - row["val_accuracy"])
    none, moderate, high = by_rate[0.0], by_rate[settings.moderate_rate], by_rate[settings.high_rate]
    rate = f"{settings.moderate_rate:g}"
    measures |= {
        f"accuracy gap, none minus {rate}": none["accuracy_gap"] - moderate["accuracy_gap"],
        f"loss gap, none minus {rate}": none["loss_gap"] - moderate["loss_gap"],
        f"val error % points, none minus {rate}": 100 * (moderate["val_accuracy"] - none["val_accuracy"]),
        f"train accuracy, min(none, {rate}) minus {settings.high_rate:g}": (
            min(none["train_accuracy"], moderate["train_accuracy"]) - high["train_accuracy"]),
    }
    return measures


def rules(settings: Settings) -> list[Rule]:
    rate, high = f"{settings.moderate_rate:g}", f"{settings.high_rate:g}"
    return [
        Rule(
            name="dropout reduces overfitting",
            paper="dropout prevents overfitting: training and test performance stay closer together",
            conditions=(Condition(f"accuracy gap, none minus {rate}", ">", 0.0),
                        Condition(f"loss gap, none minus {rate}", ">", 0.0)),
            context=("accuracy_gap, rate 0", f"accuracy_gap, rate {rate}", "loss_gap, rate 0",
                     f"loss_gap, rate {rate}"),
            note="gaps: train minus val accuracy, val minus train loss",
        ),
        Rule(
            name="dropout lowers the error on held-out data",
            paper="MNIST test error 1.60% without dropout, ~1.25% with (accuracy 98.40% vs ~98.75%)",
            conditions=(Condition(f"val error % points, none minus {rate}", ">", 0.0),),
            context=("val error %, rate 0", f"val error %, rate {rate}"),
            note=f"{settings.num_train} training images; the paper's regime is the dropout_regime study",
        ),
        Rule(
            name="too much dropout underfits",
            paper="retaining too few units (p small) raises training and test error",
            conditions=(Condition(f"train accuracy, min(none, {rate}) minus {high}", ">", 0.0),),
            context=("train_accuracy, rate 0", f"train_accuracy, rate {rate}", f"train_accuracy, rate {high}"),
        ),
        Rule(
            name="one scaled deterministic pass stands in for the average of thinned nets",
            paper="Monte-Carlo averaging over ~50 sampled nets matches the weight-scaling pass",
            conditions=(Condition(f"mc_agreement, rate {rate}", ">", 0.95),),
            note=f"fraction of validation images where the class of the MC average over {settings.mc_passes} "
                 "passes is the deterministic pass's",
        ),
    ]


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
