"""Security: untrusted model files are refused, and credentials never reach output."""

from __future__ import annotations

import pytest

from pipeline.tracking import redact_uri


def test_a_keras_file_with_a_lambda_layer_is_refused(store, tmp_path, record_bad_input):
    import keras

    inputs = keras.Input((2,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)  # arbitrary Python code inside the file
    path = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(path)
    result = store.cli("predict", "--model", str(path), "[[1.0, 2.0]]", timeout=300)
    problems = [problem for problem, seen in (
        (f"exit code {result.returncode}, not 2", result.returncode != 2),
        ("the refusal does not name the Lambda layer",
         "refused to load" not in result.stderr or "Lambda" not in result.stderr),
        ("a traceback was printed", "Traceback" in result.stderr),
        ("a prediction was printed", result.stdout != ""),
    ) if seen]
    record_bad_input(problems, store, process=True)
    assert problems == [], result.stderr[-2000:]


@pytest.mark.parametrize(("uri", "shown"), [
    ("http://alice:s3cret@tracking.example:5000", "http://***@tracking.example:5000"),
    ("https://token@host/path?x=1", "https://***@host/path?x=1"),
    ("sqlite:////tmp/store/mlflow.db?timeout=60", "sqlite:////tmp/store/mlflow.db?timeout=60"),
])
def test_tracking_uris_are_redacted_before_they_are_printed(uri, shown):
    assert redact_uri(uri) == shown
    assert "s3cret" not in redact_uri(uri) and "token" not in redact_uri(uri)
