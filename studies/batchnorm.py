"""Claim 1: batch normalization speeds training (Ioffe & Szegedy 2015).

The paper's MNIST experiment: a 3x100 sigmoid MLP, plain SGD, batches of 60;
the BN net converges faster, and BN-Inception matched Inception's accuracy in
14x fewer steps. Here the same net learns fashion_mnist with and without BN
(BN between the affine map and the sigmoid, as in the paper), and the study
counts the SGD steps each needs to reach a stated validation accuracy.
Validation runs every `eval_every` steps; in MLflow one such interval is one
"epoch" (step = interval index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studies.common import Study, fit, load_images, log_final, log_learning_curves, stop_at
from studies.report import Condition, Findings, Rule, pyplot, save_figure

TITLE = "Batch normalization speeds training (Ioffe & Szegedy 2015)"


@dataclass(frozen=True)
class Settings:
    num_train: int  # fashion_mnist training images
    num_val: int  # validation images, from the end of the train split
    max_steps: int  # SGD steps per variant at most
    eval_every: int  # steps between validation checks (one MLflow "epoch")
    stop_at_target: bool  # stop a variant once it reaches the target (saves time in quick runs)
    init_stds: tuple[float | None, ...]  # weight init per row of the grid; None = Keras's Glorot uniform
    target_accuracy: float = 0.80  # validation accuracy whose first crossing is counted
    units: int = 100  # width of each hidden layer (the paper's 100)
    layers: int = 3  # hidden layers (the paper's 3)
    activation: str = "sigmoid"  # the paper's nonlinearity
    batch_size: int = 60  # the paper's mini-batch
    learning_rate: float = 0.5  # plain SGD, the same for both variants
    bn_momentum: float = 0.9  # Keras's 0.99 lets the inference statistics lag in short runs
    bn_epsilon: float = 1e-3  # Keras's default (the init study shows where a smaller one matters)


QUICK = Settings(
    num_train=20_000, num_val=2_000, max_steps=2_400, eval_every=50, stop_at_target=True,
    init_stds=(None,),
)
FULL = Settings(
    num_train=50_000, num_val=10_000, max_steps=7_000, eval_every=100, stop_at_target=False,
    init_stds=(None, 0.01),
)


def run(study: Study) -> Findings:
    settings: Settings = study.settings
    data = load_images(num_train=settings.num_train, num_val=settings.num_val, data_dir=study.data_dir)
    rows = []
    for init_std in settings.init_stds:
        for batch_norm in (False, True):
            rows.append(_train_variant(study, data, init_std, batch_norm))
    comparisons = [_compare(settings, rows, init_std) for init_std in settings.init_stds]
    figure = _plot(study, rows)
    return Findings(
        results={"variants": rows, "comparisons": comparisons},
        measures=_measures(rows, comparisons),
        body=_body(settings, data.source, rows, comparisons),
        data=data.source,
        figures=[figure],
    )


def _measures(rows: list[dict], comparisons: list[dict]) -> dict[str, float]:
    """Steps to the target (a variant that never got there counts its steps trained) and speed-ups."""
    measures = {}
    for row in rows:
        measures[f"steps to target, {row['variant']}"] = row["steps_to_target"] or row["steps_trained"]
        measures[f"final val accuracy, {row['variant']}"] = row["final_val_accuracy"]
    for comparison in comparisons:
        measures[f"speed-up with BN, {comparison['init']} init"] = comparison["speedup"] or 0.0
    return measures


def rules(settings: Settings) -> list[Rule]:
    return [Rule(
        name="BN speeds training",
        paper="MNIST 3x100 sigmoid: BN converges faster; BN-Inception matched Inception in 14x fewer steps",
        conditions=tuple(Condition(f"speed-up with BN, {init_label(std)} init", ">", 1.0)
                         for std in settings.init_stds),
        context=tuple(f"steps to target, {'bn' if bn else 'plain'}-{init_label(std)}"
                      for std in settings.init_stds for bn in (False, True)),
        note=f"speed-up = steps to {settings.target_accuracy:.0%} validation accuracy without BN / with BN; a "
             "variant that never reached the target counts the steps it trained, so its ratio is a lower "
             "bound; 0 means BN never reached it",
    )]


def init_label(init_std: float | None) -> str:
    return "glorot" if init_std is None else f"N(0, {init_std:g}^2)"


def _train_variant(study: Study, data, init_std: float | None, batch_norm: bool) -> dict:
    from components.data import evaluation_batches, training_batches
    from models import build_model, build_optimizer, compile_model

    settings: Settings = study.settings
    name = f"{'bn' if batch_norm else 'plain'}-{init_label(init_std)}"
    params = {"batch_norm": batch_norm, "init": init_label(init_std), "activation": settings.activation,
              "learning_rate": settings.learning_rate, "optimizer": "sgd", "batch_size": settings.batch_size}
    with study.cell(name, params):
        model = build_model(
            input_shape=data.x_train.shape[1:], input_kind="image", num_classes=data.num_classes,
            encoder="mlp", units=settings.units, layers=settings.layers, batch_norm=batch_norm,
            dropout=0.0, activation=settings.activation, init_std=init_std,
            bn_momentum=settings.bn_momentum, bn_epsilon=settings.bn_epsilon, seed=study.seed,
        )
        compile_model(model, optimizer=build_optimizer("sgd", settings.learning_rate),
                      num_classes=data.num_classes)
        # An "epoch" here is eval_every steps of the endless shuffled stream, not a pass over the data.
        train, _ = training_batches(data.x_train, data.y_train, batch_size=settings.batch_size, seed=study.seed)
        validation = evaluation_batches(data.x_val, data.y_val, batch_size=1_000)
        callbacks = (stop_at(settings.target_accuracy),) if settings.stop_at_target else ()
        trained = fit(model, train, epochs=settings.max_steps // settings.eval_every,
                      steps_per_epoch=settings.eval_every, validation=validation, callbacks=callbacks)
        accuracy = trained.history["val_accuracy"]
        reached = next((i for i, value in enumerate(accuracy) if value >= settings.target_accuracy), None)
        steps_to_target = None if reached is None else (reached + 1) * settings.eval_every
        final = {"final_val_accuracy": accuracy[-1], "best_val_accuracy": max(accuracy),
                 "final_train_loss": trained.last("loss"), "steps_trained": len(accuracy) * settings.eval_every}
        log_final({**final, **({"steps_to_target": steps_to_target} if steps_to_target else {})})
        log_learning_curves(trained)
    return {"variant": name, "batch_norm": batch_norm, "init": init_label(init_std),
            "steps_to_target": steps_to_target, "val_accuracy": accuracy, **final}


def _compare(settings: Settings, rows: list[dict], init_std: float | None) -> dict:
    label = init_label(init_std)
    plain = next(r for r in rows if r["init"] == label and not r["batch_norm"])
    normalised = next(r for r in rows if r["init"] == label and r["batch_norm"])
    ratio = None
    lower_bound = False
    if normalised["steps_to_target"] is not None:
        if plain["steps_to_target"] is not None:
            ratio = plain["steps_to_target"] / normalised["steps_to_target"]
        else:
            # The plain net never got there: the ratio is at least this.
            ratio, lower_bound = plain["steps_trained"] / normalised["steps_to_target"], True
    return {"init": label, "steps_plain": plain["steps_to_target"], "steps_bn": normalised["steps_to_target"],
            "speedup": ratio, "speedup_is_lower_bound": lower_bound}


def _speedup_text(comparison: dict) -> str:
    if comparison["speedup"] is None:
        return "BN did not reach the target"
    bound = ">" if comparison["speedup_is_lower_bound"] else ""
    return f"{bound}{comparison['speedup']:.1f}x"


def _steps_text(steps: int | None) -> str:
    return "not reached" if steps is None else str(steps)


def _body(settings: Settings, source: str, rows: list[dict], comparisons: list[dict]) -> str:
    lines = [
        "## Steps to the target",
        "",
        f"Data: {source}. {settings.layers}x{settings.units} {settings.activation} MLP, plain SGD "
        f"(learning rate {settings.learning_rate}), batch {settings.batch_size}, "
        f"BN momentum {settings.bn_momentum}, epsilon {settings.bn_epsilon:g}; validation every "
        f"{settings.eval_every} steps. The net is the paper's MNIST one; the data differ, so compare "
        "the ratio of steps rather than the accuracies.",
        "",
        "| variant | steps to target | final val acc | best val acc | final train loss | steps trained |",
        "| --- | --- | --- | --- | --- | --- |",
        *(f"| {r['variant']} | {_steps_text(r['steps_to_target'])} | {r['final_val_accuracy']:.4f} | "
          f"{r['best_val_accuracy']:.4f} | {r['final_train_loss']:.4f} | {r['steps_trained']} |" for r in rows),
        "",
        "| init | without BN | with BN | speed-up |",
        "| --- | --- | --- | --- |",
        *(f"| {c['init']} | {_steps_text(c['steps_plain'])} | {_steps_text(c['steps_bn'])} | "
          f"{_speedup_text(c)} |" for c in comparisons),
    ]
    if settings.stop_at_target:
        lines += ["", "Each variant stopped at the target (quick size), so the curves end there."]
    return "\n".join(lines)


def _plot(study: Study, rows: list[dict]):
    settings: Settings = study.settings
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        steps = np.arange(1, len(row["val_accuracy"]) + 1) * settings.eval_every
        axis.plot(steps, row["val_accuracy"], label=row["variant"])
    axis.axhline(settings.target_accuracy, color="grey", linestyle="--", label="target")
    axis.set_xlabel("SGD steps")
    axis.set_ylabel("validation accuracy")
    axis.set_title("3x100 sigmoid MLP with and without BN")
    axis.grid(alpha=0.3)
    axis.legend()
    return save_figure(figure, study.figure_path("val_accuracy"))
