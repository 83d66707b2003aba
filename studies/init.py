"""Claim 2: batch normalization frees training from careful initialisation (Ioffe & Szegedy 2015).

The classic demonstration sweeps the standard deviation of N(0, s^2) initial
weights over 16 scales from 1 to 1e-4 (full size here: 8 over the same range)
in a 5x100 ReLU net trained on 1,000 images: without BN only the scales near a
good initialisation learn (small ones vanish, large ones explode); with BN
nearly every scale learns, because BN undoes the scale of each layer's pre-activations.

BN's epsilon matters here: BN divides by sqrt(var + epsilon), so once the
pre-activation variance falls below epsilon (at s below ~1e-3 with Keras's
default epsilon 1e-3) the layer no longer normalises and the signal shrinks
again. The study uses epsilon 1e-6 (the classic demo's is 1e-7) and, at full
size, also shows Keras's default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from studies.common import Study, fit, load_images, log_final
from studies.report import Condition, Findings, Rule, pyplot, save_figure

TITLE = "Batch normalization frees training from careful initialisation (Ioffe & Szegedy 2015)"


@dataclass(frozen=True)
class Settings:
    num_scales: int  # initial weight stds, log-spaced from largest_std down to smallest_std
    epochs: int  # passes over the training images
    bn_epsilons: tuple[float, ...]  # one BN variant per epsilon; the first is the headline
    largest_std: float = 1.0
    smallest_std: float = 1e-4
    num_train: int = 1_000  # fashion_mnist training images (the classic demo's 1,000)
    num_val: int = 1_000  # validation images, from the end of the train split
    units: int = 100  # width of each hidden layer
    layers: int = 5  # hidden layers
    activation: str = "relu"
    # SGD with momentum, as in the classic demos. Adam would partly hide the effect: it
    # rescales tiny gradients, so nets initialised too small still creep towards learning.
    optimizer: str = "momentum"  # one of models.OPTIMIZERS, the same for every cell
    learning_rate: float = 0.01
    batch_size: int = 50
    bn_momentum: float = 0.9  # moving statistics current after a few hundred steps
    learned_accuracy: float = 0.5  # final training accuracy that counts as "learned" (chance: 0.1)


QUICK = Settings(num_scales=8, epochs=10, bn_epsilons=(1e-6,))
FULL = Settings(num_scales=8, epochs=20, bn_epsilons=(1e-6, 1e-3))  # the demo's 16 scales, halved to fit the time budget


def weight_stds(settings: Settings) -> list[float]:
    return [float(s) for s in np.logspace(math.log10(settings.largest_std),
                                          math.log10(settings.smallest_std), settings.num_scales)]


def run(study: Study) -> Findings:
    settings: Settings = study.settings
    data = load_images(num_train=settings.num_train, num_val=settings.num_val, data_dir=study.data_dir)
    variants: list[float | None] = [None, *settings.bn_epsilons]  # None: without BN
    rows = [_train_cell(study, data, std, epsilon) for epsilon in variants for std in weight_stds(settings)]
    summary = [_summarise(settings, rows, epsilon) for epsilon in variants]
    figure = _plot(study, rows, variants)
    return Findings(
        results={"cells": rows, "summary": summary},
        measures=_measures(rows, summary),
        body=_body(settings, data.source, rows, summary, variants),
        data=data.source,
        figures=[figure],
    )


def variant_label(epsilon: float | None) -> str:
    return "no BN" if epsilon is None else f"BN eps={epsilon:g}"


def _train_cell(study: Study, data, std: float, epsilon: float | None) -> dict:
    from components.data import evaluation_batches, training_batches
    from models import build_model, build_optimizer, compile_model

    settings: Settings = study.settings
    batch_norm = epsilon is not None
    name = f"{'bn' if batch_norm else 'plain'}-std{std:.2e}" + (f"-eps{epsilon:g}" if batch_norm else "")
    params = {"init_std": std, "batch_norm": batch_norm, "bn_epsilon": epsilon if batch_norm else "none",
              "optimizer": settings.optimizer, "learning_rate": settings.learning_rate}
    with study.cell(name, params):
        model = build_model(
            input_shape=data.x_train.shape[1:], input_kind="image", num_classes=data.num_classes,
            encoder="mlp", units=settings.units, layers=settings.layers, batch_norm=batch_norm,
            dropout=0.0, activation=settings.activation, init_std=std,
            bn_momentum=settings.bn_momentum, bn_epsilon=epsilon or 1e-3, seed=study.seed,
        )
        compile_model(model, optimizer=build_optimizer(settings.optimizer, settings.learning_rate),
                      num_classes=data.num_classes)
        model.jit_compile = False  # XLA compiles longer than these few hundred steps take
        train, steps = training_batches(data.x_train, data.y_train, batch_size=settings.batch_size, seed=study.seed)
        trained = fit(model, train, epochs=settings.epochs, steps_per_epoch=steps)
        # Inference-mode accuracies after training: BN uses its moving statistics.
        train_accuracy, val_accuracy = (
            model.evaluate(evaluation_batches(x, y, batch_size=1_000), verbose=0)[1]
            for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val))
        )
        final = {"final_train_accuracy": float(train_accuracy), "final_val_accuracy": float(val_accuracy),
                 "final_train_loss": trained.last("loss")}
        log_final({k: v for k, v in final.items() if math.isfinite(v)})
    return {"cell": name, "variant": variant_label(epsilon), "init_std": std, **final,
            "learned": final["final_train_accuracy"] >= settings.learned_accuracy}


def _summarise(settings: Settings, rows: list[dict], epsilon: float | None) -> dict:
    label = variant_label(epsilon)
    mine = [row for row in rows if row["variant"] == label]
    learned = [row["init_std"] for row in mine if row["learned"]]
    return {"variant": label, "scales_learned": len(learned), "scales": len(mine), "learned_stds": learned}


def _measures(rows: list[dict], summary: list[dict]) -> dict[str, float]:
    plain, headline, *_ = summary
    measures = {f"scales learned, {entry['variant']}": entry["scales_learned"] for entry in summary}
    measures[f"scales learned, {headline['variant']} minus no BN"] = (
        headline["scales_learned"] - plain["scales_learned"])
    for row in rows:
        measures[f"train accuracy, {row['variant']}, std {row['init_std']:.2e}"] = row["final_train_accuracy"]
    return measures


def rules(settings: Settings) -> list[Rule]:
    headline = variant_label(settings.bn_epsilons[0])
    return [Rule(
        name="BN frees training from careful initialisation",
        paper="without BN badly scaled weights stop learning; with BN training works across a wide "
              "range of scales (classic demo: 16 stds from 1 to 1e-4)",
        conditions=(Condition(f"scales learned, {headline} minus no BN", ">", 0.0),),
        context=("scales learned, no BN", *(f"scales learned, {variant_label(e)}" for e in settings.bn_epsilons)),
        note=f"of {settings.num_scales} scales; learned = training accuracy >= {settings.learned_accuracy:.0%}",
    )]


def _body(settings: Settings, source: str, rows: list[dict], summary: list[dict],
          variants: list[float | None]) -> str:
    stds = weight_stds(settings)
    by_cell = {(row["variant"], row["init_std"]): row for row in rows}
    labels = [variant_label(epsilon) for epsilon in variants]
    lines = [
        "## Final training accuracy per initial weight std",
        "",
        f"Data: {source}, {settings.num_train} training images. {settings.layers}x{settings.units} "
        f"{settings.activation} MLP, every kernel drawn from N(0, std^2); {settings.optimizer} "
        f"(learning rate {settings.learning_rate}), batch {settings.batch_size}, {settings.epochs} epochs. "
        "Training accuracy is measured after training in inference mode.",
        "",
        "| init std | " + " | ".join(labels) + " |",
        "| --- | " + " | ".join("---" for _ in labels) + " |",
        *(f"| {std:.2e} | " + " | ".join(_cell_text(by_cell[(label, std)]) for label in labels) + " |"
          for std in stds),
        "",
        "| variant | scales learned |",
        "| --- | --- |",
        *(f"| {s['variant']} | {s['scales_learned']}/{s['scales']} |" for s in summary),
    ]
    return "\n".join(lines)


def _cell_text(row: dict) -> str:
    mark = " (learned)" if row["learned"] else ""
    loss = "" if math.isfinite(row["final_train_loss"]) else ", loss not finite"
    return f"{row['final_train_accuracy']:.3f}{mark}{loss}"


def _plot(study: Study, rows: list[dict], variants: list[float | None]):
    settings: Settings = study.settings
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for epsilon in variants:
        label = variant_label(epsilon)
        mine = [row for row in rows if row["variant"] == label]
        axis.plot([r["init_std"] for r in mine], [r["final_train_accuracy"] for r in mine],
                  marker="o", label=label)
    axis.axhline(settings.learned_accuracy, color="grey", linestyle="--", label="learned threshold")
    axis.set_xscale("log")
    axis.set_xlabel("initial weight std")
    axis.set_ylabel("final training accuracy")
    axis.set_title(f"{settings.layers}x{settings.units} {settings.activation} MLP")
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, study.figure_path("train_accuracy"))
