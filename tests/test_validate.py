"""Anomalies from statistics and a schema, on small hand-made statistics: what is an error, what a warning,
and where each limit lies."""

from __future__ import annotations

import math

from components.validate import find_anomalies
from pipeline.names import SPLITS

SCHEMA = {"kind": "image", "shape": [8, 8], "dtype": "uint8", "task": "classification", "min": 0.0, "max": 16.0,
          "label_values": [0, 1]}


def _split(count: int = 100, **feature) -> dict:
    return {"count": count,
            "feature": {"shape": [8, 8], "dtype": "uint8", "min": 0.0, "max": 16.0, "nan_count": 0, **feature},
            "label": {"dtype": "int64", "min": 0, "max": 1, "distribution": [0.5, 0.5]}}


def _statistics(**splits) -> dict:
    """Every split clean, except those given."""
    return {split: splits.get(split, _split()) for split in SPLITS}


def _kinds(anomalies: list[dict]) -> set[tuple[str, str, str]]:
    return {(a["split"], a["kind"], a["severity"]) for a in anomalies}


def test_splits_that_match_the_schema_have_no_anomalies():
    assert find_anomalies(_statistics(), SCHEMA, max_label_drift=0.2) == []


def test_an_empty_split_is_one_error_and_nothing_else_is_checked_in_it():
    empty = {**_split(count=0, shape=[3], dtype="float32", nan_count=5), "label": {"min": None, "max": None,
                                                                                  "distribution": []}}
    anomalies = find_anomalies(_statistics(validation=empty), SCHEMA, max_label_drift=0.2)
    assert _kinds(anomalies) == {("validation", "empty_split", "error")}


def test_shape_dtype_and_nan_values_are_errors():
    broken = _split(shape=[8, 9], dtype="float32", nan_count=3)
    anomalies = find_anomalies(_statistics(test=broken), SCHEMA, max_label_drift=0.2)
    assert _kinds(anomalies) == {("test", "shape_mismatch", "error"), ("test", "dtype_mismatch", "error"),
                                 ("test", "nan_values", "error")}
    assert any(a["description"] == "3 NaN values in the feature" for a in anomalies)


def test_values_outside_trains_range_warn_outside_train_only_and_the_range_itself_is_allowed():
    wider = _split(min=-1.0, max=17.0)
    anomalies = find_anomalies(_statistics(train=wider, test=wider), SCHEMA, max_label_drift=0.2)
    # The schema is learned from train, so only the test split is compared with it.
    assert _kinds(anomalies) == {("test", "value_out_of_range", "warning")}
    assert "values span [-1, 17], train spans [0, 16]" in anomalies[0]["description"]
    edges = _split(min=SCHEMA["min"], max=SCHEMA["max"])
    assert find_anomalies(_statistics(test=edges), SCHEMA, max_label_drift=0.2) == []


def test_a_tabular_column_outside_its_train_range_warns_and_names_the_column():
    schema = {"kind": "tabular", "shape": [2], "dtype": "dict", "task": "classification", "label_values": [0, 1],
              "columns": {"age": {"type": "numeric", "min": 0.0, "max": 80.0}, "town": {"type": "string_categorical"}}}

    def tabular(age_max: float) -> dict:
        split = _split()
        split["feature"] = {"shape": [2], "dtype": "dict", "nan_count": 0,
                            "columns": {"age": {"min": 0.0, "max": age_max, "nan_count": 0}, "town": {"distinct": 3}}}
        return split

    statistics = {"train": tabular(80.0), "validation": tabular(80.0), "test": tabular(120.0)}
    anomalies = find_anomalies(statistics, schema, max_label_drift=0.2)
    assert _kinds(anomalies) == {("test", "value_out_of_range", "warning")}
    assert anomalies[0]["description"].startswith("column 'age' values span [0, 120]")


def test_labels_outside_the_schemas_classes_are_an_error_and_its_edges_are_not():
    outside = _split()
    outside["label"] = {**outside["label"], "max": 2}
    anomalies = find_anomalies(_statistics(test=outside), SCHEMA, max_label_drift=0.2)
    assert _kinds(anomalies) == {("test", "label_out_of_schema", "error")}
    assert "labels span [0, 2], schema allows [0, 1]" in anomalies[0]["description"]


def test_label_drift_up_to_max_label_drift_is_allowed_and_beyond_it_is_an_error():
    shifted = _split()
    shifted["label"] = {**shifted["label"], "distribution": [0.75, 0.25]}  # 0.25 from train's [0.5, 0.5]
    at = _statistics(test=shifted)
    assert find_anomalies(at, SCHEMA, max_label_drift=0.25) == []
    assert at["test"]["label"]["linf_drift_vs_train"] == 0.25  # recorded for the report either way
    beyond = find_anomalies(_statistics(test=shifted), SCHEMA, max_label_drift=math.nextafter(0.25, 0.0))
    assert _kinds(beyond) == {("test", "label_drift", "error")}
    assert "drifts 0.250 (L-infinity) from train" in beyond[0]["description"]


def test_texts_without_tokens_are_a_warning():
    schema = {"kind": "text", "shape": [], "dtype": "string", "task": "classification", "label_values": [0, 1]}
    texts = {split: _split(shape=[], dtype="string", empty_count=0) for split in SPLITS}
    texts["validation"]["feature"]["empty_count"] = 4
    for split in SPLITS:
        del texts[split]["feature"]["min"], texts[split]["feature"]["max"]
    anomalies = find_anomalies(texts, schema, max_label_drift=0.2)
    assert _kinds(anomalies) == {("validation", "empty_text", "warning")}
    assert anomalies[0]["description"] == "4 examples have no tokens"


def test_regression_labels_have_no_classes_to_check_or_drift():
    schema = {key: value for key, value in SCHEMA.items() if key != "label_values"} | {"task": "regression"}
    regression = {split: _split() for split in SPLITS}
    for split, (low, high) in zip(SPLITS, ((0.0, 1.0), (-5.0, 50.0), (3.0, 4.0))):
        regression[split]["label"] = {"dtype": "float32", "min": low, "max": high, "distribution": []}
    assert find_anomalies(regression, schema, max_label_drift=0.0) == []
