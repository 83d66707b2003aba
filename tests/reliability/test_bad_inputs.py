"""Bad input matrix: each mistake exits 2 with a message naming the culprit and the fix,
prints no traceback, and leaves no MLflow run and no artifact directory behind."""

from __future__ import annotations

import pytest


def _file(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


CASES = [
    # (id, arguments builder, words the message must contain)
    ("unknown-section", lambda t: ["--set", "nosuch.key=1"], ["[nosuch]", "sections are"]),
    ("unknown-key", lambda t: ["--set", "model.unit=3"], ["model.unit", "did you mean model.units"]),
    ("wrong-type-int", lambda t: ["--set", "train.epochs=abc"], ["train.epochs", "integer"]),
    ("wrong-type-bool", lambda t: ["--set", "model.batch_norm=1"], ["model.batch_norm", "true or false"]),
    ("dropout-range", lambda t: ["--set", "model.dropout=1.5"], ["model.dropout", "[0, 1)"]),
    ("learning-rate-zero", lambda t: ["--set", "train.learning_rate=0"], ["train.learning_rate", "(0, 10]"]),
    ("learning-rate-negative", lambda t: ["--set", "train.learning_rate=-1e-3"], ["train.learning_rate", "(0, 10]"]),
    ("epochs-zero", lambda t: ["--set", "train.epochs=0"], ["train.epochs", "[1, 100000]"]),
    ("batch-size-zero", lambda t: ["--set", "train.batch_size=0"], ["train.batch_size", "[1, 1000000]"]),
    ("split-percentage", lambda t: ["--set", "data.test_split=train[:120%]"], ["data.test_split", "[-100%, 100%]"]),
    ("unknown-encoder", lambda t: ["--set", "model.encoder=transformer"], ["model.encoder", "simple_rnn, lstm, gru"]),
    ("unknown-optimizer", lambda t: ["--set", "train.optimizer=rmsprop"], ["train.optimizer", "sgd, momentum, adam"]),
    ("unknown-algorithm", lambda t: ["--set", "tune.algorithm=evolution"], ["tune.algorithm", "hyperband"]),
    ("malformed-split", lambda t: ["--set", "data.train_split=train[:80"], ["data.train_split", "train[:80%]"]),
    ("attention-without-rnn", lambda t: ["--set", "model.attention=dot"], ["model.attention", "recurrent encoder"]),
    ("space-unknown-key", lambda t: ["--set", "tune.space.colour=[1, 2]"], ["tune.space.colour", "tunable keys"]),
    ("space-bad-choice", lambda t: ["--set", 'tune.space.encoder=["rnn"]'], ["tune.space", "model.encoder"]),
    ("set-without-equals", lambda t: ["--set", "train.epochs"], ["--set", "section.key=value"]),
    ("unknown-from-stage", lambda t: ["--from", "deploy"], ["deploy", "ingest, validate"]),
    ("config-missing", lambda t: ["--config", str(t / "missing.toml")], ["missing.toml", "does not exist"]),
    ("config-unreadable", lambda t: ["--config", str(t)], ["is not a file"]),
    ("config-not-utf8", lambda t: ["--config", _file(t, "latin1.toml", "[pipeline]\nname = 'caf\xe9'\n".encode("latin-1"))],
     ["not UTF-8"]),
    ("config-empty", lambda t: ["--config", _file(t, "empty.toml", b"")], ["is empty"]),
    ("config-not-toml", lambda t: ["--config", _file(t, "broken.toml", b"[train\nepochs = 3\n")], ["not valid TOML"]),
    ("hparams-missing", lambda t: ["--hparams", str(t / "best.json")], ["--hparams", "not a file"]),
    ("pipeline-name-path", lambda t: ["--set", "pipeline.name=../escape"], ["pipeline.name", "letters, digits"]),
    ("data-dir-missing", lambda t: ["--set", f"data.data_dir={t / 'nowhere'}"], ["data.data_dir", "does not exist"]),
    ("data-dir-is-file", lambda t: ["--set", f"data.data_dir={_file(t, 'file.txt', b'x')}"], ["data.data_dir", "is a file"]),
    ("dataset-misspelled", lambda t: ["--set", "data.name=digitz"], ["digitz", "did you mean digits"]),
    ("dataset-dotdot", lambda t: ["--set", "data.name=../../etc/passwd"], ["data.name", "not a prepared TFDS directory"]),
    ("dataset-name-dotdot", lambda t: ["--set", "data.name=digits/../../etc"], ["data.name", "'..'"]),
    ("feature-missing", lambda t: ["--set", "data.feature=pixels"], ["data.feature", "image, label"]),
    ("split-empty", lambda t: ["--set", "data.test_split=test[50%:50%]"], ["data.test_split", "no examples"]),
    ("split-unknown", lambda t: ["--set", "data.test_split=validation"], ["data.test_split", "test, train"]),
]


@pytest.mark.parametrize(("case", "build", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_and_writes_nothing(store, tmp_path, tally, count_running, case, build, words):
    tally["bad_inputs"] += 1
    result = store.cli("run", *build(tmp_path), timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for word in words:
        assert word in result.stderr, f"{word!r} missing from: {result.stderr[-1000:]}"
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (store.root / "pipeline").exists(), "an artifact directory was created"
    if (store.root / "mlflow.db").exists():
        client = store.client()
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert client.search_runs(experiments) == [], "an MLflow run was created"
    tally["left_running"] += count_running(store)
    tally["clear_errors"] += 1
