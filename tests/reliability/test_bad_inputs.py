"""Bad input matrix: each mistake exits 2 with a one-line message naming the culprit and the fix,
prints no traceback, and leaves no MLflow run and no artifact directory behind.

Every case runs once in-process, through `pipeline.cli.main` exactly as the console script calls it;
a handful, one per place a mistake is caught, run again as real `pipeline run` processes, so the
contract holds end to end (exit status, stderr, the store on disk).
"""

from __future__ import annotations

import pytest

from tests.stores import blank_store, copy_store

# Where a mistake is caught: CONFIG before MLflow is touched (not even a store file appears);
# DATA by the dataset check, after the store is opened but before any run exists.
CONFIG, DATA = "config", "data"


def _file(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


CASES = [
    # (id, arguments from (tmp_path, tfds data_dir), words the error line must contain, where it is caught)
    ("unknown-section", lambda t, d: ["--set", "nosuch.key=1"], ["[nosuch]", "sections are", "pipeline, data, model"],
     CONFIG),
    ("unknown-key", lambda t, d: ["--set", "model.unit=3"], ["model.unit", "did you mean model.units"], CONFIG),
    ("wrong-type-int", lambda t, d: ["--set", "train.epochs=abc"], ["train.epochs", "integer"], CONFIG),
    ("wrong-type-int-units", lambda t, d: ["--set", "model.units=abc"], ["model.units", "integer"], CONFIG),
    ("float-for-int", lambda t, d: ["--set", "train.epochs=2.5"], ["train.epochs", "integer"], CONFIG),
    ("wrong-type-bool", lambda t, d: ["--set", "model.batch_norm=1"], ["model.batch_norm", "true or false"], CONFIG),
    ("dropout-range", lambda t, d: ["--set", "model.dropout=1.5"], ["model.dropout", "[0, 1)"], CONFIG),
    ("dropout-negative", lambda t, d: ["--set", "model.dropout=-0.1"], ["model.dropout", "[0, 1)"], CONFIG),
    ("learning-rate-zero", lambda t, d: ["--set", "train.learning_rate=0"], ["train.learning_rate", "(0, 10]"], CONFIG),
    ("learning-rate-negative", lambda t, d: ["--set", "train.learning_rate=-1e-3"], ["train.learning_rate", "(0, 10]"],
     CONFIG),
    ("epochs-zero", lambda t, d: ["--set", "train.epochs=0"], ["train.epochs", "[1, 100000]"], CONFIG),
    ("batch-size-zero", lambda t, d: ["--set", "train.batch_size=0"], ["train.batch_size", "[1, 1000000]"], CONFIG),
    ("split-percentage", lambda t, d: ["--set", "data.test_split=train[:120%]"], ["data.test_split", "[-100%, 100%]"],
     CONFIG),
    ("unknown-encoder", lambda t, d: ["--set", "model.encoder=transformer"],
     ["model.encoder", "mlp, cnn, simple_rnn, lstm, gru"], CONFIG),
    ("unknown-optimizer", lambda t, d: ["--set", "train.optimizer=rmsprop"], ["train.optimizer", "sgd, momentum, adam"],
     CONFIG),
    ("unknown-algorithm", lambda t, d: ["--set", "tune.algorithm=evolution"],
     ["tune.algorithm", "random, bayesian, hyperband, grid"], CONFIG),
    ("malformed-split", lambda t, d: ["--set", "data.train_split=train[:80"], ["data.train_split", "train[:80%]"],
     CONFIG),
    ("attention-without-rnn", lambda t, d: ["--set", "model.attention=dot"], ["model.attention", "recurrent encoder"],
     CONFIG),
    ("additive-attention-without-rnn", lambda t, d: ["--set", "model.attention=additive"],
     ["model.attention", "recurrent encoder"], CONFIG),
    ("space-unknown-key", lambda t, d: ["--set", "tune.space.colour=[1, 2]"], ["tune.space.colour", "tunable keys"],
     CONFIG),
    ("space-bad-choice", lambda t, d: ["--set", 'tune.space.encoder=["rnn"]'], ["tune.space", "model.encoder"], CONFIG),
    ("space-unknown-encoder", lambda t, d: ["--set", 'tune.space.encoder=["transformer"]'], ["tune.space", "mlp, cnn"],
     CONFIG),
    ("set-without-equals", lambda t, d: ["--set", "train.epochs"], ["--set", "section.key=value"], CONFIG),
    ("set-without-section", lambda t, d: ["--set", "epochs=3"], ["--set 'epochs=3'", "section.key"], CONFIG),
    ("set-empty-section", lambda t, d: ["--set", ".epochs=3"], ["--set '.epochs=3'", "section.key"], CONFIG),
    ("unknown-from-stage", lambda t, d: ["--from", "deploy"], ["deploy", "ingest, validate"], CONFIG),
    ("config-missing", lambda t, d: ["--config", str(t / "missing.toml")], ["missing.toml", "does not exist"], CONFIG),
    ("config-unreadable", lambda t, d: ["--config", str(t)], ["is not a file"], CONFIG),
    ("config-not-utf8",
     lambda t, d: ["--config", _file(t, "latin1.toml", "[pipeline]\nname = 'caf\xe9'\n".encode("latin-1"))],
     ["not UTF-8"], CONFIG),
    ("config-empty", lambda t, d: ["--config", _file(t, "empty.toml", b"")], ["is empty"], CONFIG),
    ("config-blank", lambda t, d: ["--config", _file(t, "blank.toml", b"  \n")], ["is empty"], CONFIG),
    ("config-not-toml", lambda t, d: ["--config", _file(t, "broken.toml", b"[train\nepochs = 3\n")], ["not valid TOML"],
     CONFIG),
    ("hparams-missing", lambda t, d: ["--hparams", str(t / "best.json")], ["--hparams", "not a file"], CONFIG),
    ("pipeline-name-path", lambda t, d: ["--set", "pipeline.name=../escape"], ["pipeline.name", "letters, digits"],
     CONFIG),
    ("data-dir-missing", lambda t, d: ["--set", f"data.data_dir={t / 'nowhere'}"], ["data.data_dir", "does not exist"],
     DATA),
    ("data-dir-is-file", lambda t, d: ["--set", f"data.data_dir={_file(t, 'file.txt', b'x')}"],
     ["data.data_dir", "is a file"], DATA),
    ("dataset-misspelled", lambda t, d: ["--set", "data.name=digitz"], ["digitz", "did you mean digits"], DATA),
    ("dataset-dotdot", lambda t, d: ["--set", "data.name=../../etc/passwd"],
     ["data.name", "not a prepared TFDS directory"], DATA),
    ("dataset-name-dotdot", lambda t, d: ["--set", "data.name=digits/../../etc"], ["data.name", "'..'"], DATA),
    # These three read the prepared dataset: its data_dir is named, so no other TFDS directory is written to.
    ("feature-missing", lambda t, d: ["--set", f"data.data_dir={d}", "--set", "data.feature=pixels"],
     ["data.feature", "image, label"], DATA),
    ("split-empty", lambda t, d: ["--set", f"data.data_dir={d}", "--set", "data.test_split=test[50%:50%]"],
     ["data.test_split", "no examples"], DATA),
    ("split-unknown", lambda t, d: ["--set", f"data.data_dir={d}", "--set", "data.test_split=validation"],
     ["data.test_split", "test, train"], DATA),
]

# One case per place a mistake is caught, run again as a real process: an override, a config file,
# an option, a dataset name (after the store is opened) and a split (after the dataset is prepared).
END_TO_END = [c for c in CASES if c[0] in ("unknown-key", "config-not-toml", "unknown-from-stage", "dataset-misspelled",
                                            "split-empty")]


def _problems(ended, words: list[str], store, caught: str) -> list[str]:
    """Everything wrong with how a bad input ended; empty for a clear error that wrote nothing."""
    found = []
    if ended.returncode != 2:
        found.append(f"exit code {ended.returncode}, not 2")
    if "Traceback" in ended.stderr or "Traceback" in ended.stdout:
        found.append("a traceback was printed")
    lines = ended.stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    if not last.startswith("error: "):
        found.append(f"the last line of stderr is not `error: ...`: {last!r}")
    found += [f"{word!r} missing from the error line {last!r}" for word in words if word not in last]
    if (store.root / "pipeline").exists():
        found.append("an artifact directory was created")
    if caught == CONFIG and (store.root / "mlflow.db").exists():
        found.append("the MLflow store was opened for a mistake the config check catches")
    if (store.root / "mlflow.db").exists():
        client = store.client()
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        if runs:
            found.append(f"{len(runs)} MLflow runs were created")
    if getattr(ended, "left_active", False):
        found.append("an MLflow run was left active in the process")
    from components import trial_processes

    waiting = trial_processes._prestarted  # in-process: workers started before the dataset check must be stopped
    if waiting:
        found.append(f"{len(waiting)} tuning worker process(es) started ahead of the tune stage were left waiting")
    return found


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    return blank_store(tmp_path_factory.mktemp("blank"))


@pytest.mark.parametrize(("case", "build", "words", "caught"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_and_writes_nothing(cli_in_process, store, tmp_path, tfds_dir, blank,
                                                        record_bad_input, case, build, words, caught):
    if caught == DATA:  # the dataset check comes after the store is opened: start from a blank one
        copy_store(blank, store.root)
    ended = cli_in_process("run", *build(tmp_path, tfds_dir))
    problems = _problems(ended, words, store, caught)
    record_bad_input(problems, store, process=False)
    assert problems == [], ended.stderr[-2000:]


@pytest.mark.parametrize(("case", "build", "words", "caught"), END_TO_END, ids=[c[0] for c in END_TO_END])
def test_the_pipeline_process_ends_a_bad_input_the_same_way(store, tmp_path, tfds_dir, record_bad_input,
                                                            case, build, words, caught):
    result = store.cli("run", *build(tmp_path, tfds_dir), timeout=300)
    problems = _problems(result, words, store, caught)
    record_bad_input(problems, store, process=True, repeat=True)
    assert problems == [], result.stderr[-2000:]

