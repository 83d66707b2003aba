"""`pipeline ui` checked in a real browser: what a user looks for in the MLflow UI is there.

Starts `pipeline ui` on the session's real default run (tests/conftest.py) and drives
headless Chromium (Debian's `chromium`, /usr/bin/chromium; override with $CHROMIUM)
through Playwright. Run ids and names come from the MLflow API, to navigate by URL and
to know what to expect; every assertion is on what the browser renders.

Screenshots of each page go to a temporary directory; set UI_SCREENSHOTS=docs/screenshots
to refresh the ones the README shows:

    UI_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/test_ui_browser.py
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.graph import GRAPH_MERMAID, GRAPH_PNG
from pipeline.names import ALIAS_CHAMPION, STAGES, TAG_KIND, TAG_STAGE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = [sys.executable, "-m", "pipeline.cli"]  # as tests/conftest.py runs the CLI

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags that work as root on a machine without network access; Playwright adds --headless and
# a fresh temporary --user-data-dir itself.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
# First-visit UI state MLflow keeps in localStorage: the "Model training" side of the GenAI/ML toggle,
# and no assistant panel or guidance pop-overs covering the page. Cosmetic only: the assertions do
# not depend on these keys, and the runs page is reached by its URL either way.
FIRST_VISIT = """
try {
  localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));
  localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
  localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
  localStorage.setItem('mlflow.detectIssues.guidanceShown_v1', 'true');
  localStorage.setItem('_mlflow_model_registry_promo_modal_dismissed_v1', 'true');
} catch (e) {}
"""
STARTUP_S = 240  # `mlflow ui` starts four uvicorn workers and a job runner: slow on two shared cores
PAGE_S = 90  # first render of a page on a busy machine


# -- the UI server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(store, *args: str, **streams) -> subprocess.Popen:
    """`pipeline ui ...` in its own session: `mlflow ui` forks uvicorn workers and a job runner,
    and the whole process group goes down together in _stop."""
    return subprocess.Popen([*PIPELINE, "ui", *args], cwd=ROOT, env=store.env, start_new_session=True,
                            **streams)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever is left, a child that left the
    group included (psutil checks each child's identity before signalling it)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for child in children:
            try:
                child.send_signal(sig)
            except psutil.Error:
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        _, children = psutil.wait_procs(children, timeout=grace)
        if not children:
            return


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _wait_until_answers(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`pipeline ui` exited with {proc.returncode} before answering:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"`pipeline ui` did not answer on {url} within {STARTUP_S}s:\n{_tail(log)}")


@dataclass(frozen=True)
class Ui:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="module")
def ui(default_run, tmp_path_factory):
    """`pipeline ui --port <free port>` (no --host) on the default run's store, until the module ends."""
    port = _free_port()
    log = tmp_path_factory.mktemp("ui") / "pipeline-ui.log"
    with open(log, "w") as out:
        proc = _start(default_run.store, "--port", str(port), stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_answers(proc, url, log)
        yield Ui(url, port, proc, log)
    finally:
        _stop(proc)


# -- where it listens ---------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    import psutil

    try:
        return {c.laddr.ip for c in psutil.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    except psutil.AccessDenied:  # not root on some systems: ss shows the same without owners
        lines = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        return {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in lines if line.strip()}


def test_ui_listens_on_loopback_only(ui):
    assert f"MLflow UI on http://127.0.0.1:{ui.port}" in _tail(ui.log, 100_000)
    assert _listening_addresses(ui.port) == {"127.0.0.1"}
    import psutil

    # And from another address of this machine nothing answers on that port.
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.settimeout(3)
                    assert sock.connect_ex((address.address, ui.port)) != 0, (
                        f"the UI answers on {address.address}:{ui.port}")


def test_ui_on_all_interfaces_warns_on_stderr(default_run):
    port = _free_port()
    proc = _start(default_run.store, "--host", "0.0.0.0", "--port", str(port),
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if proc.poll() is not None:
                    break
                continue
            seen.append(line)
            if line.startswith("warning:"):
                break
    finally:
        _stop(proc)  # as soon as the warning is there: nothing stays listening on every interface
    warnings = [line for line in seen if line.startswith("warning:")]
    assert warnings, f"no warning on stderr for --host 0.0.0.0; stderr began:\n{''.join(seen)[-2000:]}"
    assert "0.0.0.0" in warnings[0] and "anyone" in warnings[0]


# -- what the browser shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the UI should show, looked up through the MLflow API."""

    experiment_id: str
    parent: object  # the first (computing) pipeline run
    rerun: object  # the latest pipeline run (the cached re-run)
    stages: dict  # stage name -> run
    trials: list  # the tune run's trial runs
    champion: object  # the model version behind alias `champion`


@pytest.fixture(scope="module")
def expected(default_run) -> Expected:
    client = default_run.store.client()
    experiment = client.get_experiment_by_name("digits")
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                 order_by=["attributes.start_time ASC"])
    assert len(parents) >= 2  # the session's first run and its cached re-run

    def children(run):
        return client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
                                  max_results=1000)

    stages = {r.data.tags[TAG_STAGE]: r for r in children(parents[0]) if r.data.tags.get(TAG_KIND) == "stage"}
    assert sorted(stages) == sorted(STAGES)
    trials = [r for r in children(stages["tune"]) if r.data.tags.get(TAG_KIND) == "trial"]
    assert trials and all(re.fullmatch(r"trial-\w+", t.info.run_name) for t in trials)
    return Expected(experiment.experiment_id, parents[0], parents[-1], stages, trials,
                    client.get_model_version_by_alias("digits", ALIAS_CHAMPION))


def _link(page, run):
    """The link the UI renders for a run (runs table, child-run lists, parent-run field)."""
    return page.locator(f"a[href$='/runs/{run.info.run_id}']").first


def _expand(page, run) -> None:
    """Open a parent row of the runs table: the +/- button in its Run Name cell."""
    row = page.locator(".ag-row").filter(has=page.locator(f"a[href$='/runs/{run.info.run_id}']")).first
    row.locator("[col-id='attributes.`Run Name`'] button").first.click()


def _shot(page, directory: Path, name: str) -> None:
    time.sleep(1)  # let spinners and images settle for the picture; the assertions have already passed
    page.screenshot(path=str(directory / name))


def test_ui_shows_runs_stages_trials_confusion_matrix_champion_picture_and_system_metrics(ui, expected, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (or set $CHROMIUM)")
    shots = Path(os.environ["UI_SCREENSHOTS"]) if os.environ.get("UI_SCREENSHOTS") else tmp_path / "screenshots"
    shots = shots if shots.is_absolute() else ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    experiment = f"{ui.url}/#/experiments/{expected.experiment_id}"
    parent, stages = expected.parent, expected.stages

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script(FIRST_VISIT)
            context.set_default_timeout(PAGE_S * 1000)
            expect.set_options(timeout=PAGE_S * 1000)
            page = context.new_page()
            try:
                # 1. The experiment's runs table lists both pipeline runs; expanding the first
                #    shows its seven stage runs nested under it.
                page.goto(f"{experiment}/runs")
                expect(_link(page, parent)).to_have_text(parent.info.run_name)
                expect(_link(page, expected.rerun)).to_have_text(expected.rerun.info.run_name)
                _expand(page, parent)
                for name in STAGES:
                    expect(_link(page, stages[name])).to_have_text(name)
                _shot(page, shots, "01-experiment-runs.png")

                # 2. Expanding tune shows its KerasTuner trials, nested one level deeper.
                _expand(page, stages["tune"])
                trial_links = page.locator(", ".join(f"a[href$='/runs/{t.info.run_id}']" for t in expected.trials))
                expect(trial_links.first).to_be_visible()
                names = {t.info.run_name for t in expected.trials}
                rendered = [text.strip() for text in trial_links.all_inner_texts()]
                assert rendered and set(rendered) <= names, rendered
                _shot(page, shots, "02-tune-trials.png")

                # 3. The pipeline run's own page lists its child runs: the seven stages.
                page.goto(f"{experiment}/runs/{parent.info.run_id}")
                expect(page.get_by_text(parent.info.run_name, exact=True).first).to_be_visible()
                expect(page.get_by_text("Child runs", exact=True)).to_be_visible()
                for name in STAGES:
                    expect(_link(page, stages[name])).to_have_text(name)
                _shot(page, shots, "03-pipeline-run.png")

                # 4. A stage run (train): its metrics, its parent pipeline run, the model it registered,
                #    and the datasets it trained and validated on (the same ones the ingest run lists).
                page.goto(f"{experiment}/runs/{stages['train'].info.run_id}")
                expect(page.get_by_text("Parent run", exact=True)).to_be_visible()
                #    MLflow lists the first input with its digest and context and counts the others ("+1").
                expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
                expect(page.get_by_role("button", name=re.compile(r"^digits-train \([0-9a-f]{16}\)$"))).to_be_visible()
                expect(page.get_by_text("training", exact=True).first).to_be_visible()
                expect(page.get_by_text("+1", exact=True).first).to_be_visible()
                expect(_link(page, parent)).to_have_text(parent.info.run_name)
                expect(page.get_by_text("val_accuracy", exact=True).first).to_be_visible()
                expect(page.get_by_text("pipeline.stage", exact=True).first).to_be_visible()
                expect(page.get_by_text("Registered models", exact=True).first).to_be_visible()
                _shot(page, shots, "04-stage-run-train.png")

                # 5. The evaluate run's artifacts include the confusion matrix, and it renders.
                page.goto(f"{experiment}/runs/{stages['evaluate'].info.run_id}/artifacts")
                for name in ("confusion_matrix.png", "confusion_matrix.json", "blessing.json"):
                    expect(page.get_by_text(name, exact=True).first).to_be_visible()
                page.get_by_text("confusion_matrix.png", exact=True).first.click()
                image = page.locator("img[alt='confusion_matrix.png']").first
                expect(image).to_be_visible()
                page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=image.element_handle())
                _shot(page, shots, "05-evaluate-confusion-matrix.png")

                # 6. The Models page: registered model `digits`, its champion version carries the alias.
                page.goto(f"{ui.url}/#/models/digits")
                expect(page.get_by_text("digits", exact=True).first).to_be_visible()
                row = page.get_by_role("row").filter(has_text=f"Version {expected.champion.version}")
                expect(row).to_contain_text(ALIAS_CHAMPION)
                _shot(page, shots, "06-registered-model.png")

                # 7. The pipeline run's artifacts include the pipeline picture and its Mermaid source;
                #    the picture renders.
                page.goto(f"{experiment}/runs/{parent.info.run_id}/artifacts")
                for name in (GRAPH_PNG, GRAPH_MERMAID):
                    expect(page.get_by_text(name, exact=True).first).to_be_visible()
                page.get_by_text(GRAPH_PNG, exact=True).first.click()
                image = page.locator(f"img[alt='{GRAPH_PNG}']").first
                expect(image).to_be_visible()
                page.wait_for_function("img => img.complete && img.naturalWidth > 500", arg=image.element_handle())
                _shot(page, shots, "07-pipeline-graph.png")

                # 8. The train run's System metrics tab: a chart per metric of MLflow's sampler (CPU, memory, ...),
                #    each titled with the metric and drawing the run's series (named in the chart's legend).
                page.goto(f"{experiment}/runs/{stages['train'].info.run_id}/system-metrics")
                # The UI renders only the charts in view: these two are in its first row (alphabetical order).
                for metric in ("cpu_utilization_percentage", "disk_usage_megabytes"):
                    expect(page.get_by_role("heading", name=metric, exact=True)).to_be_visible()
                    expect(page.get_by_text(f"train (system/{metric})", exact=True).first).to_be_visible()
                _shot(page, shots, "08-train-system-metrics.png")
            except Exception as exc:
                failure = tmp_path / "failure.png"
                try:
                    page.screenshot(path=str(failure))
                except Exception:  # the page itself is gone: the original error says why
                    failure = None
                raise AssertionError(f"the MLflow UI did not show what it should at {page.url} "
                                     f"(screenshot: {failure}): {exc}") from exc
        finally:
            browser.close()
