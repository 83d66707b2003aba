"""Claim 7: momentum speeds up gradient descent, most on ill-conditioned problems (Polyak 1964;
Sutskever et al. 2013); Adam trains an MLP faster than SGD (Kingma & Ba 2015).

Two problems, four optimizers from models.build_optimizer: plain SGD, SGD with
momentum 0.9, the same with Nesterov's correction, and Adam, each over a sweep
of learning rates, and each compared at its own best rate (fewest steps to the
target, then the lowest final loss).

- An MLP learning fashion_mnist: steps until the validation accuracy first
  reaches a target, and the final training loss.
- A badly scaled quadratic f(w) = 1/2 (w - w*)^T A (w - w*), A = Q diag(lambda) Q^T
  with curvatures lambda log-spaced from 1 down to 1/kappa and Q a random rotation
  (so no per-coordinate rescaling, Adam's included, can undo the bad scaling).
  Gradient descent needs on the order of kappa steps, heavy-ball momentum on the
  order of sqrt(kappa) with well-chosen settings: this is where momentum's advantage
  is expected to be large. Exact gradients; steps until the distance to the
  minimiser falls to a fraction of its initial value. (A target on the loss would
  be met early: the flat directions hold little of the initial loss, so it is the
  distance that needs them solved.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from studies.common import Study, fit, load_images, log_final
from studies.report import Condition, Findings, Rule, pyplot, save_figure

TITLE = "Momentum, Nesterov and Adam against plain SGD, and momentum on an ill-conditioned problem"
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


@dataclass(frozen=True)
class Settings:
    learning_rates: tuple[float, ...]  # the MLP's sweep, the same grid for every optimizer
    num_train: int  # fashion_mnist training images
    num_val: int  # validation images, from the end of the train split
    max_steps: int  # SGD steps per MLP run
    target_accuracy: float  # validation accuracy whose first crossing is counted
    eval_every: int = 25  # steps between validation checks (one MLflow "epoch"): the resolution of steps
    units: int = 128  # width of each hidden layer
    layers: int = 2  # hidden ReLU layers
    batch_size: int = 100
    momentum: float = 0.9  # for "momentum" and "nesterov"
    quadratic_rates: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0, 1.3, 1.9, 3.0)  # sweep; the largest curvature is 1
    quadratic_steps: int = 6_000  # steps per quadratic run at most
    condition_number: float = 1_000.0  # kappa: largest over smallest curvature
    dimension: int = 50  # parameters of the quadratic
    quadratic_target: float = 0.01  # the distance to the minimiser to reach, as a fraction of the initial one


QUICK = Settings(learning_rates=(0.01, 0.1), num_train=10_000, num_val=2_000, max_steps=400,
                 target_accuracy=0.80, quadratic_rates=(0.3, 1.0, 1.3, 1.9, 3.0))
FULL = Settings(learning_rates=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0), num_train=50_000, num_val=5_000,
                max_steps=1_000, target_accuracy=0.84, eval_every=50)


def run(study: Study) -> Findings:
    settings: Settings = study.settings
    data = load_images(num_train=settings.num_train, num_val=settings.num_val, data_dir=study.data_dir)
    mlp = [_train_mlp(study, data, name, rate) for name in OPTIMIZERS for rate in settings.learning_rates]
    quadratic = [_quadratic_runs(study, name) for name in OPTIMIZERS]
    best_mlp = {name: _best(r for r in mlp if r["optimizer"] == name) for name in OPTIMIZERS}
    best_quadratic = {q["optimizer"]: _best(q["runs"]) for q in quadratic}
    figures = [_plot_curves(study, best_mlp, best_quadratic), _plot_rates(study, mlp, quadratic)]
    return Findings(
        results={"mlp": mlp, "quadratic": quadratic},
        measures=_measures(settings, mlp, best_mlp, best_quadratic),
        body=_body(settings, data.source, mlp, quadratic, best_mlp, best_quadratic),
        data=data.source + "; the quadratic is generated from the seed",
        figures=figures,
    )


def _optimizer(name: str, rate: float, momentum: float):
    from models import build_optimizer

    if name == "nesterov":
        return build_optimizer("momentum", rate, momentum=momentum, nesterov=True)
    return build_optimizer(name, rate, momentum=momentum)


def _train_mlp(study: Study, data, name: str, rate: float) -> dict:
    from components.data import evaluation_batches, training_batches
    from models import build_model, compile_model

    settings: Settings = study.settings
    params = {"optimizer": name, "learning_rate": rate, "momentum": settings.momentum,
              "batch_size": settings.batch_size, "units": settings.units, "layers": settings.layers}
    with study.cell(f"mlp-{name}-lr{rate:g}", params):
        model = build_model(
            input_shape=data.x_train.shape[1:], input_kind="image", num_classes=data.num_classes,
            encoder="mlp", units=settings.units, layers=settings.layers, batch_norm=False, dropout=0.0,
            activation="relu", seed=study.seed,
        )
        compile_model(model, optimizer=_optimizer(name, rate, settings.momentum), num_classes=data.num_classes)
        model.jit_compile = False  # XLA compiles longer than these short runs take
        train, _ = training_batches(data.x_train, data.y_train, batch_size=settings.batch_size, seed=study.seed)
        validation = evaluation_batches(data.x_val, data.y_val, batch_size=1_000)
        trained = fit(model, train, epochs=settings.max_steps // settings.eval_every,
                      steps_per_epoch=settings.eval_every, validation=validation)
        accuracy = trained.history["val_accuracy"]
        reached = next((i for i, value in enumerate(accuracy) if value >= settings.target_accuracy), None)
        row = {
            "optimizer": name, "learning_rate": rate,
            # A run that never reached the target counts every step it trained (a censored figure).
            "steps_to_target": settings.max_steps if reached is None else (reached + 1) * settings.eval_every,
            "reached": reached is not None,
            "final_loss": _finite_or_inf(trained.last("loss")),
            "final_val_accuracy": accuracy[-1],
            "loss_curve": trained.history["loss"],
        }
        log_final({"steps_to_target": row["steps_to_target"], "final_val_accuracy": row["final_val_accuracy"]})
    return row


def _finite_or_inf(value: float) -> float:
    """A diverged loss (NaN) ranks as infinitely bad."""
    return value if math.isfinite(value) else float("inf")


def _best(rows) -> dict:
    """The run with the fewest steps to the target, then the lowest final loss."""
    return min(rows, key=lambda row: (row["steps_to_target"], row["final_loss"]))


# ---------------------------------------------------------------- the ill-conditioned quadratic


def _quadratic(settings: Settings, seed: int):
    """A (curvature matrix, minimiser): curvatures log-spaced in [1/kappa, 1], randomly rotated."""
    rng = np.random.default_rng(seed)
    curvatures = np.logspace(0.0, -math.log10(settings.condition_number), settings.dimension)
    rotation, _ = np.linalg.qr(rng.normal(size=(settings.dimension, settings.dimension)))
    matrix = rotation @ np.diag(curvatures) @ rotation.T
    return matrix.astype("float32"), rng.normal(size=settings.dimension).astype("float32")


def _quadratic_runs(study: Study, name: str) -> dict:
    settings: Settings = study.settings
    matrix, minimiser = _quadratic(settings, study.seed)
    params = {"optimizer": name, "momentum": settings.momentum, "condition_number": settings.condition_number,
              "dimension": settings.dimension, "learning_rates": ",".join(map(str, settings.quadratic_rates))}
    runs = []
    with study.cell(f"quadratic-{name}", params):
        for rate in settings.quadratic_rates:
            losses, distances = _minimise(_optimizer(name, rate, settings.momentum), matrix, minimiser,
                                          settings.quadratic_steps)
            relative = losses / losses[0]
            below = np.flatnonzero(distances / distances[0] <= settings.quadratic_target)
            runs.append({
                "learning_rate": rate,
                "steps_to_target": int(below[0]) if below.size else settings.quadratic_steps,
                "reached": bool(below.size),
                "final_loss": _finite_or_inf(float(relative[-1])),
                # Every 10th step keeps the JSON small and the plotted curve's shape.
                "loss_curve": relative[::10].tolist(),
                "distance_curve": (distances / distances[0])[::10].tolist(),
            })
        log_final({f"steps_to_target_lr{r['learning_rate']:g}": r["steps_to_target"] for r in runs})
    return {"optimizer": name, "runs": runs}


def _minimise(optimizer, matrix: np.ndarray, minimiser: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The loss and the distance to the minimiser before each of `steps` exact-gradient steps from w = 0."""
    import tensorflow as tf

    weights = tf.Variable(tf.zeros_like(minimiser))
    optimizer.build([weights])
    matrix, minimiser = tf.constant(matrix), tf.constant(minimiser)

    @tf.function
    def descend() -> tf.Tensor:
        trace = tf.TensorArray(tf.float32, size=steps)
        for step in tf.range(steps):
            gradient = tf.linalg.matvec(matrix, weights - minimiser)
            loss = 0.5 * tf.tensordot(weights - minimiser, gradient, 1)
            trace = trace.write(step, tf.stack([loss, tf.norm(weights - minimiser)]))
            optimizer.apply_gradients([(gradient, weights)])
        return trace.stack()

    trace = descend().numpy().astype("float64")
    return trace[:, 0], trace[:, 1]


# ---------------------------------------------------------------- figures, claims and report


def _measures(settings: Settings, mlp: list[dict], best_mlp: dict, best_quadratic: dict) -> dict[str, float]:
    measures = {}
    for name in OPTIMIZERS:
        measures[f"MLP steps to target, {name}"] = best_mlp[name]["steps_to_target"]
        measures[f"MLP final loss at best rate, {name}"] = best_mlp[name]["final_loss"]
        measures[f"MLP log10 best rate, {name}"] = math.log10(best_mlp[name]["learning_rate"])
        measures[f"MLP rates reaching the target, {name}"] = sum(
            row["reached"] for row in mlp if row["optimizer"] == name)
        measures[f"quadratic steps to target, {name}"] = best_quadratic[name]["steps_to_target"]
    for name in OPTIMIZERS[1:]:
        mlp_speedup = best_mlp["sgd"]["steps_to_target"] / best_mlp[name]["steps_to_target"]
        quadratic_speedup = best_quadratic["sgd"]["steps_to_target"] / best_quadratic[name]["steps_to_target"]
        measures[f"MLP speed-up over SGD, {name}"] = mlp_speedup
        measures[f"quadratic speed-up over GD, {name}"] = quadratic_speedup
        measures[f"quadratic over MLP speed-up, {name}"] = quadratic_speedup / mlp_speedup
    for row in mlp:
        measures[f"MLP final val accuracy, {row['optimizer']}, lr {row['learning_rate']:g}"] = (
            row["final_val_accuracy"])
    return measures


def rules(settings: Settings) -> list[Rule]:
    kappa = f"{settings.condition_number:g}"
    censored = "a run that never reached the target counts all its steps, so a speed-up is then a bound"
    return [
        Rule(
            name="momentum beats gradient descent by far on an ill-conditioned problem",
            paper=f"heavy ball needs ~sqrt(kappa) steps where gradient descent needs ~kappa (Polyak 1964): "
                  f"at kappa = {kappa}, ~30x fewer with optimal settings",
            conditions=(Condition("quadratic speed-up over GD, momentum", ">", 3.0),
                        Condition("quadratic speed-up over GD, nesterov", ">", 3.0)),
            context=tuple(f"quadratic steps to target, {name}" for name in OPTIMIZERS)
                    + ("quadratic speed-up over GD, adam",),
            note=f"rotated quadratic, kappa {kappa}, {settings.dimension} parameters, exact gradients, momentum "
                 f"{settings.momentum}; steps until the distance to the minimiser is "
                 f"{settings.quadratic_target:g} of its start, each "
                 f"optimizer at its best rate; 'by far' = more than 3x; {censored}",
        ),
        Rule(
            name="momentum and Nesterov reach the MLP's target in fewer steps than SGD",
            paper="momentum, Nesterov's especially, trains deep nets much faster than plain SGD "
                  "(Sutskever et al. 2013)",
            conditions=(Condition("MLP speed-up over SGD, momentum", ">", 1.0),
                        Condition("MLP speed-up over SGD, nesterov", ">", 1.0)),
            context=tuple(f"MLP steps to target, {name}" for name in OPTIMIZERS[:3]),
            note=f"{settings.layers}x{settings.units} ReLU MLP, target {settings.target_accuracy:.0%} validation "
                 f"accuracy, each at its best rate of the sweep; {censored}",
        ),
        Rule(
            name="momentum's advantage is larger on the ill-conditioned problem than on the MLP",
            paper="momentum's gain comes from low-curvature directions, so it grows with the condition number",
            conditions=(Condition("quadratic over MLP speed-up, momentum", ">", 1.0),),
            context=("quadratic speed-up over GD, momentum", "MLP speed-up over SGD, momentum"),
        ),
        Rule(
            name="Adam reaches the MLP's target in fewer steps than SGD",
            paper="Adam converges faster than SGD (with Nesterov momentum) on an MNIST MLP (Kingma & Ba 2015, Fig. 2)",
            conditions=(Condition("MLP speed-up over SGD, adam", ">", 1.0),),
            context=("MLP steps to target, sgd", "MLP steps to target, adam",
                     "MLP rates reaching the target, sgd", "MLP rates reaching the target, adam"),
            note=f"each at its best rate of the sweep; {censored}",
        ),
    ]


def _body(settings: Settings, source: str, mlp: list[dict], quadratic: list[dict], best_mlp: dict,
          best_quadratic: dict) -> str:
    rates = settings.learning_rates
    lines = [
        "## MLP: final validation accuracy per learning rate",
        "",
        f"Data: {source}. {settings.layers}x{settings.units} ReLU MLP, batch {settings.batch_size}, "
        f"{settings.max_steps} steps, validation every {settings.eval_every}; momentum {settings.momentum}. "
        f"A cell marked * reached {settings.target_accuracy:.0%} (steps to it in brackets).",
        "",
        "| optimizer | " + " | ".join(f"lr {r:g}" for r in rates) + " | best rate | steps to target | final loss |",
        "| --- | " + " | ".join("---" for _ in rates) + " | --- | --- | --- |",
    ]
    for name in OPTIMIZERS:
        cells = {row["learning_rate"]: row for row in mlp if row["optimizer"] == name}
        best = best_mlp[name]
        lines.append(f"| {name} | " + " | ".join(
            f"{cells[r]['final_val_accuracy']:.3f}" + (f"* ({cells[r]['steps_to_target']})" if cells[r]["reached"]
                                                      else "") for r in rates)
            + f" | {best['learning_rate']:g} | {best['steps_to_target']} | {best['final_loss']:.4f} |")
    quadratic_rates = settings.quadratic_rates
    lines += [
        "",
        "## Ill-conditioned quadratic: steps to the target per learning rate",
        "",
        f"kappa {settings.condition_number:g}, {settings.dimension} parameters, curvatures log-spaced in "
        f"[1/kappa, 1] and rotated; target: the distance to the minimiser at {settings.quadratic_target:g} of "
        "its start; at most "
        f"{settings.quadratic_steps} steps (a run at that bound never got there or diverged). On this quadratic "
        "gradient descent is stable below a rate of 2, heavy ball with momentum 0.9 below 3.8 and Nesterov's "
        "below 3.8 / 2.8 = 1.36.",
        "",
        "| optimizer | " + " | ".join(f"lr {r:g}" for r in quadratic_rates) + " | best |",
        "| --- | " + " | ".join("---" for _ in quadratic_rates) + " | --- |",
    ]
    for name in OPTIMIZERS:
        runs = {run["learning_rate"]: run for q in quadratic if q["optimizer"] == name for run in q["runs"]}
        lines.append(f"| {name} | " + " | ".join(str(runs[r]["steps_to_target"]) if r in runs else "-"
                                                 for r in quadratic_rates)
                     + f" | {best_quadratic[name]['steps_to_target']} at lr "
                       f"{best_quadratic[name]['learning_rate']:g} |")
    return "\n".join(lines)


def _plot_curves(study: Study, best_mlp: dict, best_quadratic: dict):
    """Loss curves per optimizer at its best rate: the MLP's training loss and the quadratic's."""
    settings: Settings = study.settings
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in OPTIMIZERS:
        mlp, quadratic = best_mlp[name], best_quadratic[name]
        steps = np.arange(1, len(mlp["loss_curve"]) + 1) * settings.eval_every
        left.plot(steps, mlp["loss_curve"], label=f"{name} (lr {mlp['learning_rate']:g})")
        right.plot(np.arange(len(quadratic["distance_curve"])) * 10, quadratic["distance_curve"],
                   label=f"{name} (lr {quadratic['learning_rate']:g})")
    left.set_title("MLP on fashion_mnist: training loss")
    right.set_title(f"quadratic, kappa {settings.condition_number:g}: distance to minimiser / initial")
    right.axhline(settings.quadratic_target, color="grey", linestyle="--", label="target")
    for axis in (left, right):
        axis.set_yscale("log")
        axis.set_xlabel("steps")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return save_figure(figure, study.figure_path("loss_curves"))


def _plot_rates(study: Study, mlp: list[dict], quadratic: list[dict]):
    """Final MLP validation accuracy, and quadratic steps to the target, against the learning rate."""
    settings: Settings = study.settings
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in OPTIMIZERS:
        rows = [row for row in mlp if row["optimizer"] == name]
        left.plot([r["learning_rate"] for r in rows], [r["final_val_accuracy"] for r in rows], marker="o", label=name)
        runs = next(q["runs"] for q in quadratic if q["optimizer"] == name)
        right.plot([r["learning_rate"] for r in runs], [r["steps_to_target"] for r in runs], marker="o", label=name)
    left.axhline(settings.target_accuracy, color="grey", linestyle="--", label="target")
    left.set_ylabel("final validation accuracy")
    left.set_title("MLP: accuracy vs learning rate")
    right.axhline(settings.quadratic_steps, color="grey", linestyle=":", label="never reached")
    right.set_yscale("log")
    right.set_ylabel("steps to target")
    right.set_title("quadratic: steps vs learning rate")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xlabel("learning rate")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return save_figure(figure, study.figure_path("learning_rates"))
