"""`pipeline`: the command line.

Start-up stays light: TensorFlow and MLflow are imported inside the commands
that need them, so `--help` and config errors answer at once. Exit codes:
0 success, 1 a stage failed, 2 a usage or config error (nothing written),
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import studies
from pipeline import console
from pipeline.config import ConfigError, DEFAULT_CONFIG, check_stage, load_config, parse_address
from pipeline.names import GRAPH_PNG, STAGES

EXAMPLES = {
    "run": "pipeline run --set train.epochs=5 --set tune.max_trials=4",
    "tune": "pipeline tune --config pipeline/configs/fashion_mnist.toml",
    "ui": "pipeline ui --port 5000",
    "show": "pipeline show --json   |   pipeline show --graph --out graph.png > graph.mmd",
    "study": "pipeline study batchnorm --quick",
    "predict": "pipeline predict digit.png   |   pipeline predict --name clinc_oos 'book a table for two'",
    "compile": "pipeline compile --target kfp --image registry.example.com/deeplearning-tf:0.1.0 -o pipeline.yaml",
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line message on usage errors (its own default is also 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        console.error(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(2)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    _add_config_file_options(parser)
    parser.add_argument("--no-cache", action="store_true", help="recompute every stage instead of reusing cached ones")
    parser.add_argument("--from", dest="from_stage", metavar="STAGE", default=None,
                        help=f"recompute this stage and those after it; one of: {', '.join(STAGES)}")
    parser.add_argument("--hparams", metavar="FILE.json", default=None,
                        help="fixed hyperparameters (JSON object of [model]/[train] keys): skips the search")
    _add_verbosity(parser)


def _add_config_file_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None,
                        help=f"TOML config (default: {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[2])})")
    parser.add_argument("--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="override one config key; repeatable (e.g. --set train.epochs=5)")


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the final summary")
    group.add_argument("-v", "--verbose", action="store_true", help="more detail (TensorFlow logs included)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pipeline",
        description="A TFX-style pipeline (ingest -> validate -> preprocess -> tune -> train -> evaluate -> push) "
                    "on TensorFlow Datasets, KerasTuner and MLflow.",
        epilog="Example: pipeline run    (runs the embedded default dataset end to end)",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run the whole pipeline", epilog=f"Example: {EXAMPLES['run']}",
                              formatter_class=_Formatter)
    _add_config_options(run)
    tune = commands.add_parser("tune", help="run the pipeline up to and including tune",
                               epilog=f"Example: {EXAMPLES['tune']}",
                               formatter_class=_Formatter)
    _add_config_options(tune)
    tune.add_argument("--role", choices=("standalone", "chief", "worker"), default="standalone",
                      help="distributed tuning with KerasTuner's own mode: the chief runs the oracle, "
                           "workers (same --config/--set) run the trials")
    tune.add_argument("--oracle", metavar="HOST:PORT", default=None,
                      help="the chief's oracle address (default: $KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT, "
                           "else 127.0.0.1:8000)")
    tune.add_argument("--tuner-id", default=None,
                      help="a worker's unique id, e.g. tuner0 (default: $KERASTUNER_TUNER_ID)")
    ui = commands.add_parser("ui", help="start the MLflow UI on this machine's store", epilog=f"Example: {EXAMPLES['ui']}",
                             formatter_class=_Formatter)
    ui.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1; any other address warns)")
    ui.add_argument("--port", type=int, default=5000, help="port to listen on")
    _add_verbosity(ui)
    predict = commands.add_parser("predict", help="classify image files, text lines or a JSON array",
                                  epilog=f"Example: {EXAMPLES['predict']}",
                                  formatter_class=_Formatter)
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image files (PNG/JPEG), text lines (or .txt files of lines), or one JSON array")
    predict.add_argument("--model", default="champion", help="'champion', a registered version number, or a .keras file")
    predict.add_argument("--name", default="digits", help="registered model name (pipeline.name)")
    predict.add_argument("--top", type=int, default=3, help="how many classes to print per input")
    predict.add_argument("--json", action="store_true", help="print JSON on stdout")
    _add_verbosity(predict)
    study = commands.add_parser("study", help="reproduce a classic claim (BN, init, dropout, cells, attention, "
                                "optimizers, whitening) over seeds", epilog=f"Example: {EXAMPLES['study']}",
                                formatter_class=_Formatter)
    study.add_argument("name", choices=(*studies.STUDIES, studies.ALL), help="which study")
    study.add_argument("--quick", action="store_true", help="small sizes: about a minute or two per study")
    study.add_argument("--seeds", type=int, default=None, metavar="N",
                       help=f"seeds 0..N-1 (default {studies.FULL_SEEDS}; with --quick {studies.QUICK_SEEDS})")
    study.add_argument("--reports", metavar="DIR", default=None, help="where reports go (default: reports/)")
    study.add_argument("--data-dir", metavar="DIR", default=None,
                       help="TFDS data_dir the synthetic datasets are prepared into (default: TFDS's own)")
    _add_verbosity(study)
    show = commands.add_parser("show", help="summarise the latest (or a given) pipeline run",
                               epilog=f"Example: {EXAMPLES['show']}",
                               formatter_class=_Formatter)
    show.add_argument("run_id", nargs="?", default=None, help="a pipeline run id (default: the latest run)")
    show.add_argument("--name", default="digits", help="pipeline name (the MLflow experiment)")
    output = show.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON on stdout")
    output.add_argument("--graph", action="store_true",
                        help="draw the pipeline picture: the PNG goes to --out, its Mermaid source to stdout")
    show.add_argument("--out", metavar="FILE.png", default=GRAPH_PNG,
                      help="where --graph writes the PNG")
    _add_verbosity(show)
    compile_ = commands.add_parser("compile", help="write the pipeline for an orchestrator (Kubeflow Pipelines v2)",
                                   epilog=f"Example: {EXAMPLES['compile']}", formatter_class=_Formatter)
    compile_.add_argument("--target", choices=("kfp",), default="kfp",
                          help="the orchestrator: kfp = a Kubeflow Pipelines v2 YAML (needs the [kfp] extra)")
    _add_config_file_options(compile_)
    compile_.add_argument("--image", default=None,
                          help="the container image every task runs in, with the project installed "
                               "(default: deeplearning-tf:0.1.0)")
    compile_.add_argument("--tune-workers", type=int, default=0, metavar="N",
                          help="distributed tuning: one chief task and N KerasTuner worker tasks (0: one tune task)")
    compile_.add_argument("--oracle-port", type=int, default=8000, help="with --tune-workers: the chief's oracle port")
    compile_.add_argument("-o", "--output", metavar="FILE.yaml", default="pipeline.yaml", help="where the YAML goes")
    _add_verbosity(compile_)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    """TensorFlow, TFDS and absl talk a lot on stderr; keep that for --verbose."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    # No GCS credentials exist offline: stop TensorFlow from probing the metadata server.
    os.environ.setdefault("NO_GCE_CHECK", "true")


def _command_run(args: argparse.Namespace, until: str) -> int:
    from pipeline.runner import Options, run_pipeline

    config = load_config(args.config, args.overrides)
    if args.from_stage:
        check_stage(args.from_stage)
    if args.hparams and not Path(args.hparams).is_file():
        raise ConfigError(f"--hparams {args.hparams!r} is not a file; give a JSON file of hyperparameters")
    level = 0 if args.quiet else 2 if args.verbose else 1
    role = getattr(args, "role", "standalone")
    oracle, tuner_id = _distribution(args, role)
    options = Options(no_cache=args.no_cache, from_stage=args.from_stage, until_stage=until,
                      hparams=args.hparams, verbose=level, role=role, tuner_id=tuner_id, oracle=oracle)
    if role == "worker":
        from pipeline.workers import run_worker

        return run_worker(config, options)
    return run_pipeline(config, options)


def _distribution(args: argparse.Namespace, role: str) -> tuple[str, str]:
    """The oracle address and tuner id for distributed tuning, from options or KerasTuner's variables."""
    if role == "standalone":
        return "", ""
    oracle = args.oracle
    if oracle is None:
        host = os.environ.get("KERASTUNER_ORACLE_IP", "127.0.0.1")
        oracle = f"{host}:{os.environ.get('KERASTUNER_ORACLE_PORT', '8000')}"
    parse_address(oracle)
    tuner_id = "chief" if role == "chief" else (args.tuner_id or os.environ.get("KERASTUNER_TUNER_ID", ""))
    if role == "worker" and (not tuner_id or "chief" in tuner_id):
        raise ConfigError("a worker needs a unique --tuner-id (e.g. tuner0) that does not contain 'chief'")
    if args.hparams or args.no_cache or args.from_stage:
        raise ConfigError("--role chief/worker runs a search: it does not combine with --hparams, --no-cache or --from")
    return oracle, tuner_id


def _command_compile(args: argparse.Namespace) -> int:
    try:
        from pipeline import kubeflow
    except ImportError as exc:
        raise ConfigError(f"--target kfp needs the kfp package ({exc}): pip install -e '.[kfp]'") from None

    output = kubeflow.compile_pipeline(args.config, args.overrides, Path(args.output),
                                       image=args.image or kubeflow.DEFAULT_IMAGE, tune_workers=args.tune_workers,
                                       oracle_port=args.oracle_port)
    console.info(f"wrote {output}: a Kubeflow Pipelines v2 pipeline of the {len(STAGES)} stages "
                 f"(image {args.image or kubeflow.DEFAULT_IMAGE}"
                 f"{f', tune as a chief and {args.tune_workers} workers' if args.tune_workers else ''})")
    return 0


def _command_study(args: argparse.Namespace) -> int:
    names = studies.STUDIES if args.name == studies.ALL else (args.name,)
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    for name in names:
        result = studies.run_study(name, quick=args.quick, reports_dir=Path(args.reports) if args.reports else None,
                                   data_dir=args.data_dir, seeds=args.seeds)
        console.info(f"{name}: {result['verdict']} ({result['wall_time_s']:.0f} s, seeds {result['seeds']})")
    return 0


def _command_ui(args: argparse.Namespace) -> int:
    from pipeline import tracking

    host = args.host or "127.0.0.1"
    if args.host and args.host not in ("127.0.0.1", "localhost", "::1"):
        console.warn(f"the MLflow UI will listen on {host}: anyone who can reach this address sees every run")
    uri = tracking.tracking_uri()
    if tracking.is_server(uri):
        console.error(f"MLFLOW_TRACKING_URI points at a tracking server ({tracking.redact_uri(uri)}): open its own UI "
                      "in a browser; `pipeline ui` serves a local store")
        return 2
    artifacts = (tracking.store_dir() / "artifacts").as_uri()
    console.info(f"MLflow UI on {tracking.ui_url(host, args.port)} (store {tracking.redact_uri(uri)}); Ctrl-C stops it")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--default-artifact-root", artifacts, "--host", host, "--port", str(args.port)]
    os.execv(sys.executable, command)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    quiet = getattr(args, "quiet", False)
    level = 0 if quiet else 2 if verbose else 1
    console.set_verbosity(level)
    _quiet_libraries(verbose)
    try:
        if args.command in ("predict", "study"):
            # Both load TensorFlow at once; its start-up lines go to fd 2 before any log setting applies.
            from pipeline.runner import import_tensorflow_quietly

            import_tensorflow_quietly(level)
        if args.command in ("run", "tune"):
            return _command_run(args, "push" if args.command == "run" else "tune")
        if args.command == "ui":
            return _command_ui(args)
        if args.command == "predict":
            from pipeline.predict import command

            return command(args.inputs, args.model, args.name, args.top, args.json)
        if args.command == "study":
            return _command_study(args)
        if args.command == "compile":
            return _command_compile(args)
        if args.command == "show":
            from pipeline.show import show

            return show(args.run_id, args.name, as_json=args.json, graph_png=args.out if args.graph else None)
    except ConfigError as exc:
        console.error(str(exc))
        return 2
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


def entry() -> None:
    """The `pipeline` command: main(), then an exit that skips the interpreter's teardown. Freeing every
    object of a finished run, TensorFlow's native state among them, took 4-15 s after the summary was
    printed (no Python code runs then and nothing is written). The exit handlers (MLflow's among them)
    still run, and the output is flushed first."""
    code = main()
    import atexit
    import logging

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
