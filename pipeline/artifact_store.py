"""Where stage artifacts live, and the one way every process gets one: as a verified local directory.

A stage always writes into a local work directory that `pipeline/artifacts.py` seals in place under
`<store>/pipeline/<name>/<stage>/<fingerprint>/`. With `tracking.artifact_store = "local"` (the
default) that directory is the artifact: another process reads it where it lies, so it must share the
machine or a filesystem. With "mlflow", sealing first uploads the directory, manifest included, to the
stage run's MLflow artifacts (`stage_artifact/`) and tags the run with that location; a process that
needs the artifact finds a FINISHED run with the fingerprint, as the cache always did, downloads that
copy into its own store at the same fingerprint path, and takes it only once every file matches the
manifest's sha256. A download that is corrupt, partial or of another fingerprint is deleted, never
used. Components and workers then read local files either way; a cluster shares only the tracking
server.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline import artifacts, console, tracking
from pipeline.artifacts import Artifact, ArtifactError
from pipeline.config import Config, ConfigError
from pipeline.names import STAGE_ARTIFACT_PATH, TAG_ARTIFACT_DIR, TAG_ARTIFACT_URI, TAG_FINGERPRINT, TAG_STAGE

LOCAL, MLFLOW = "local", "mlflow"
CANDIDATES = 5  # FINISHED runs of one fingerprint tried, newest first, before a stage is recomputed


def root(config: Config) -> Path:
    """This machine's folder of the pipeline's stage artifacts."""
    return tracking.store_dir() / "pipeline" / config.pipeline.name


def open_store(config: Config, client, experiment_id: str) -> ArtifactStore:
    """The configured store; "mlflow" is refused (ConfigError) when other machines could not read the artifacts."""
    store = ArtifactStore(config.tracking.artifact_store, root(config), client, experiment_id)
    if store.kind == MLFLOW:
        _check_shared(client, experiment_id, config.pipeline.name)
    return store


def _check_shared(client, experiment_id: str, name: str) -> None:
    """A tracking server without artifact serving gives experiments a path on its own disk, which each client
    would write on its own disk instead: uploads that look fine and that no other machine can read."""
    if not tracking.is_server(tracking.tracking_uri()):
        return  # a local tracking store: one machine, whose artifact folder is the store's own
    location = client.get_experiment(experiment_id).artifact_location
    if urlsplit(location).scheme not in ("", "file"):
        return
    raise ConfigError(
        f'tracking.artifact_store = "mlflow" needs an MLflow artifact store every machine can reach, but the '
        f"tracking server gives experiment {name!r} the artifact location {location}, a path on the server's own "
        "disk (the server does not serve artifacts). Start `mlflow server` with --artifacts-destination (proxied "
        "artifacts: clients need only HTTP) or --default-artifact-root s3://... and use a new pipeline.name (an "
        'experiment keeps the location it was created with), or set tracking.artifact_store = "local" with '
        "PIPELINE_STORE_DIR on a filesystem every machine mounts")


def _uri(run_id: str) -> str:
    return f"runs:/{run_id}/{STAGE_ARTIFACT_PATH}"


@dataclass(frozen=True)
class ArtifactStore:
    kind: str  # "local" | "mlflow" (tracking.artifact_store)
    root: Path  # this machine's folder of the pipeline's artifacts; with "mlflow" also where downloads go
    client: Any  # mlflow.MlflowClient
    experiment_id: str

    def final(self, stage: str, fingerprint: str) -> Path:
        """Where this machine keeps the artifact of `stage` with `fingerprint` (sealed here or downloaded)."""
        return self.root / stage / fingerprint

    def seal(self, work: Path, final: Path, artifact: Artifact) -> Artifact:
        """Seal a stage's work directory at `final`; with "mlflow" it is uploaded to its run first."""
        return artifacts.seal(work, final, artifact, publish=self._upload if self.kind == MLFLOW else None)

    def _upload(self, directory: Path, sealed: Artifact) -> None:
        # The tag goes on only after the last file is up, so it always names a complete copy.
        self.client.log_artifacts(sealed.producer_run_id, str(directory), STAGE_ARTIFACT_PATH)
        self.client.set_tag(sealed.producer_run_id, TAG_ARTIFACT_URI, _uri(sealed.producer_run_id))

    def run_tags(self, final: Path, cached: Artifact | None = None) -> dict[str, str]:
        """Tags of a stage run: where its artifact is here and, when reused with "mlflow", the copy it reuses."""
        tags = {TAG_ARTIFACT_DIR: str(final)}
        if cached is not None and self.kind == MLFLOW:
            tags[TAG_ARTIFACT_URI] = _uri(cached.producer_run_id)
        return tags

    def find(self, stage: str, fingerprint: str) -> tuple[Artifact, str] | None:
        """The cache lookup: a FINISHED run with this fingerprint whose artifact verifies here, and that run's id."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=(f"tags.`{TAG_FINGERPRINT}` = '{fingerprint}' and attributes.status = 'FINISHED' "
                           f"and tags.`{TAG_STAGE}` = '{stage}'"),
            max_results=CANDIDATES,
        )
        tried: set[str] = set()  # the runs that reused an artifact all name the copy of the run that made it
        for run in runs:
            uri = run.data.tags.get(TAG_ARTIFACT_URI, "")
            if self.kind == MLFLOW and uri in tried:
                continue
            tried.add(uri)
            try:
                if self.kind == LOCAL:
                    directory = Path(run.data.tags.get(TAG_ARTIFACT_DIR, ""))
                    found = artifacts.load(directory, verify=True) if directory.is_dir() else None
                else:
                    found = self._fetch(uri, self.final(stage, fingerprint), fingerprint)
            except ArtifactError as exc:
                console.warn(f"{stage}: cached artifact rejected, recomputing ({exc})")
                continue
            if found is not None:
                return found, run.info.run_id
        return None

    def sealed(self, final: Path) -> Artifact | None:
        """The artifact at `final` if it is finished and verifies (another process may have sealed it meanwhile);
        with "mlflow" only if it is the copy its producing run uploaded, so that others can fetch it too."""
        here = _verified(final)
        if here is None or self.kind == LOCAL:
            return here
        from mlflow.exceptions import MlflowException

        try:
            producer = self.client.get_run(here.producer_run_id)
        except MlflowException:  # sealed for another tracking store
            return None
        return here if producer.data.tags.get(TAG_ARTIFACT_URI) == _uri(here.producer_run_id) else None

    def get(self, stage: str, fingerprint: str) -> Artifact | None:
        """A finished artifact of this fingerprint for a process that joins another's run (a tuning worker, a
        multi_worker task, a Kubeflow task): the local one, or with "mlflow" one fetched from a FINISHED run."""
        here = self.sealed(self.final(stage, fingerprint))
        if here is not None or self.kind == LOCAL:
            return here
        found = self.find(stage, fingerprint)
        return found[0] if found else None

    def _fetch(self, uri: str, final: Path, fingerprint: str) -> Artifact | None:
        """The copy at `uri` as a verified local directory at `final` (downloaded unless already there)."""
        if not uri:
            return None  # a run that made its artifact with artifact_store = "local": nothing to fetch
        try:
            here = artifacts.load(final, verify=True) if final.is_dir() else None
        except ArtifactError as exc:
            console.warn(f"the local copy is not used ({exc}); downloading it again")
            here = None
        if here is not None and _uri(here.producer_run_id) == uri:
            return here
        import mlflow

        # MLflow draws a progress bar per download, which would land in the pipeline's output.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        landing = final.with_name(f"{final.name}.download-{os.getpid()}")
        shutil.rmtree(landing, ignore_errors=True)
        landing.mkdir(parents=True)
        try:
            try:
                path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(landing),
                                                                tracking_uri=tracking.tracking_uri()))
            except Exception as exc:  # MLflow raises several types for a missing or unreadable artifact
                raise ArtifactError(f"{uri} could not be downloaded: {type(exc).__name__}: {exc}") from None
            fetched = artifacts.load(path, verify=True)
            if fetched.fingerprint != fingerprint:
                raise ArtifactError(f"{uri} holds fingerprint {fetched.fingerprint}, not {fingerprint}")
            artifacts.move_into_place(path, final)
        finally:
            shutil.rmtree(landing, ignore_errors=True)
        return Artifact(**{**asdict(fetched), "uri": str(final)})


def _verified(final: Path) -> Artifact | None:
    if not final.is_dir():
        return None
    try:
        return artifacts.load(final, verify=True)
    except ArtifactError:
        return None
