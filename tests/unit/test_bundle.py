"""Offline checks of the Databricks Asset Bundle (databricks.yml + resources/*.yml): no CLI, no workspace, no Spark.

1. Every file, the merged bundle and every resolved target validate against the CLI's published JSON schema
   (../shared/schemas/databricks-bundle.schema.json; skipped when absent), the targets also with their variable
   values filled in.
2. What the schema cannot see: notebook files and their headers, task dependencies, compute per target
   (serverless vs the classic job cluster), what starts the job (the file-arrival trigger on the uploader's
   manifest folder), variable definitions and per-target resolution, resource references, the raw and checkpoint
   volumes and their grants, how the project reaches the compute, the dashboard file and its queries, and that the
   job passes every widget the notebooks read.

tests/integration/test_bundle_cli.py runs the real Databricks CLI (`bundle validate --strict`, `bundle plan`) on every
target.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

try:
    import bundle_utils as bu
except ModuleNotFoundError:  # tests/ imported as a package
    from tests import bundle_utils as bu

ROOT = bu.REPO_ROOT
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "databricks-bundle.schema.json"

# Variables without a default: the user passes them at deploy time (--var name=value or BUNDLE_VAR_name).
# README ("Bundle variables") lists them; a target may still give one a value (dev does for notification_email,
# the serverless targets for instance_profile_arn).
USER_SUPPLIED_VARIABLES = {
    "instance_profile_arn",
    "warehouse_id",
    "notification_email",
    "service_principal_id",
}

SERVERLESS_TARGETS = {"dev", "prod"}
CLASSIC_TARGETS = {"dev_classic": "dev", "prod_classic": "prod"}  # classic target -> its serverless twin
PIPELINE_JOB = "ecom_pipeline"
EXPECTED_TASK_ORDER = ["bronze_ingest", "silver_dimensions", "silver_orders", "gold_aggregates", "profit_report"]
JOB_SCHEMA_PARAMETERS = {"catalog", "bronze_schema", "silver_schema", "gold_schema"}
# Databricks Runtime 18 LTS (Spark 4.1) on the classic job cluster; databricks.yml cites the docs for the key.
CLASSIC_SPARK_VERSION = "18.x-scala2.13"
# Where the job reads the raw files and keeps the ingestion's checkpoints: volumes of the bundle, by reference, so
# dev resolves them to the developer's dev_<user>_ schemas.
RAW_VOLUME_PATH = "/Volumes/${var.catalog}/${resources.schemas.raw.name}/${resources.volumes.raw_files.name}/"
CHECKPOINT_VOLUME_PATH = (
    "/Volumes/${var.catalog}/${resources.schemas.bronze.name}/${resources.volumes.ingest_checkpoints.name}/"
)
# The uploader's layout (src/ecom_lakehouse/tools/extraction): one manifest per completed upload, written last.
UPLOAD_SETTINGS = bu.PACKAGE_DIR / "tools" / "extraction" / "settings.py"
UPLOAD_MODULE = bu.PACKAGE_DIR / "tools" / "extraction" / "upload.py"
# The API's minimum for both file-arrival timings (the CLI's bundle schema: "The minimum allowed value is 60 seconds").
FILE_ARRIVAL_MINIMUM_SECONDS = 60
GOLD_VIEWS = {"profit_by_year", "profit_by_year_category", "profit_by_customer", "profit_by_customer_year"}
GOLD_VIEW_COLUMNS = {
    "profit_by_year": {"year", "profit", "anomaly_profit", "anomaly_lines"},
    "profit_by_year_category": {"year", "category", "profit"},
    "profit_by_customer": {"customer_id", "customer_name", "profit"},
    "profit_by_customer_year": {"customer_id", "customer_name", "year", "profit"},
}
ENTRY_POINT = ("ecom", "ecom_lakehouse.tools.cli:main")
RESOURCE_SUFFIXES = {"jobs": "job", "schemas": "schema", "dashboards": "dashboard", "volumes": "volume"}

BUNDLE = bu.load_bundle(ROOT)
TARGETS = sorted(BUNDLE.targets)


def _tasks() -> list[tuple[str, dict[str, Any]]]:
    return [(key, task) for key, job in bu.jobs(BUNDLE.config).items() for task in job.get("tasks", [])]


def _notebook_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [(key, task) for key, task in _tasks() if "notebook_task" in task]


def _task_id(item: tuple[str, dict[str, Any]]) -> str:
    return f"{item[0]}.{item[1]['task_key']}"


def _notebook_path(job_key: str, task: dict[str, Any]) -> Path:
    return (BUNDLE.resource_file("jobs", job_key).parent / task["notebook_task"]["notebook_path"]).resolve()


def _dashboard_files() -> list[tuple[str, Path]]:
    dashboards = (BUNDLE.config.get("resources") or {}).get("dashboards") or {}
    return [
        (key, (BUNDLE.resource_file("dashboards", key).parent / spec["file_path"]).resolve())
        for key, spec in dashboards.items()
    ]


# --- 1. the official schema -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA_PATH.is_file():
        pytest.skip(f"bundle JSON schema not found at {SCHEMA_PATH} (it lives in ../shared beside the repository)")
    return bu.schema_validator(SCHEMA_PATH)


@pytest.mark.parametrize("path", BUNDLE.files, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_each_file_matches_schema(validator: Any, path: Path) -> None:
    errors = bu.schema_errors(validator, bu.load_yaml(path))
    assert not errors, f"{path.name} violates the bundle schema:\n" + "\n".join(errors)


def test_merged_bundle_matches_schema(validator: Any) -> None:
    errors = bu.schema_errors(validator, BUNDLE.config)
    assert not errors, "merged bundle violates the bundle schema:\n" + "\n".join(errors)


@pytest.mark.parametrize("target", TARGETS)
def test_resolved_target_matches_schema(validator: Any, target: str) -> None:
    config = bu.resolve_target(BUNDLE, target)
    for internal in ("target", "mode"):  # where the CLI keeps them after selecting a target; not user keys
        config["bundle"].pop(internal, None)
    errors = bu.schema_errors(validator, config)
    assert not errors, f"target {target} violates the bundle schema:\n" + "\n".join(errors)
    # With the target's variable values in place, enum fields (performance_target, data_security_mode,
    # pause_status) are checked against their allowed values too.
    filled = bu.substitute_variables(config, bu.variable_values(config))
    errors = bu.schema_errors(validator, filled)
    assert not errors, f"target {target} with its variable values violates the bundle schema:\n" + "\n".join(errors)


# --- 2. layout and targets ------------------------------------------------------------------------------------


def test_layout_follows_default_python_template() -> None:
    assert BUNDLE.config["bundle"]["name"] == "ecom_lakehouse"
    assert BUNDLE.config.get("include") == ["resources/*.yml"]
    for (resource_type, key), path in BUNDLE.resource_files.items():
        assert path.parent == ROOT / "resources", f"{resource_type}.{key} should be defined under resources/"
        suffix = RESOURCE_SUFFIXES.get(resource_type, resource_type.rstrip("s"))
        assert path.name.endswith(f".{suffix}.yml"), f"{path.name} defines {resource_type}; name it *.{suffix}.yml"
    for path in BUNDLE.files[1:]:
        resources = bu.load_yaml(path).get("resources") or {}
        assert len(resources) == 1, f"{path.name} should hold one resource type, has {sorted(resources)}"
        # The CLI recommends "a single schema in a file with the .schema.yml extension"; volumes likewise.
        for resource_type in ("schemas", "volumes"):
            if resource_type in resources:
                assert len(resources[resource_type]) == 1, f"{path.name} should define one of its {resource_type}"
    for key in ("raw", "bronze", "silver", "gold"):
        assert BUNDLE.resource_file("schemas", key).name == f"ecom_{key}.schema.yml"
    # Resource keys are unique across types, so the raw volume's key is raw_files; its file is named for the volume.
    assert BUNDLE.resource_file("volumes", "raw_files").name == "ecom_raw.volume.yml"
    assert BUNDLE.resource_file("volumes", "ingest_checkpoints").name == "ecom_ingest_checkpoints.volume.yml"


def test_targets_serverless_and_classic_for_dev_and_prod() -> None:
    assert set(TARGETS) == SERVERLESS_TARGETS | set(CLASSIC_TARGETS)
    assert [t for t, spec in BUNDLE.targets.items() if spec.get("default")] == ["dev"]
    for target, spec in BUNDLE.targets.items():
        assert spec["mode"] == ("production" if target.startswith("prod") else "development"), target
        # Every target sets root_path under the deploying identity's home; a classic target shares its twin's, so
        # both flavours are one deployment (one job, one set of schemas) that a deploy switches in place.
        root = spec["workspace"]["root_path"]
        assert root.startswith("/Workspace/Users/${workspace.current_user.userName}/.bundle/${bundle.name}/"), root
        assert root == BUNDLE.targets[CLASSIC_TARGETS.get(target, target)]["workspace"]["root_path"]
    assert "artifacts" not in BUNDLE.config, "the notebooks install the project with %pip; no wheel artifact"
    for target in ("prod", "prod_classic"):
        prod = BUNDLE.targets[target]
        # mode: production requires run_as (or a service principal deploying) and an explicit root_path.
        assert prod["run_as"] == {"service_principal_name": "${var.service_principal_id}"}
        # The service principal deploys prod from CI and manages it (the CLI's "current deployment identity").
        manager = {"service_principal_name": "${var.service_principal_id}", "level": "CAN_MANAGE"}
        assert prod["permissions"][0] == manager
        assert prod["resources"]["schemas"] == BUNDLE.targets["prod"]["resources"]["schemas"]
        assert prod["resources"]["volumes"] == BUNDLE.targets["prod"]["resources"]["volumes"]
    assert BUNDLE.targets["prod_classic"]["permissions"] == BUNDLE.targets["prod"]["permissions"]


@pytest.mark.parametrize("target", sorted(CLASSIC_TARGETS))
def test_classic_target_differs_from_its_twin_only_in_compute(target: str) -> None:
    classic = bu.resolve_target(BUNDLE, target)
    serverless = bu.resolve_target(BUNDLE, CLASSIC_TARGETS[target])
    job = bu.jobs(classic)[PIPELINE_JOB]
    assert job.pop("job_clusters")
    for task in job["tasks"]:
        assert task.pop("job_cluster_key")
    assert job == bu.jobs(serverless)[PIPELINE_JOB]
    for config in (classic, serverless):
        config["bundle"].pop("target")
        config.pop("resources")
        config["variables"].pop("instance_profile_arn")  # "" on serverless; the user supplies it on classic
    assert classic == serverless


def test_no_workspace_host_placeholder() -> None:
    """The host comes from the user's CLI profile or DATABRICKS_HOST, not from a placeholder in the bundle."""
    for target in TARGETS:
        config = bu.resolve_target(BUNDLE, target)
        assert "host" not in (config.get("workspace") or {}), f"target {target} hard-codes a workspace host"
    text = "\n".join(p.read_text(encoding="utf-8") for p in BUNDLE.files)
    assert "<your-workspace>" not in re.sub(r"(?m)^\s*#.*$", "", text), "placeholder host outside comments"


def _resolved_trigger(target: str) -> dict[str, Any]:
    config = bu.resolve_target(BUNDLE, target)
    job = bu.jobs(config)[PIPELINE_JOB]
    return bu.substitute_variables(job["trigger"], bu.variable_values(config))


@pytest.mark.parametrize("target", TARGETS)
def test_job_starts_on_file_arrival_paused_outside_prod(target: str) -> None:
    config = bu.resolve_target(BUNDLE, target)
    job = bu.jobs(config)[PIPELINE_JOB]
    # One trigger per job: the variable holds all of it, and there is no schedule beside it.
    assert job["trigger"] == "${var.job_trigger}"
    assert "schedule" not in job and "continuous" not in job
    trigger = _resolved_trigger(target)
    assert set(trigger) == {"pause_status", "file_arrival"}
    assert trigger["pause_status"] == ("UNPAUSED" if target.startswith("prod") else "PAUSED")
    if target.startswith("dev"):
        # Development mode would pause it anyway; the preset says so explicitly.
        assert BUNDLE.targets[target]["presets"]["trigger_pause_status"] == "PAUSED"
    file_arrival = trigger["file_arrival"]
    assert file_arrival["url"] == RAW_VOLUME_PATH + "_manifests/"
    # Uploads completing close together make one run (5 quiet minutes), at most one start per 15 minutes.
    assert file_arrival["wait_after_last_change_seconds"] == 300
    assert file_arrival["min_time_between_triggers_seconds"] == 900
    for timing in ("wait_after_last_change_seconds", "min_time_between_triggers_seconds"):
        assert file_arrival[timing] >= FILE_ARRIVAL_MINIMUM_SECONDS, timing


def test_trigger_watches_the_folder_the_uploader_writes_manifests_to() -> None:
    """`ecom upload` writes a run's manifest last, to <prefix>_manifests/<run id>.json, the prefix ending in "/";
    the raw volume is that prefix, so the trigger watches <volume>/_manifests/."""
    manifest_dir = bu.module_constant(UPLOAD_SETTINGS, "MANIFEST_DIR")
    assert _resolved_trigger("prod")["file_arrival"]["url"] == f"{RAW_VOLUME_PATH}{manifest_dir}/"
    source = UPLOAD_MODULE.read_text(encoding="utf-8")
    assert re.search(r"prefix\}\{MANIFEST_DIR\}/\{[^}]*run_id\}\.json", source), "the manifest key changed"
    assert bu.module_constant(UPLOAD_SETTINGS, "DEFAULT_PREFIX").endswith("/")


def test_fallback_trigger_is_daily_and_follows_the_pause_variable(validator: Any) -> None:
    """The fallback documented in job_trigger's description is a valid trigger and keeps the pause logic."""
    spec = BUNDLE.variables["job_trigger"]
    assert spec["type"] == "complex"
    fallback = {"periodic": {"interval": 1, "unit": "DAYS"}, "pause_status": "${var.schedule_pause_status}"}
    assert '{"periodic": {"interval": 1, "unit": "DAYS"}}' in spec["description"]
    assert "schedule_pause_status" in spec["description"]
    for target in TARGETS:
        config = bu.resolve_target(BUNDLE, target)
        config["variables"]["job_trigger"]["default"] = fallback
        for internal in ("target", "mode"):
            config["bundle"].pop(internal, None)
        filled = bu.substitute_variables(config, bu.variable_values(config))
        errors = bu.schema_errors(validator, filled)
        assert not errors, f"target {target} with the fallback trigger:\n" + "\n".join(errors)
        trigger = bu.jobs(filled)[PIPELINE_JOB]["trigger"]
        assert trigger == {
            "periodic": {"interval": 1, "unit": "DAYS"},
            "pause_status": "UNPAUSED" if target.startswith("prod") else "PAUSED",
        }
    # The default and the fallback differ only in the kind of trigger: both carry the same pause status.
    assert spec["default"]["pause_status"] == fallback["pause_status"]


# --- 3. variables and references ------------------------------------------------------------------------------


def test_every_variable_has_a_description() -> None:
    for name, spec in BUNDLE.variables.items():
        assert isinstance(spec, dict) and spec.get("description"), f"variable {name} needs a description"


def test_every_variable_reference_is_defined() -> None:
    refs = bu.variable_references(BUNDLE.config)
    undefined = {name: sorted(paths) for name, paths in refs.items() if name not in BUNDLE.variables}
    assert not undefined, f"${{var.*}} used but not declared: {undefined}"


def test_every_variable_is_used() -> None:
    """Referenced outside `variables`, or from the value of a variable that is (schedule_pause_status is used by
    job_trigger's default)."""
    unused = sorted(set(BUNDLE.variables) - bu.used_variables(BUNDLE.config))
    assert not unused, f"declared but never referenced: {unused}"


def test_used_variables_follows_references_between_variables() -> None:
    config = {
        "variables": {"a": {"default": "${var.b}"}, "b": {"default": 1}, "c": {"default": "${var.d}"}, "d": {}},
        "resources": {"jobs": {"j": {"name": "${var.a}"}}},
    }
    assert bu.used_variables(config) == {"a", "b"}


def test_user_supplied_variables_are_exactly_those_without_default() -> None:
    without_default = {
        name for name, spec in BUNDLE.variables.items() if spec.get("default") is None and not spec.get("lookup")
    }
    assert without_default == USER_SUPPLIED_VARIABLES
    for name in USER_SUPPLIED_VARIABLES:
        assert "must supply" in BUNDLE.variables[name]["description"], f"describe {name} as one the user must supply"


@pytest.mark.parametrize("target", TARGETS)
def test_target_resolves_every_variable(target: str) -> None:
    """The CLI refuses to deploy while any declared variable has no value, used or not."""
    values = bu.variable_values(bu.resolve_target(BUNDLE, target))
    unresolved = {name for name, value in values.items() if value is None}
    assert unresolved <= USER_SUPPLIED_VARIABLES, f"target {target} leaves {sorted(unresolved)} without a value"
    # Serverless cannot use an instance profile: its targets set the classic-only variable empty, so nobody has
    # to pass it; the classic targets leave it to the user (an ARN, or "" to read through Unity Catalog).
    assert ("instance_profile_arn" in unresolved) is (target in CLASSIC_TARGETS)
    if target in SERVERLESS_TARGETS:
        assert values["instance_profile_arn"] == ""
    for name, value in values.items():
        refs = bu.VAR_REF.findall(value) if isinstance(value, str) else []
        assert not refs, f"target {target}: variable {name} refers to other variables {refs}"


def test_resource_references_point_at_defined_resources() -> None:
    resources = BUNDLE.config.get("resources") or {}
    for rtype, key, field in bu.resource_references(BUNDLE.config):
        assert key in (resources.get(rtype) or {}), f"${{resources.{rtype}.{key}.{field}}} has no such resource"
        if field != "id":
            assert field.split(".")[0] in resources[rtype][key], f"resources.{rtype}.{key} has no field {field}"


def test_no_unknown_reference_roots() -> None:
    allowed = ("${var.", "${resources.", "${bundle.", "${workspace.", "${artifacts.")
    for path, text in bu.iter_strings(BUNDLE.config):
        for ref in bu.ANY_REF.findall(text):
            assert ref.startswith(allowed), f"{path}: unknown reference {ref}"


# --- 4. the job -----------------------------------------------------------------------------------------------


def test_pipeline_tasks_run_in_medallion_order() -> None:
    job = bu.jobs(BUNDLE.config)[PIPELINE_JOB]
    graph = bu.task_graph(job)
    assert bu.topological_order(graph) == EXPECTED_TASK_ORDER
    assert graph == {task: EXPECTED_TASK_ORDER[i - 1 : i] for i, task in enumerate(EXPECTED_TASK_ORDER)}


@pytest.mark.parametrize("job_key", sorted(bu.jobs(BUNDLE.config)))
def test_depends_on_names_existing_tasks_without_cycle(job_key: str) -> None:
    graph = bu.task_graph(bu.jobs(BUNDLE.config)[job_key])
    keys = list(graph)
    assert len(keys) == len(set(keys)), f"duplicate task_key in {job_key}"
    for task, deps in graph.items():
        missing = [dep for dep in deps if dep not in graph]
        assert not missing, f"{job_key}.{task} depends on unknown tasks {missing}"
    assert bu.find_cycle(graph) is None, f"dependency cycle in {job_key}: {bu.find_cycle(graph)}"


def test_base_job_is_serverless() -> None:
    """No task names compute, so every notebook task runs on serverless with the notebook's environment."""
    job = bu.jobs(BUNDLE.config)[PIPELINE_JOB]
    assert "job_clusters" not in job and "environments" not in job
    for task in job["tasks"]:
        assert bu.task_compute(task) == {}, f"{task['task_key']} names compute {bu.task_compute(task)}"
    assert job["performance_target"] == "${var.performance_target}"
    assert job["max_concurrent_runs"] == 1
    assert job["email_notifications"]["on_failure"] == ["${var.notification_email}"]
    assert job["timeout_seconds"] > 0
    bronze = next(t for t in job["tasks"] if t["task_key"] == "bronze_ingest")
    assert bronze["max_retries"] >= 1


@pytest.mark.parametrize("target", TARGETS)
def test_performance_target_per_target(target: str) -> None:
    values = bu.variable_values(bu.resolve_target(BUNDLE, target))
    # dev: a developer waits for the run (fast start); prod: the scheduled nightly run, in the cheaper mode.
    assert values["performance_target"] == ("STANDARD" if target.startswith("prod") else "PERFORMANCE_OPTIMIZED")


@pytest.mark.parametrize("target", TARGETS)
def test_compute_per_target(target: str) -> None:
    config = bu.resolve_target(BUNDLE, target)
    job = bu.jobs(config)[PIPELINE_JOB]
    assert [t["task_key"] for t in job["tasks"]] == EXPECTED_TASK_ORDER, "a target override added or lost a task"
    if target in SERVERLESS_TARGETS:
        assert "job_clusters" not in job
        assert all(bu.task_compute(task) == {} for task in job["tasks"])
        return
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    assert list(clusters) == ["ecom_cluster"]
    cluster = clusters["ecom_cluster"]
    assert cluster["spark_version"] == CLASSIC_SPARK_VERSION
    assert re.fullmatch(r"\d+(\.\d+)?\.x-scala2\.13", cluster["spark_version"]), "not a runtime version key"
    assert cluster["node_type_id"] == "${var.node_type_id}"
    assert cluster["data_security_mode"] == "${var.classic_access_mode}"
    assert cluster["aws_attributes"] == {
        "availability": "SPOT_WITH_FALLBACK",
        "first_on_demand": 1,
        "zone_id": "auto",
        "instance_profile_arn": "${var.instance_profile_arn}",
    }
    # Dedicated by default: the access mode in which the instance profile reaches all code (direct S3 reads).
    assert bu.variable_values(config)["classic_access_mode"] == "SINGLE_USER"
    for task in job["tasks"]:
        assert bu.task_compute(task) == {"job_cluster_key": "ecom_cluster"}, task["task_key"]


@pytest.mark.parametrize("item", _notebook_tasks(), ids=_task_id)
def test_notebook_exists_with_databricks_header(item: tuple[str, dict[str, Any]]) -> None:
    job_key, task = item
    path = _notebook_path(job_key, task)
    assert path.suffix in bu.NOTEBOOK_HEADERS, f"{path.name}: notebook must be .py or .sql in source format"
    assert path.is_file(), f"{task['task_key']}: notebook {path.relative_to(ROOT)} does not exist"
    with path.open(encoding="utf-8") as handle:
        first_line = handle.readline().rstrip("\r\n")
    assert first_line == bu.NOTEBOOK_HEADERS[path.suffix], (
        f"{path.name} must start with {bu.NOTEBOOK_HEADERS[path.suffix]!r} to deploy as a notebook, not a file"
    )


@pytest.mark.parametrize("item", _notebook_tasks(), ids=_task_id)
def test_job_passes_every_widget_the_notebook_reads(item: tuple[str, dict[str, Any]]) -> None:
    job_key, task = item
    path = _notebook_path(job_key, task)
    if not path.is_file():
        pytest.fail(f"notebook {path.relative_to(ROOT)} does not exist")
    widgets = bu.notebook_widgets(path)
    assert "catalog" in widgets, f"{path.name} reads no catalog widget; tables would land in the default catalog"
    # Job parameters are pushed down to every notebook task as widgets; base_parameters add task-level ones.
    job_params = {p["name"] for p in bu.jobs(BUNDLE.config)[job_key].get("parameters", [])}
    passed = job_params | set(task["notebook_task"].get("base_parameters") or {})
    assert widgets <= passed, f"{path.name} reads widgets the job never sets: {sorted(widgets - passed)}"


def test_widget_parser_reads_python_and_sql_notebooks(tmp_path: Path) -> None:
    python = tmp_path / "n.py"
    python.write_text(
        "# Databricks notebook source\n"
        'dbutils.widgets.text("catalog", "main")\n'
        "dbutils.widgets.dropdown('layer', 'gold', ['gold'])\n"
        'run_id = dbutils.widgets.get("run_id")\n'
        "# MAGIC %sql\n"
        "# MAGIC CREATE WIDGET TEXT gold_schema DEFAULT 'ecom_gold'\n"
    )
    sql = tmp_path / "n.sql"
    sql.write_text(
        "-- Databricks notebook source\nCREATE WIDGET TEXT `input_path` DEFAULT '';\nSELECT getArgument('x')\n"
    )
    assert bu.notebook_widgets(python) == {"catalog", "layer", "run_id", "gold_schema"}
    assert bu.notebook_widgets(sql) == {"input_path", "x"}
    handover = tmp_path / "task.py"
    handover.write_text(
        "# Databricks notebook source\nfrom ecom_lakehouse.run.tasks import run_task\n\n"
        'display(run_task(spark, dbutils, "gold"))\n'
    )
    assert bu.notebook_widgets(handover, package_widgets={"catalog", "run_id"}) == {"catalog", "run_id"}


def test_run_task_declares_the_job_parameters() -> None:
    """The notebooks hand over to ecom_lakehouse.run.tasks.run_task, which declares these widgets."""
    job = bu.jobs(BUNDLE.config)[PIPELINE_JOB]
    passed = {p["name"] for p in job["parameters"]} | {"run_id"}
    assert bu.run_task_widgets() == passed


def test_job_parameters_cover_the_documented_widgets() -> None:
    job = bu.jobs(BUNDLE.config)[PIPELINE_JOB]
    names = [p["name"] for p in job["parameters"]]
    assert len(names) == len(set(names))
    assert set(names) == JOB_SCHEMA_PARAMETERS | {"input_path", "checkpoint_location", "full_refresh"}
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    assert defaults["full_refresh"] == "false"  # a string: job parameter values are text
    for layer in ("bronze", "silver", "gold"):
        assert defaults[f"{layer}_schema"] == f"${{resources.schemas.{layer}.name}}"  # dev-prefixed name
    # The raw files and the checkpoints are volumes of the bundle, named through their resources.
    assert defaults["input_path"] == RAW_VOLUME_PATH
    assert defaults["checkpoint_location"] == CHECKPOINT_VOLUME_PATH
    volumes = BUNDLE.config["resources"]["volumes"]
    for default, key in ((RAW_VOLUME_PATH, "raw_files"), (CHECKPOINT_VOLUME_PATH, "ingest_checkpoints")):
        # The path is the volume's own catalog, schema and name: /Volumes/<catalog>/<schema>/<volume>/.
        volume, name = volumes[key], f"${{resources.volumes.{key}.name}}"
        assert default == f"/Volumes/{volume['catalog_name']}/{volume['schema_name']}/{name}/"
    # All tasks share the job run id, so each one resumes the run its predecessor recorded.
    for task in job["tasks"]:
        assert task["notebook_task"].get("base_parameters") == {"run_id": "{{job.run_id}}"}


# --- 5. the project on the compute ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_no_wheel_artifact_and_no_task_libraries(target: str) -> None:
    """The notebooks `%pip install ..` the project from the synced bundle files: one way for every compute."""
    config = bu.resolve_target(BUNDLE, target)
    assert "artifacts" not in config
    assert "artifacts_dynamic_version" not in (config.get("presets") or {})
    for job_key, job in bu.jobs(config).items():
        for task in job["tasks"]:
            assert "libraries" not in task, f"{job_key}.{task['task_key']} declares libraries"


@pytest.mark.parametrize("item", _notebook_tasks(), ids=_task_id)
def test_python_notebooks_install_the_project_first(item: tuple[str, dict[str, Any]]) -> None:
    """`%pip install ..` (the bundle root, relative to notebooks/), restart Python, and only then import the package."""
    job_key, task = item
    path = _notebook_path(job_key, task)
    code = [cell for cell in bu.notebook_cells(path) if not cell.startswith("%md")]
    if path.suffix == ".sql":
        assert not any("ecom_lakehouse" in cell for cell in code), f"{path.name}: SQL notebooks need no package"
        return
    install, restart, *rest = code
    assert re.fullmatch(r"%pip install( --?[\w-]+)* \.\.", install), f"{path.name}: first cell {install!r}"
    assert (path.parent / "..").resolve() == ROOT and (ROOT / "pyproject.toml").is_file()
    assert restart == "dbutils.library.restartPython()", f"{path.name}: second cell {restart!r}"
    assert any("ecom_lakehouse" in cell for cell in rest)


def test_bundle_root_is_an_installable_project() -> None:
    """What `%pip install ..` builds from the deployed files/ folder: pyproject.toml at the bundle root."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == "ecom-lakehouse"
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    name, target = ENTRY_POINT
    assert pyproject["project"].get("scripts", {}).get(name) == target
    # Nothing keeps the project's files out of the sync (the CLI syncs the bundle root, minus .gitignore'd files).
    sync = BUNDLE.config.get("sync") or {}
    assert not sync.get("exclude") and sync.get("paths", ["."]) == ["."], sync


# --- 6. the dashboard -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", _dashboard_files(), ids=lambda item: item[0])
def test_dashboard_file_parses(item: tuple[str, Path]) -> None:
    key, path = item
    assert path.is_file(), f"dashboard {key}: {path} does not exist"
    dashboard = bu.load_dashboard(path)
    datasets = {d["name"]: d for d in dashboard.get("datasets", [])}
    assert datasets and len(datasets) == len(dashboard["datasets"]), "datasets must exist and be uniquely named"
    assert dashboard.get("pages"), "dashboard has no pages"
    for widget in bu.dashboard_widgets(dashboard):
        for query in widget.get("queries", []):
            name = query["query"]["datasetName"]
            assert name in datasets, f"widget {widget['name']} uses unknown dataset {name}"
            sql = bu.dataset_sql(datasets[name])
            for field in query["query"]["fields"]:
                for column in re.findall(r"`([^`]+)`", field["expression"]):
                    assert re.search(rf"\b{re.escape(column)}\b", sql), f"{widget['name']}: {column} not in {name}"
    assert "${" not in path.read_text(encoding="utf-8"), "the CLI does not substitute ${...} inside .lvdash.json"


def test_dashboard_queries_read_gold_views_unqualified() -> None:
    ((key, path),) = _dashboard_files()
    queries = bu.dashboard_queries(path)
    assert set(queries) == {
        "profit_by_year",
        "profit_by_year_category",
        "top_customers",
        "bottom_customers",
        "anomaly_profit_by_year",
        "profit_by_customer_year",
    }
    for name, sql in queries.items():
        assert re.match(r"\s*SELECT\b", sql, re.I), f"{name} is not a plain SELECT"
        relations = bu.relation_names(sql)
        assert relations and set(relations) <= GOLD_VIEWS, f"{name} reads {relations}, not only gold views"
        # Qualified names would ignore dataset_catalog/dataset_schema and pin one catalog for every target.
        assert all("." not in r for r in relations), f"{name} must name the views without catalog/schema"
        columns = set().union(*(GOLD_VIEW_COLUMNS[r] for r in relations))
        selected = re.search(r"SELECT(.*?)\bFROM\b", sql, re.I | re.S).group(1)
        for column in re.findall(r"\b[a-z_]+\b", re.sub(r"'[^']*'|\bAS\s+\w+", "", selected, flags=re.I)):
            if column not in {"concat", "coalesce"}:
                assert column in columns, f"{name} selects {column}, which the gold views do not have"
    spec = BUNDLE.config["resources"]["dashboards"][key]
    assert spec["dataset_catalog"] == "${var.catalog}"
    assert spec["dataset_schema"] == "${resources.schemas.gold.name}"
    assert spec["warehouse_id"] == "${var.warehouse_id}"


def test_dashboard_queries_helper_reads_query_strings_too(tmp_path: Path) -> None:
    path = tmp_path / "d.lvdash.json"
    datasets = [{"name": "a", "query": "SELECT 1"}, {"name": "b", "queryLines": ["SELECT\n", "2"]}]
    path.write_text(json.dumps({"datasets": datasets}))
    assert bu.dashboard_queries(path) == {"a": "SELECT 1", "b": "SELECT\n2"}


# --- 7. Unity Catalog schemas ---------------------------------------------------------------------------------


def test_schemas_in_catalog_with_analyst_read_on_gold_only() -> None:
    schemas = BUNDLE.config["resources"]["schemas"]
    assert set(schemas) == {"raw", "bronze", "silver", "gold"}
    for key, spec in schemas.items():
        assert spec["catalog_name"] == "${var.catalog}"
        assert spec["name"] == f"${{var.{key}_schema}}"
        assert spec.get("comment")
    analyst_grants = {
        key: [g for g in spec.get("grants", []) if g["principal"] == "${var.analysts_group}"]
        for key, spec in schemas.items()
    }
    assert analyst_grants["raw"] == [] and analyst_grants["bronze"] == [] and analyst_grants["silver"] == []
    assert [set(g["privileges"]) for g in analyst_grants["gold"]] == [{"USE_SCHEMA", "SELECT"}]
    # The raw schema holds no tables: the uploader only needs to reach the volume in it.
    assert schemas["raw"]["grants"] == [{"principal": "${var.uploader_principal}", "privileges": ["USE_SCHEMA"]}]
    assert BUNDLE.variables["raw_schema"]["default"] == "ecom_raw"


# --- 8. Unity Catalog volumes ---------------------------------------------------------------------------------


def test_raw_volume_is_external_over_the_upload_prefix_or_managed() -> None:
    raw = BUNDLE.config["resources"]["volumes"]["raw_files"]
    assert (raw["catalog_name"], raw["schema_name"], raw["name"]) == (
        "${var.catalog}",
        "${resources.schemas.raw.name}",
        "raw",
    )
    # Two variables choose: EXTERNAL over the uploader's S3 prefix when given, MANAGED (the defaults) when not.
    assert raw["volume_type"] == "${var.raw_volume_type}"
    assert raw["storage_location"] == "${var.raw_storage_location}"
    assert BUNDLE.variables["raw_volume_type"]["default"] == "MANAGED"
    assert BUNDLE.variables["raw_storage_location"]["default"] == ""  # the CLI drops it: no location when MANAGED
    # Uploading through Unity Catalog takes READ VOLUME and WRITE VOLUME; the job's identity owns it in dev.
    assert raw["grants"] == [{"principal": "${var.uploader_principal}", "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}]
    # Optional: the deploying identity, the owner, unless someone else uploads.
    assert BUNDLE.variables["uploader_principal"]["default"] == "${workspace.current_user.userName}"


def test_checkpoint_volume_is_managed_in_bronze_without_grants() -> None:
    checkpoints = BUNDLE.config["resources"]["volumes"]["ingest_checkpoints"]
    assert checkpoints["schema_name"] == "${resources.schemas.bronze.name}"
    assert (checkpoints["volume_type"], checkpoints["name"]) == ("MANAGED", "ingest_checkpoints")
    assert "storage_location" not in checkpoints and "grants" not in checkpoints  # only the job's identity


@pytest.mark.parametrize("target", TARGETS)
def test_volumes_per_target(target: str) -> None:
    """prod grants the job's service principal what it needs and protects schemas and volumes from destroy."""
    resources = bu.resolve_target(BUNDLE, target)["resources"]
    volumes, schemas = resources["volumes"], resources["schemas"]
    base = BUNDLE.config["resources"]["volumes"]
    for key, volume in volumes.items():
        # A target's entry repeats the volume's identity; it may not move or rename it.
        for field in ("catalog_name", "schema_name", "name"):
            assert volume[field] == base[key][field], f"{target} changes {key}.{field}"
    if target.startswith("dev"):
        assert all("lifecycle" not in spec for spec in [*volumes.values(), *schemas.values()])
        assert "grants" not in volumes["ingest_checkpoints"]
        return
    service_principal = "${var.service_principal_id}"
    assert volumes["raw_files"]["grants"][-1] == {"principal": service_principal, "privileges": ["READ_VOLUME"]}
    assert volumes["ingest_checkpoints"]["grants"] == [
        {"principal": service_principal, "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}
    ]
    assert {"principal": service_principal, "privileges": ["USE_SCHEMA"]} in schemas["raw"]["grants"]
    for spec in [*volumes.values(), *schemas.values()]:
        assert spec["lifecycle"] == {"prevent_destroy": True}


def test_catalog_default_matches_the_package() -> None:
    """The notebooks' catalog widget default (ecom_lakehouse.run.lifecycle) is the bundle's catalog default."""
    constant = bu.module_constant(bu.RUN_TASK_MODULE, "DATABRICKS_DEFAULT_CATALOG")
    assert BUNDLE.variables["catalog"]["default"] == constant


def test_bundle_variables_default_to_pipeline_conf_schema_names() -> None:
    """The schema defaults match conf/pipeline.yml, the package's single source of truth for names."""
    conf = bu.load_yaml(ROOT / "conf" / "pipeline.yml")
    for layer, name in conf["schemas"].items():
        assert BUNDLE.variables[f"{layer}_schema"]["default"] == name
    assert conf["tables"]["gold"]["profit"] == "profit_aggregate"
