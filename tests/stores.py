"""Blank MLflow stores for in-process tests.

MLflow makes a new SQLite store's tables through its schema migrations, which take seconds on a
small machine; a copy of a store made once opens in milliseconds. A test that needs a fresh store
copies the blank one, and still starts with no experiment and no run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DATABASE = "mlflow.db"


def blank_store(directory: Path) -> Path:
    """An MLflow store in `directory` with its tables made and nothing in them; returns its database file."""
    import mlflow

    directory.mkdir(parents=True, exist_ok=True)
    database = directory / DATABASE
    mlflow.MlflowClient(f"sqlite:///{database}").search_experiments()
    return database


def copy_store(database: Path, directory: Path) -> str:
    """A copy of a store's database in `directory`; returns the copy's tracking URI."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database, directory / DATABASE)
    return f"sqlite:///{directory / DATABASE}"
