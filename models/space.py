"""The KerasTuner search space over the model and training hyperparameters.

A space maps tunable keys to one of
- a list of choices: ["lstm", "gru"], [True, False], [32, 64, 128];
- a 2-element numeric list [low, high]: a range, Int for integer keys and
  Float for float keys, log-uniform for learning_rate and uniform otherwise;
- a table {"values": [32, 128]}: exactly those choices (the way to say two
  numeric choices, since a 2-element numeric list is a range);
- a table {"min": .., "max": .., "step": .., "sampling": "linear" | "log"}:
  a range. As in KerasTuner, step is added under linear sampling and
  multiplied under log sampling (so it must then exceed 1).
Keys missing from the space take their value from base_model / base_train.

Conditional hyperparameters: `attention` exists only when the encoder is
recurrent, `momentum` only when the optimizer is "momentum". When the parent
is tuned, the child lives in `hp.conditional_scope(parent, ...)`; when the
parent is fixed by the base config, the child is tuned only if the base
enables it (tuning it otherwise is a ValueError). Invalid combinations such as
attention with an mlp are therefore never sampled.

Grid search visits, for each active hyperparameter, its default followed by
KerasTuner's `values`: a choice visits its choices; an Int range with a step
(linear ranges without one have step 1) visits low, low + step, ... up to
high; a Float range, or a log Int range, without a step visits its low end
and 10 points evenly spaced in (linear or log) sampling space, at the centres
of ten equal bins. Give a step, or a {"values": [...]} table, for a coarser
grid. `enumerate_space` runs the very sampling code of the hypermodel with the
same value lists, so it lists exactly the combinations GridSearch visits.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import keras_tuner

from models.builders import build_model
from models.optimizers import build_optimizer
from models.vocabulary import (
    BOOLEAN,
    CHOICES,
    FLOAT,
    INTEGER,
    RANGES,
    RECURRENT_ENCODERS,
    TUNABLE_MODEL_KEYS,
    TUNABLE_TRAIN_KEYS,
)

# What base_model / base_train may hold besides the tunable keys.
BASE_MODEL_KEYS = TUNABLE_MODEL_KEYS + ("init_std", "bn_momentum", "bn_epsilon")
BASE_TRAIN_KEYS = TUNABLE_TRAIN_KEYS + ("nesterov", "clipnorm", "schedule", "decay_steps")

_LOG_BY_DEFAULT = ("learning_rate",)
_SAMPLINGS = ("linear", "log")
_RANGE_TABLE_KEYS = {"min", "max", "step", "sampling"}
# Child key -> (parent key, parent values under which the child exists).
_CONDITIONS = {
    "attention": ("encoder", RECURRENT_ENCODERS),
    "momentum": ("optimizer", ("momentum",)),
}


@dataclass(frozen=True)
class _Choice:
    values: tuple  # the allowed values, in the order grid search visits them


@dataclass(frozen=True)
class _Range:
    low: int | float  # inclusive lower end
    high: int | float  # inclusive upper end
    step: int | float | None  # grid spacing: added (linear) or multiplied (log)
    sampling: str  # "linear" or "log"


def validate_space(space: dict) -> None:
    """Raise ValueError naming the key of the first bad entry of `space`."""
    parse_space(space)


def parse_space(space: dict) -> dict[str, _Choice | _Range]:
    if not isinstance(space, dict):
        raise ValueError(f"space must be a table of hyperparameters, got {space!r}")
    specs = {}
    for key, entry in space.items():
        if key not in TUNABLE_MODEL_KEYS + TUNABLE_TRAIN_KEYS:
            raise ValueError(
                f"space key {key!r} is not tunable; tunable keys are "
                f"{TUNABLE_MODEL_KEYS + TUNABLE_TRAIN_KEYS}"
            )
        specs[key] = _parse_entry(key, entry)
    for child, (parent, enabling) in _CONDITIONS.items():
        if child in specs and parent in specs:
            if not any(value in enabling for value in specs[parent].values):
                raise ValueError(
                    f"space[{child!r}] is tuned, but no {parent} in space[{parent!r}] = "
                    f"{list(specs[parent].values)} is one of {enabling} that use it"
                )
    return specs


def _parse_entry(key: str, entry: object) -> _Choice | _Range:
    numeric = key in INTEGER or key in FLOAT
    if isinstance(entry, dict):
        if set(entry) == {"values"}:
            return _parse_choices(key, entry["values"])
        if numeric and {"min", "max"} <= set(entry) <= _RANGE_TABLE_KEYS:
            return _parse_range(key, entry)
        allowed = "{'values': [...]}"
        if numeric:
            allowed += " or {'min', 'max', 'step', 'sampling'}"
        raise ValueError(f"space[{key!r}] table must be {allowed}, got {entry!r}")
    if isinstance(entry, (list, tuple)):
        if numeric and len(entry) == 2 and all(_is_number(value) for value in entry):
            return _parse_range(key, {"min": entry[0], "max": entry[1]})
        return _parse_choices(key, entry)
    raise ValueError(
        f"space[{key!r}] must be a list of choices, [low, high] or a table, got {entry!r}"
    )


def _parse_choices(key: str, values: object) -> _Choice:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"space[{key!r}] needs a non-empty list of choices, got {values!r}")
    values = tuple(float(v) if key in FLOAT and _is_number(v) else v for v in values)
    for value in values:
        _check_value(key, value)
    if len(set(values)) != len(values):
        raise ValueError(f"space[{key!r}] repeats a choice: {list(values)!r}")
    return _Choice(values)


def _parse_range(key: str, table: dict) -> _Range:
    sampling = table.get("sampling", "log" if key in _LOG_BY_DEFAULT else "linear")
    low, high, step = table["min"], table["max"], table.get("step")
    if sampling not in _SAMPLINGS:
        raise ValueError(f"space[{key!r}] sampling must be one of {_SAMPLINGS}, got {sampling!r}")
    if key in FLOAT:
        low, high = float(low), float(high)
        step = None if step is None else float(step)
    for value in (low, high):
        _check_value(key, value)
    if not low < high:
        raise ValueError(f"space[{key!r}] range needs min < max, got [{low!r}, {high!r}]")
    if step is not None:
        smallest = 1 if sampling == "log" else 0
        valid_type = _is_integer(step) if key in INTEGER else _is_number(step)
        if not valid_type or step <= smallest:
            raise ValueError(
                f"space[{key!r}] step must be a number > {smallest} "
                f"({sampling} sampling), got {step!r}"
            )
    if sampling == "log" and low <= 0:
        raise ValueError(f"space[{key!r}] log sampling needs min > 0, got {low!r}")
    return _Range(low, high, step, sampling)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_value(key: str, value: object) -> None:
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ValueError(f"space[{key!r}] choice {value!r} is not one of {CHOICES[key]}")
    elif key in BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError(f"space[{key!r}] choices must be true or false, got {value!r}")
    elif key in INTEGER and not _is_integer(value):
        raise ValueError(f"space[{key!r}] values must be integers, got {value!r}")
    elif not _is_number(value):
        raise ValueError(f"space[{key!r}] values must be numbers, got {value!r}")
    elif value not in RANGES[key]:
        raise ValueError(f"space[{key!r}] values must be in {RANGES[key]}, got {value!r}")


def _register(hp: keras_tuner.HyperParameters, key: str, spec: _Choice | _Range) -> object:
    """Declare one hyperparameter; returns its value, or None when inactive."""
    if isinstance(spec, _Choice):
        return hp.Choice(key, list(spec.values))
    numeric = hp.Int if key in INTEGER else hp.Float
    return numeric(key, spec.low, spec.high, step=spec.step, sampling=spec.sampling)


def sample_space(
    hp: keras_tuner.HyperParameters,
    specs: dict[str, _Choice | _Range],
    base_model: dict,
    base_train: dict,
) -> dict[str, object]:
    """Declare every tuned key on `hp` and return the active values.

    Every key is declared on every call, including conditional ones whose
    scope is inactive, so that KerasTuner learns the whole space from one build.
    """
    bases = {"encoder": base_model, "optimizer": base_train}
    values = {}
    for key in TUNABLE_MODEL_KEYS + TUNABLE_TRAIN_KEYS:
        if key not in specs:
            continue
        if key not in _CONDITIONS:
            values[key] = _register(hp, key, specs[key])
            continue
        parent, enabling = _CONDITIONS[key]
        if parent in specs:
            active = [value for value in specs[parent].values if value in enabling]
            with hp.conditional_scope(parent, active):
                value = _register(hp, key, specs[key])
            if value is not None:
                values[key] = value
            continue
        parent_value = bases[parent].get(parent, _defaults()[parent])
        if parent_value not in enabling:
            raise ValueError(
                f"space[{key!r}] is tuned, but the fixed {parent} {parent_value!r} "
                f"does not use it (only {enabling} do)"
            )
        values[key] = _register(hp, key, specs[key])
    return values


@functools.cache
def _defaults() -> dict[str, object]:
    """The defaults of build_model and build_optimizer, under their space names."""
    defaults = {}
    for function in (build_model, build_optimizer):
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.default is not inspect.Parameter.empty:
                defaults[name] = parameter.default
    defaults["optimizer"] = None  # build_optimizer's `name` has no default
    return defaults


def hyperparameters_to_kwargs(
    values: dict, *, base_model: dict, base_train: dict
) -> tuple[dict, dict]:
    """Merge tuned values over the base configs -> (build_model kwargs, training kwargs).

    The training kwargs hold optimizer, learning_rate and whatever else
    base_train has (momentum, nesterov, batch_size, clipnorm, schedule,
    decay_steps). When the encoder is not recurrent and attention was not
    tuned, attention is "none": a base attention only applies to the
    recurrent encoders the tuner may pick.
    """
    _check_keys("values", values, TUNABLE_MODEL_KEYS + TUNABLE_TRAIN_KEYS)
    _check_keys("base_model", base_model, BASE_MODEL_KEYS)
    _check_keys("base_train", base_train, BASE_TRAIN_KEYS)
    # KerasTuner hands boolean choices back as 0/1 once a trial has been saved and reloaded.
    values = {k: bool(v) if k in BOOLEAN else v for k, v in values.items()}
    model_kwargs = {**base_model, **{k: v for k, v in values.items() if k in TUNABLE_MODEL_KEYS}}
    train_kwargs = {**base_train, **{k: v for k, v in values.items() if k in TUNABLE_TRAIN_KEYS}}
    encoder = model_kwargs.get("encoder", _defaults()["encoder"])
    if "attention" not in values and encoder not in RECURRENT_ENCODERS:
        model_kwargs["attention"] = "none"
    for key in ("optimizer", "learning_rate"):
        if key not in train_kwargs:
            raise ValueError(f"{key!r} is neither tuned nor set in base_train {base_train!r}")
    return model_kwargs, train_kwargs


def _check_keys(what: str, table: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; allowed keys are {allowed}")


def enumerate_space(
    space: dict, *, base_model: dict | None = None, base_train: dict | None = None
) -> list[dict]:
    """Every combination grid search visits, as {key: value} of the active tuned keys.

    Depth-first over the hyperparameters in declaration order, running the
    hypermodel's own sampling code, so conditionals behave exactly as in
    search: a child appears only in combinations whose parent enables it.
    base_model / base_train matter only for a conditional key whose parent is
    not tuned; they default to the defaults of build_model / build_optimizer.
    """
    specs = parse_space(space)
    base_model, base_train = base_model or {}, base_train or {}
    combinations = []
    pending = [{}]
    while pending:
        fixed = pending.pop()
        hp = keras_tuner.HyperParameters()
        hp.values.update(fixed)
        values = sample_space(hp, specs, base_model, base_train)
        free = next((p for p in hp.space if hp.is_active(p) and p.name not in fixed), None)
        if free is None:
            combinations.append(values)
            continue
        # GridSearch tries the default first, then the rest of `values`.
        grid = [free.default] + [value for value in free.values if value != free.default]
        pending.extend({**fixed, free.name: value} for value in reversed(grid))
    return combinations
