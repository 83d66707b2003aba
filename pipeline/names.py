"""Every string the pipeline, the components and the tests share, said once.

Kept free of TensorFlow and MLflow imports so the CLI and config validation
start fast. The model and training vocabulary (encoders, optimizers, ...) is
`models.vocabulary`'s, which is Keras-free too.
"""

# Stage names and their order (contract).
STAGES = ("ingest", "validate", "preprocess", "tune", "train", "evaluate", "push")

# Vocabularies accepted by the config.
TUNE_ALGORITHMS = ("random", "bayesian", "hyperband", "grid")
TUNE_OBJECTIVES = ("val_accuracy", "val_loss")
TASKS = ("auto", "classification", "regression")

# Artifact types and the manifest every artifact directory holds.
MANIFEST = "artifact.json"
EXAMPLES = "Examples"
STATISTICS = "Statistics"  # validate produces Statistics, Schema and Anomalies in one directory
PREPROCESS = "Transform"
HYPERPARAMETERS = "HyperParameters"
MODEL = "Model"
EVALUATION = "Evaluation"
PUSHED = "PushedModel"

# Files inside artifacts.
SPLITS = ("train", "validation", "test")
SPEC_FILE = "spec.json"
STATISTICS_FILE = "statistics.json"
SCHEMA_FILE = "schema.json"
ANOMALIES_FILE = "anomalies.json"
VALIDATION_REPORT = "validation_report.md"
TRANSFORM_MODEL = "transform.keras"
RAW_SAMPLE = "raw_sample.npz"  # a few raw train inputs: the served model's signature example
BEST_HPARAMS = "best_hyperparameters.json"
TRIALS_TABLE = "trials.csv"
MODEL_FILE = "model.keras"
CLASS_NAMES_FILE = "class_names.json"  # beside model.keras: what each output index means
INPUT_INFO_FILE = "input_info.json"  # beside model.keras: raw input kind and pixel range, for predict
HISTORY_FILE = "history.json"
RESOLVED_CONFIG = "config.json"
METRICS_FILE = "metrics.json"
BLESSING_FILE = "blessing.json"
CONFUSION_PNG = "confusion_matrix.png"
PER_CLASS_JSON = "per_class.json"  # evaluate: precision, recall, F1 per class
SLICES_JSON = "slices.json"  # evaluate: metrics per value of data.slice_feature
PREDICTIONS_PNG = "predictions.png"  # evaluate, regression: predicted against true values
ATTENTION_PNG = "attention_weights.png"  # evaluate, attention models: where the model looked
TUNING_PNG = "tuning.png"  # tune: each trial's objective
TRAINED_HPARAMS = "hyperparameters.json"  # beside model.keras: every value the model was built from
VOCABULARY_TEXT = "vocabulary.txt"  # preprocess, text: the TextVectorization vocabulary, a token a line
GRAPH_PNG = "pipeline_graph.png"  # on a pipeline run: the picture of its stages
GRAPH_MERMAID = "pipeline_graph.mmd"  # and its Mermaid source
ERROR_TEXT = "error.txt"  # on a run a failure ended: the traceback
TRIAL_ERROR_TEXT = "trial_error.txt"  # on a failed trial's run: KerasTuner's message
CONFUSION_JSON = "confusion_matrix.json"
LEARNING_CURVES_PNG = "learning_curves.png"
PUSH_FILE = "push.json"
ARTIFACT_PROPERTIES = "artifact_properties.json"  # on every stage run: the properties its artifact hands on
# Where stage artifacts live (tracking.artifact_store): the local store only, or also the MLflow artifacts of
# the stage run that made them, under this path.
ARTIFACT_STORES = ("local", "mlflow")
STAGE_ARTIFACT_PATH = "stage_artifact"

# MLflow tag keys.
TAG_STAGE = "pipeline.stage"
TAG_FINGERPRINT = "pipeline.fingerprint"
TAG_CACHED = "pipeline.cached"
TAG_CACHED_FROM = "pipeline.cached_from_run"
TAG_ARTIFACT_DIR = "pipeline.artifact_dir"
TAG_ARTIFACT_URI = "pipeline.artifact_uri"  # artifact_store = "mlflow": the sealed artifact among MLflow's (runs:/...)
TAG_KIND = "pipeline.kind"  # "pipeline", "stage" or "trial"
TAG_PID = "pipeline.pid"
TAG_HOST = "pipeline.host"  # with TAG_PID: which process owns a RUNNING run (a dead owner's runs are marked FAILED)
TAG_ERROR = "pipeline.error"  # on every run a failure ended: what went wrong, in one paragraph
TAG_RESUMED = "pipeline.resumed"  # on a train run that continued from a killed run's backup
TAG_TUNE_SOURCE = "pipeline.tune_source"  # on a tune run that searched nothing: where the values came from
TAG_TUNE_CHIEF = "pipeline.tune_chief"  # on a chief's tune run: HOST:PORT of its oracle, which workers look for
TAG_TRIAL_ID = "pipeline.trial_id"  # on a trial run: KerasTuner's trial id
TAG_TUNER_ID = "pipeline.tuner_id"  # on a trial run: the KerasTuner worker that ran it
TAG_TRIAL_STATUS = "pipeline.trial_status"  # on a trial run: KerasTuner's verdict (COMPLETED, FAILED, ...)
TAG_BLESSING = "pipeline.blessing"  # on an evaluate run and a registered version: why (not) blessed
TAG_BLESSED = "pipeline.blessed"  # on a pipeline run: "true" or "false"
TAG_PUSH = "pipeline.push"  # on a push run that registered nothing: why
TAG_ORCHESTRATOR = "pipeline.orchestrator"  # on a parent run a KFP pipeline opened: "kfp"
TAG_KFP_JOB = "pipeline.kfp_job"  # on that parent: the KFP run's id, by which the exit task finds it
# On a registered model version: where it came from.
TAG_TRAIN_FINGERPRINT = "pipeline.train_fingerprint"  # the train stage that made it
TAG_RUN_ID = "pipeline.run_id"  # the pipeline run
TAG_TRAIN_RUN_ID = "pipeline.train_run_id"  # the train stage run
TAG_DATA_FINGERPRINT = "pipeline.data_fingerprint"  # the ingest stage's fingerprint
TAG_HYPERPARAMETERS = "pipeline.hyperparameters"  # the values it was built from, as JSON
TAG_TEST_PREFIX = "pipeline.test_"  # + accuracy, mae or r2: its test figure
ALIAS_CHAMPION = "champion"
