"""The bundle against the real Databricks CLI: validate and plan every target against a stand-in workspace.

No Spark and no real workspace. Every test copies the bundle into a temporary folder (the CLI writes .databricks/
into the bundle root, so the repository stays clean) and runs the pinned CLI there with a clean HOME, an empty
DATABRICKS_CONFIG_FILE and DATABRICKS_HOST pointing at tests/fake_workspace.py on 127.0.0.1, which answers what
`bundle validate` and `bundle plan` call. Checked for every target:

- `databricks bundle validate --strict` passes with no warning or recommendation (prod as the service principal
  that deploys it from CI; a human deploying prod gets exactly the diagnostics databricks.yml answers);
- `databricks bundle plan` creates the job, the four schemas and the two volumes (with their grants) and the
  dashboard, and resolves the job parameters to the dev-prefixed schemas and the volumes' /Volumes/... paths;
- `databricks bundle validate -o json`, the configuration the CLI would deploy: task order, no libraries,
  compute (none on the serverless targets, the AWS job cluster on Databricks Runtime 18 LTS on the classic ones),
  job parameters, the file-arrival trigger (paused in dev), the raw volume (MANAGED, or EXTERNAL over the
  uploader's S3 prefix) and the checkpoint volume, dev-mode names, prod's run_as, permissions, grants and
  prevent_destroy; and the daily fallback trigger selected through variable-overrides.json.

The CLI binary: $ECOM_DATABRICKS_CLI, else the one `make databricks-cli` / .ci/databricks-cli.sh builds into
${XDG_CACHE_HOME:-~/.cache}/ecom-lakehouse/databricks-cli/<version>/databricks. Without it the tests skip, unless
ECOM_REQUIRE_DATABRICKS_CLI=1 (CI sets it), which makes them fail.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

try:
    import bundle_utils as bu
    from fake_workspace import TOKEN, FakeWorkspace, serve
except ModuleNotFoundError:  # tests/ imported as a package
    from tests import bundle_utils as bu
    from tests.fake_workspace import TOKEN, FakeWorkspace, serve

ROOT = bu.REPO_ROOT
CLI_VERSION = "1.10.0"
# What the bundle needs to validate (configuration, notebooks, dashboard) and what `%pip install ..` installs from.
BUNDLE_PATHS = ("databricks.yml", ".gitignore", "pyproject.toml", "README.md", "resources", "notebooks", "src", "conf")

DEVELOPER = "jane.doe@example.com"
SHORT_NAME = "jane_doe"
SERVICE_PRINCIPAL = "6f1c2e0a-5b7d-4c8e-9a1f-0e2d3c4b5a69"  # its application ID, which is its user name
SERVICE_PRINCIPAL_NAME = "ecom-lakehouse-ci"
INSTANCE_PROFILE = "arn:aws:iam::123456789012:instance-profile/ecom-raw-reader"
RAW_STORAGE_LOCATION = "s3://ecom-raw/raw/"  # where `ecom upload --bucket ecom-raw --prefix raw/` writes
UPLOADER = "7a2d3f1b-6c8e-4d9f-8b2a-1f3e4d5c6b7a"  # the uploading process's service principal
CLASSIC_SPARK_VERSION = "18.x-scala2.13"  # Databricks Runtime 18 LTS
# job_trigger's documented fallback: once a day, paused like the default trigger outside prod.
FALLBACK_TRIGGER = {"periodic": {"interval": 1, "unit": "DAYS"}, "pause_status": "${var.schedule_pause_status}"}

SERVERLESS_TARGETS = ("dev", "prod")
CLASSIC_TARGETS = ("dev_classic", "prod_classic")
TARGETS = (*SERVERLESS_TARGETS, *CLASSIC_TARGETS)
TWIN = {"dev_classic": "dev", "prod_classic": "prod"}
EXPECTED_TASK_ORDER = ["bronze_ingest", "silver_dimensions", "silver_orders", "gold_aggregates", "profit_report"]
COMPUTE_KEYS = ("job_cluster_key", "new_cluster", "existing_cluster_id", "environment_key")

PLAN = {
    # The uploader's grants on the raw schema and volume exist in every target (dev: the developer, who owns them).
    "dev": [
        "create dashboards.ecom_profit",
        "create jobs.ecom_pipeline",
        "create schemas.bronze",
        "create schemas.gold",
        "create schemas.gold.grants",
        "create schemas.raw",
        "create schemas.raw.grants",
        "create schemas.silver",
        "create volumes.ingest_checkpoints",
        "create volumes.raw_files",
        "create volumes.raw_files.grants",
        "",
        "Plan: 11 to add, 0 to change, 0 to delete, 0 unchanged",
    ],
    # prod adds the job and dashboard ACLs and the service principal's grants on every schema and volume.
    "prod": [
        "create dashboards.ecom_profit",
        "create dashboards.ecom_profit.permissions",
        "create jobs.ecom_pipeline",
        "create jobs.ecom_pipeline.permissions",
        "create schemas.bronze",
        "create schemas.bronze.grants",
        "create schemas.gold",
        "create schemas.gold.grants",
        "create schemas.raw",
        "create schemas.raw.grants",
        "create schemas.silver",
        "create schemas.silver.grants",
        "create volumes.ingest_checkpoints",
        "create volumes.ingest_checkpoints.grants",
        "create volumes.raw_files",
        "create volumes.raw_files.grants",
        "",
        "Plan: 16 to add, 0 to change, 0 to delete, 0 unchanged",
    ],
}

# The endpoints each command calls (numeric IDs shown as <id>); the stand-in implements exactly these.
ENDPOINTS_VALIDATE = {
    ("GET", "/.well-known/databricks-config"),
    ("GET", "/api/2.0/preview/scim/v2/Me"),
    ("GET", "/api/2.0/workspace/get-status"),
    ("POST", "/api/2.0/workspace/mkdirs"),
}
ENDPOINTS_VALIDATE_PROD = {*ENDPOINTS_VALIDATE, ("GET", "/api/2.0/permissions/directories/<id>")}
ENDPOINTS_PLAN = {
    ("GET", "/.well-known/databricks-config"),
    ("GET", "/api/2.0/preview/scim/v2/Me"),
    ("GET", "/api/2.0/workspace/get-status"),
}


# ----------------------------------------------------------------------------------------------------------------
# Running the CLI.
# ----------------------------------------------------------------------------------------------------------------


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def find_cli() -> tuple[Path | None, str]:
    """The pinned CLI binary, or None and why it is missing."""
    configured = os.environ.get("ECOM_DATABRICKS_CLI")
    if configured:
        path = Path(configured)
        return (path, "") if path.is_file() else (None, f"ECOM_DATABRICKS_CLI={configured} does not exist")
    path = _cache_home() / "ecom-lakehouse" / "databricks-cli" / CLI_VERSION / "databricks"
    if path.is_file():
        return path, ""
    return None, (
        f"Databricks CLI v{CLI_VERSION} not found (set ECOM_DATABRICKS_CLI, or build it into {path} with "
        "`make databricks-cli`, which needs Go)"
    )


@pytest.fixture(scope="module")
def cli() -> Path:
    path, reason = find_cli()
    if path is None:
        if os.environ.get("ECOM_REQUIRE_DATABRICKS_CLI") == "1":
            pytest.fail(f"ECOM_REQUIRE_DATABRICKS_CLI=1 but {reason}")
        pytest.skip(reason)
    return path


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    workspace: FakeWorkspace

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def default_user(target: str) -> str:
    """prod is deployed from CI as the service principal; dev by a developer."""
    return SERVICE_PRINCIPAL if target.startswith("prod") else DEVELOPER


def target_variables(target: str) -> dict[str, str]:
    """What a deployer passes with --var: the user-supplied values this target leaves without one."""
    values = {"warehouse_id": "0123456789abcdef"}
    if target.startswith("prod"):
        values |= {"service_principal_id": SERVICE_PRINCIPAL, "notification_email": "data-team@example.com"}
    if target in CLASSIC_TARGETS:
        values["instance_profile_arn"] = INSTANCE_PROFILE
    return values


class BundleCli:
    """Runs ``databricks bundle <args> -t <target>`` on a fresh copy of the bundle against a fresh stand-in."""

    def __init__(self, binary: Path, tmp: pytest.TempPathFactory) -> None:
        self.binary, self.tmp = binary, tmp

    def copy_bundle(self) -> Path:
        root = self.tmp.mktemp("bundle")
        for name in BUNDLE_PATHS:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, root / name)
        return root

    def run(
        self,
        target: str,
        *args: str,
        user: str | None = None,
        variables: dict[str, str] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Result:
        """``variables`` go on the command line (--var); ``overrides`` into the target's variable-overrides.json,
        the only place besides databricks.yml that can set a complex variable."""
        root = self.copy_bundle()
        if overrides is not None:
            overrides_file = root / ".databricks" / "bundle" / target / "variable-overrides.json"
            overrides_file.parent.mkdir(parents=True)
            overrides_file.write_text(json.dumps(overrides), encoding="utf-8")
        home = self.tmp.mktemp("home")
        (home / "databrickscfg").write_text("")
        fake = FakeWorkspace()
        user = user or default_user(target)
        fake.sign_in(user, SERVICE_PRINCIPAL_NAME if user == SERVICE_PRINCIPAL else None)
        values = target_variables(target) if variables is None else variables
        argv = [str(self.binary), "bundle", *args, "--target", target]
        for name, value in values.items():
            argv += ["--var", f"{name}={value}"]
        with serve(fake):
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(home),
                "DATABRICKS_HOST": fake.host,
                "DATABRICKS_TOKEN": TOKEN,
                "DATABRICKS_CONFIG_FILE": str(home / "databrickscfg"),
                "DATABRICKS_CLI_DISABLE_TELEMETRY": "1",
                "DATABRICKS_CLI_DISABLE_UPDATE_CHECK": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
            if "TMPDIR" in os.environ:
                env["TMPDIR"] = os.environ["TMPDIR"]
            proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert fake.unknown_endpoints == [], f"the CLI called endpoints the stand-in lacks: {fake.unknown_endpoints}"
        return Result(proc.returncode, proc.stdout, proc.stderr, fake)


@pytest.fixture(scope="module")
def bundle_cli(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundleCli]:
    yield BundleCli(cli, tmp_path_factory)


@pytest.fixture(scope="module")
def resolved(bundle_cli: BundleCli) -> Any:
    """``resolved(target)``: the output of ``bundle validate -o json`` for the target, computed once (do not modify)."""

    @cache
    def get(target: str) -> dict[str, Any]:
        result = bundle_cli.run(target, "validate", "--output", "json")
        assert result.returncode == 0, result.stderr
        return result.json

    return get


def _job(config: dict[str, Any]) -> dict[str, Any]:
    return config["resources"]["jobs"]["ecom_pipeline"]


def _root_path(target: str, user: str) -> str:
    flavour = "prod" if target.startswith("prod") else "dev"
    return f"/Workspace/Users/{user}/.bundle/ecom_lakehouse/{flavour}"


# ----------------------------------------------------------------------------------------------------------------
# The CLI and the targets.
# ----------------------------------------------------------------------------------------------------------------


def test_cli_is_the_pinned_version(cli: Path) -> None:
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert version == f"Databricks CLI v{CLI_VERSION}"
    constraint = bu.load_bundle(ROOT).config["bundle"]["databricks_cli_version"]
    assert constraint.startswith(f">= {CLI_VERSION},"), f"the bundle should require the tested CLI: {constraint}"


def test_every_target_is_covered() -> None:
    assert set(bu.load_bundle(ROOT).targets) == set(TARGETS)


# ----------------------------------------------------------------------------------------------------------------
# validate --strict and plan.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_validate_strict_is_clean(bundle_cli: BundleCli, target: str) -> None:
    result = bundle_cli.run(target, "validate", "--strict")
    user = default_user(target)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "Name: ecom_lakehouse",
        f"Target: {target}",
        "Workspace:",
        f"  User: {user}",
        f"  Path: {_root_path(target, user)}",
        "",
        "Validation OK!",
    ]
    expected = ENDPOINTS_VALIDATE_PROD if target.startswith("prod") else ENDPOINTS_VALIDATE
    assert result.workspace.endpoints() == expected


@pytest.mark.parametrize("target", ["prod", "prod_classic"])
def test_prod_deployed_by_a_human_gets_the_answered_diagnostics(bundle_cli: BundleCli, target: str) -> None:
    """databricks.yml answers these two in a comment: deploy prod from CI as the service principal."""
    result = bundle_cli.run(target, "validate", user=DEVELOPER)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "Found 1 warning and 1 recommendation"
    assert (
        "Recommendation: permissions section should explicitly include the current deployment identity "
        f"'{DEVELOPER}' or one of its groups"
    ) in result.stderr
    assert "Warning: workspace folder has permissions not configured in bundle" in result.stderr
    assert f"- level: CAN_MANAGE, user_name: {DEVELOPER}" in result.stderr
    assert result.stderr.count("Warning:") == 1 and result.stderr.count("Recommendation:") == 1

    strict = bundle_cli.run(target, "validate", "--strict", user=DEVELOPER)
    assert strict.returncode == 1
    assert "Error: 1 warning was found. Warnings are not allowed in strict mode" in strict.stderr

    lines = (ROOT / "databricks.yml").read_text(encoding="utf-8").splitlines()
    comments = " ".join(line.split("#", 1)[1].strip() for line in lines if "#" in line)
    assert "permissions section should explicitly include the current deployment identity" in comments, (
        "databricks.yml should answer the CLI's recommendation in a comment"
    )


@pytest.mark.parametrize("target", TARGETS)
def test_plan_creates_every_resource(bundle_cli: BundleCli, target: str) -> None:
    result = bundle_cli.run(target, "plan")

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == PLAN["prod" if target.startswith("prod") else "dev"]
    assert result.workspace.endpoints() == ENDPOINTS_PLAN


@pytest.mark.parametrize("target", TARGETS)
def test_plan_resolves_names_and_job_parameters(bundle_cli: BundleCli, target: str) -> None:
    result = bundle_cli.run(target, "plan", "--output", "json")
    assert result.returncode == 0, result.stderr
    plan = result.json["plan"]
    assert {entry["action"] for entry in plan.values()} == {"create"}

    prefix = "" if target.startswith("prod") else f"dev_{SHORT_NAME}_"
    job = plan["resources.jobs.ecom_pipeline"]["new_state"]["value"]
    # The CLI resolves the ${resources.*} references at plan time: the dev-prefixed schemas, the volumes' names.
    assert {p["name"]: p["default"] for p in job["parameters"]} == {
        "catalog": "main",
        "bronze_schema": f"{prefix}ecom_bronze",
        "silver_schema": f"{prefix}ecom_silver",
        "gold_schema": f"{prefix}ecom_gold",
        "input_path": f"/Volumes/main/{prefix}ecom_raw/raw/",
        "checkpoint_location": f"/Volumes/main/{prefix}ecom_bronze/ingest_checkpoints/",
        "full_refresh": "false",
    }
    assert job["trigger"]["file_arrival"]["url"] == f"/Volumes/main/{prefix}ecom_raw/raw/_manifests/"
    assert "schedule" not in job
    # The job deploys after the schemas and volumes it names; each volume after its schema.
    assert {d["node"] for d in plan["resources.jobs.ecom_pipeline"]["depends_on"]} == {
        "resources.schemas.raw",
        "resources.schemas.bronze",
        "resources.schemas.silver",
        "resources.schemas.gold",
        "resources.volumes.raw_files",
        "resources.volumes.ingest_checkpoints",
    }
    for volume, schema in (("raw_files", "raw"), ("ingest_checkpoints", "bronze")):
        entry = plan[f"resources.volumes.{volume}"]
        assert [d["node"] for d in entry["depends_on"]] == [f"resources.schemas.{schema}"]
        # MANAGED by default: no storage location reaches the API (the CLI drops the empty variable).
        assert entry["new_state"]["value"]["volume_type"] == "MANAGED"
        assert "storage_location" not in entry["new_state"]["value"]
    dashboard = plan["resources.dashboards.ecom_profit"]["new_state"]["value"]
    assert (dashboard["dataset_catalog"], dashboard["dataset_schema"]) == ("main", f"{prefix}ecom_gold")


# ----------------------------------------------------------------------------------------------------------------
# The configuration the CLI deploys (validate -o json).
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_tasks_run_in_order_with_the_job_run_id_and_no_libraries(resolved: Any, target: str) -> None:
    config = resolved(target)
    job = _job(config)
    tasks = {task["task_key"]: task for task in job["tasks"]}
    graph = {key: [d["task_key"] for d in task.get("depends_on", [])] for key, task in tasks.items()}

    assert bu.topological_order(graph) == EXPECTED_TASK_ORDER
    assert graph == {task: EXPECTED_TASK_ORDER[i - 1 : i] for i, task in enumerate(EXPECTED_TASK_ORDER)}
    files = f"{config['workspace']['root_path']}/files/notebooks"
    notebooks = ["01_bronze_ingest", "02_silver_dimensions", "03_silver_orders", "04_gold_aggregates"]
    for key, notebook in zip(EXPECTED_TASK_ORDER, [*notebooks, "05_profit_report"], strict=True):
        assert tasks[key]["notebook_task"] == {
            "notebook_path": f"{files}/{notebook}",
            "base_parameters": {"run_id": "{{job.run_id}}"},
        }
        assert "libraries" not in tasks[key], f"{key}: the notebooks install the project with %pip"
    assert "artifacts" not in config
    assert tasks["bronze_ingest"]["max_retries"] == 2


@pytest.mark.parametrize("target", TARGETS)
def test_job_parameters(resolved: Any, target: str) -> None:
    job = _job(resolved(target))
    assert job["parameters"] == [
        {"name": "catalog", "default": "main"},
        {"name": "bronze_schema", "default": "${resources.schemas.bronze.name}"},
        {"name": "silver_schema", "default": "${resources.schemas.silver.name}"},
        {"name": "gold_schema", "default": "${resources.schemas.gold.name}"},
        {
            "name": "input_path",
            "default": "/Volumes/main/${resources.schemas.raw.name}/${resources.volumes.raw_files.name}/",
        },
        {
            "name": "checkpoint_location",
            "default": "/Volumes/main/${resources.schemas.bronze.name}/${resources.volumes.ingest_checkpoints.name}/",
        },
        {"name": "full_refresh", "default": "false"},
    ]


def _resolve(config: dict[str, Any], text: str) -> str:
    """``text`` with each ${resources.<type>.<key>.<field>} replaced by that field of the validated configuration."""

    def field(match: re.Match[str]) -> str:
        node: Any = config["resources"]
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{resources\.([\w.]+)\}", field, text)


@pytest.mark.parametrize("target", TARGETS)
def test_job_parameters_name_the_volumes(resolved: Any, target: str) -> None:
    """`validate` leaves ${resources.*} for deploy time; put in the validated names, the paths are exactly the
    volume_path the CLI computes for each volume, with the dev prefix in dev."""
    config = resolved(target)
    defaults = {p["name"]: p["default"] for p in _job(config)["parameters"]}
    volumes = config["resources"]["volumes"]
    prefix = "" if target.startswith("prod") else f"dev_{SHORT_NAME}_"
    assert volumes["raw_files"]["volume_path"] == f"/Volumes/main/{prefix}ecom_raw/raw"
    assert volumes["ingest_checkpoints"]["volume_path"] == f"/Volumes/main/{prefix}ecom_bronze/ingest_checkpoints"
    assert _resolve(config, defaults["input_path"]) == volumes["raw_files"]["volume_path"] + "/"
    assert _resolve(config, defaults["checkpoint_location"]) == volumes["ingest_checkpoints"]["volume_path"] + "/"


@pytest.mark.parametrize("target", SERVERLESS_TARGETS)
def test_serverless_targets_name_no_compute(resolved: Any, target: str) -> None:
    job = _job(resolved(target))
    assert "job_clusters" not in job and "environments" not in job
    for task in job["tasks"]:
        assert not set(COMPUTE_KEYS) & set(task), f"{task['task_key']} names compute: serverless uses none"
    # dev: fast feedback for a developer who waits; prod: the cheaper mode for the nightly schedule.
    assert job["performance_target"] == {"dev": "PERFORMANCE_OPTIMIZED", "prod": "STANDARD"}[target]
    assert resolved(target)["variables"]["instance_profile_arn"]["value"] == ""


@pytest.mark.parametrize("target", CLASSIC_TARGETS)
def test_classic_targets_run_every_task_on_the_aws_job_cluster(resolved: Any, target: str) -> None:
    job = _job(resolved(target))
    assert job["job_clusters"] == [
        {
            "job_cluster_key": "ecom_cluster",
            "new_cluster": {
                "spark_version": CLASSIC_SPARK_VERSION,
                "node_type_id": "m5d.xlarge",
                "data_security_mode": "SINGLE_USER",
                "autoscale": {"min_workers": 1, "max_workers": 2},
                "aws_attributes": {
                    "availability": "SPOT_WITH_FALLBACK",
                    "first_on_demand": 1,
                    "zone_id": "auto",
                    "instance_profile_arn": INSTANCE_PROFILE,
                },
            },
        }
    ]
    for task in job["tasks"]:
        assert task["job_cluster_key"] == "ecom_cluster"
        assert not {"new_cluster", "existing_cluster_id", "environment_key"} & set(task)


@pytest.mark.parametrize("target", CLASSIC_TARGETS)
def test_classic_target_differs_from_its_twin_only_in_compute(resolved: Any, target: str) -> None:
    classic, serverless = copy.deepcopy(resolved(target)), resolved(TWIN[target])
    job = _job(classic)
    job.pop("job_clusters")
    for task in job["tasks"]:
        task.pop("job_cluster_key")
    assert job == _job(serverless)
    for key in ("dashboards", "schemas", "volumes"):
        assert classic["resources"][key] == serverless["resources"][key]
    # The same deployment: same folder and state, so switching flavour updates the one job in place.
    assert classic["workspace"] == serverless["workspace"]
    for key in ("permissions", "run_as"):
        assert classic.get(key) == serverless.get(key)


@pytest.mark.parametrize("target", ["dev", "dev_classic"])
def test_dev_mode_prefixes_names_and_runs_as_the_developer(resolved: Any, target: str) -> None:
    config = resolved(target)
    resources = config["resources"]
    job = _job(config)

    assert config["bundle"]["mode"] == "development"
    assert job["name"] == f"[dev {SHORT_NAME}] ecom_pipeline"
    assert resources["dashboards"]["ecom_profit"]["display_name"] == f"[dev {SHORT_NAME}] E-commerce profit"
    assert {key: schema["name"] for key, schema in resources["schemas"].items()} == {
        "raw": f"dev_{SHORT_NAME}_ecom_raw",
        "bronze": f"dev_{SHORT_NAME}_ecom_bronze",
        "silver": f"dev_{SHORT_NAME}_ecom_silver",
        "gold": f"dev_{SHORT_NAME}_ecom_gold",
    }
    # Volumes keep their names (development mode prefixes none); they sit in the developer's prefixed schemas.
    assert {key: volume["name"] for key, volume in resources["volumes"].items()} == {
        "raw_files": "raw",
        "ingest_checkpoints": "ingest_checkpoints",
    }
    # The file-arrival trigger is there, paused: a dev deploy never starts on its own.
    assert job["trigger"] == {
        "pause_status": "PAUSED",
        "file_arrival": {
            "url": "/Volumes/main/${resources.schemas.raw.name}/${resources.volumes.raw_files.name}/_manifests/",
            "wait_after_last_change_seconds": 300,
            "min_time_between_triggers_seconds": 900,
        },
    }
    assert job.get("schedule") is None
    assert config["presets"]["trigger_pause_status"] == "PAUSED"
    assert job["email_notifications"] == {"on_failure": [DEVELOPER]}
    assert "run_as" not in config and "permissions" not in config
    assert all("lifecycle" not in spec for spec in [*resources["schemas"].values(), *resources["volumes"].values()])
    assert resources["schemas"]["gold"]["grants"] == [{"principal": DEVELOPER, "privileges": ["USE_SCHEMA", "SELECT"]}]
    # The developer is the uploader (and the owner): nothing is granted to anyone else.
    assert resources["schemas"]["raw"]["grants"] == [{"principal": DEVELOPER, "privileges": ["USE_SCHEMA"]}]
    assert resources["volumes"]["raw_files"]["grants"] == [
        {"principal": DEVELOPER, "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}
    ]
    assert "grants" not in resources["volumes"]["ingest_checkpoints"]
    assert config["workspace"]["root_path"] == _root_path(target, DEVELOPER)


@pytest.mark.parametrize("target", ["prod", "prod_classic"])
def test_prod_names_unprefixed_runs_as_the_service_principal(resolved: Any, target: str) -> None:
    config = resolved(target)
    resources = config["resources"]
    job = _job(config)

    assert config["bundle"]["mode"] == "production"
    assert job["name"] == "ecom_pipeline"
    assert resources["dashboards"]["ecom_profit"]["display_name"] == "E-commerce profit"
    assert {key: schema["name"] for key, schema in resources["schemas"].items()} == {
        "raw": "ecom_raw",
        "bronze": "ecom_bronze",
        "silver": "ecom_silver",
        "gold": "ecom_gold",
    }
    assert config["run_as"] == job["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}
    assert config["permissions"] == [
        {"service_principal_name": SERVICE_PRINCIPAL, "level": "CAN_MANAGE"},
        {"group_name": "analysts", "level": "CAN_VIEW"},
    ]
    # Started by each completed upload: the manifest folder of the raw volume, unpaused.
    assert job["trigger"] == {
        "pause_status": "UNPAUSED",
        "file_arrival": {
            "url": "/Volumes/main/${resources.schemas.raw.name}/${resources.volumes.raw_files.name}/_manifests/",
            "wait_after_last_change_seconds": 300,
            "min_time_between_triggers_seconds": 900,
        },
    }
    assert job.get("schedule") is None
    assert job["email_notifications"] == {"on_failure": ["data-team@example.com"]}
    writer = {"principal": SERVICE_PRINCIPAL, "privileges": ["USE_SCHEMA", "CREATE_TABLE", "MODIFY", "SELECT"]}
    for key in ("bronze", "silver", "gold"):
        assert writer in resources["schemas"][key]["grants"], key
    assert {"principal": "analysts", "privileges": ["USE_SCHEMA", "SELECT"]} in resources["schemas"]["gold"]["grants"]
    # The landing zone holds no tables: the service principal only reaches the volume in it. It reads the files as
    # the job's identity and, deploying from CI, is also the default uploader: the CLI merges the two grant entries.
    assert resources["schemas"]["raw"]["grants"] == [{"principal": SERVICE_PRINCIPAL, "privileges": ["USE_SCHEMA"]}]
    assert resources["volumes"]["raw_files"]["grants"] == [
        {"principal": SERVICE_PRINCIPAL, "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}
    ]
    assert resources["volumes"]["ingest_checkpoints"]["grants"] == [
        {"principal": SERVICE_PRINCIPAL, "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}
    ]
    for kind in ("schemas", "volumes"):
        for key, spec in resources[kind].items():
            assert spec["lifecycle"] == {"prevent_destroy": True}, f"{kind}.{key}"
    assert config["workspace"]["root_path"] == _root_path(target, SERVICE_PRINCIPAL)


# ----------------------------------------------------------------------------------------------------------------
# Variables.
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", CLASSIC_TARGETS)
def test_classic_targets_require_the_instance_profile(bundle_cli: BundleCli, target: str) -> None:
    variables = {k: v for k, v in target_variables(target).items() if k != "instance_profile_arn"}
    result = bundle_cli.run(target, "validate", variables=variables)

    assert result.returncode == 1
    assert "Error: no value assigned to required variable instance_profile_arn." in result.stderr


def test_access_mode_is_a_variable(bundle_cli: BundleCli) -> None:
    variables = target_variables("dev_classic") | {"classic_access_mode": "USER_ISOLATION", "instance_profile_arn": ""}
    result = bundle_cli.run("dev_classic", "validate", "--output", "json", variables=variables)

    assert result.returncode == 0, result.stderr
    cluster = _job(result.json)["job_clusters"][0]["new_cluster"]
    assert cluster["data_security_mode"] == "USER_ISOLATION"
    assert "instance_profile_arn" not in cluster["aws_attributes"]  # an empty value is dropped


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_raw_volume_external_over_the_upload_prefix(bundle_cli: BundleCli, target: str) -> None:
    """raw_volume_type=EXTERNAL with raw_storage_location: the volume is the uploader's S3 prefix."""
    variables = target_variables(target) | {
        "raw_volume_type": "EXTERNAL",
        "raw_storage_location": RAW_STORAGE_LOCATION,
    }
    strict = bundle_cli.run(target, "validate", "--strict", variables=variables)
    assert (strict.returncode, strict.stderr) == (0, "")

    volume = bundle_cli.run(target, "validate", "--output", "json", variables=variables).json["resources"]["volumes"]
    assert (volume["raw_files"]["volume_type"], volume["raw_files"]["storage_location"]) == (
        "EXTERNAL",
        RAW_STORAGE_LOCATION,
    )
    # Only the raw volume moves: the checkpoints stay in bronze's managed storage.
    assert volume["ingest_checkpoints"]["volume_type"] == "MANAGED"
    assert "storage_location" not in volume["ingest_checkpoints"]

    plan = bundle_cli.run(target, "plan", "--output", "json", variables=variables).json["plan"]
    sent = plan["resources.volumes.raw_files"]["new_state"]["value"]
    assert (sent["volume_type"], sent["storage_location"]) == ("EXTERNAL", RAW_STORAGE_LOCATION)


@pytest.mark.parametrize("target", TARGETS)
def test_raw_volume_managed_by_default(resolved: Any, target: str) -> None:
    raw = resolved(target)["resources"]["volumes"]["raw_files"]
    assert raw["volume_type"] == "MANAGED"
    assert "storage_location" not in raw  # the empty default is dropped, so the API gets no location
    assert resolved(target)["variables"]["raw_storage_location"]["value"] == ""


@pytest.mark.parametrize("target", ["dev", "prod", "prod_classic"])
def test_fallback_trigger_selected_by_the_job_trigger_variable(bundle_cli: BundleCli, target: str) -> None:
    """job_trigger set in variable-overrides.json: a daily trigger instead of file arrival, paused outside prod,
    still no schedule beside it, and validate --strict stays clean."""
    overrides = {"job_trigger": FALLBACK_TRIGGER}
    strict = bundle_cli.run(target, "validate", "--strict", overrides=overrides)
    assert (strict.returncode, strict.stderr) == (0, "")

    job = _job(bundle_cli.run(target, "validate", "--output", "json", overrides=overrides).json)
    paused = "UNPAUSED" if target.startswith("prod") else "PAUSED"
    assert job["trigger"] == {"periodic": {"interval": 1, "unit": "DAYS"}, "pause_status": paused}
    assert job.get("schedule") is None

    plan = bundle_cli.run(target, "plan", "--output", "json", overrides=overrides).json["plan"]
    sent = plan["resources.jobs.ecom_pipeline"]["new_state"]["value"]
    assert sent["trigger"] == {"periodic": {"interval": 1, "unit": "DAYS"}, "pause_status": paused}
    assert "schedule" not in sent


def test_job_trigger_cannot_be_set_with_var(bundle_cli: BundleCli) -> None:
    """Complex variables take no --var: the fallback goes into variable-overrides.json (or a target)."""
    variables = target_variables("prod") | {"job_trigger": "x"}
    result = bundle_cli.run("prod", "validate", variables=variables)

    assert result.returncode == 1
    assert "setting variables of complex type via --var flag is not supported: job_trigger" in result.stderr


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_uploader_principal_gets_write_on_the_raw_volume(bundle_cli: BundleCli, target: str) -> None:
    variables = target_variables(target) | {"uploader_principal": UPLOADER}
    resources = bundle_cli.run(target, "validate", "--output", "json", variables=variables).json["resources"]

    uploader_volume = {"principal": UPLOADER, "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}
    uploader_schema = {"principal": UPLOADER, "privileges": ["USE_SCHEMA"]}
    if target == "prod":
        # Besides the job's service principal, which reads.
        assert resources["volumes"]["raw_files"]["grants"] == [
            uploader_volume,
            {"principal": SERVICE_PRINCIPAL, "privileges": ["READ_VOLUME"]},
        ]
        assert resources["schemas"]["raw"]["grants"] == [
            uploader_schema,
            {"principal": SERVICE_PRINCIPAL, "privileges": ["USE_SCHEMA"]},
        ]
    else:
        assert resources["volumes"]["raw_files"]["grants"] == [uploader_volume]
        assert resources["schemas"]["raw"]["grants"] == [uploader_schema]
    # The uploader gets nothing on the checkpoints or on the tables.
    assert "grants" not in resources["volumes"]["ingest_checkpoints"] or all(
        grant["principal"] != UPLOADER for grant in resources["volumes"]["ingest_checkpoints"]["grants"]
    )
    for key in ("bronze", "silver", "gold"):
        assert all(grant["principal"] != UPLOADER for grant in resources["schemas"][key].get("grants", []))


def test_prod_uploader_defaults_to_the_deploying_service_principal(bundle_cli: BundleCli) -> None:
    """Deployed from CI, the uploader is the service principal itself: the CLI merges its two grant entries into
    one per principal, so the API gets read and write for it and no duplicate."""
    plan = bundle_cli.run("prod", "plan", "--output", "json").json["plan"]

    volume = plan["resources.volumes.raw_files.grants"]["new_state"]["value"]["__embed__"]
    assert volume == [{"principal": SERVICE_PRINCIPAL, "privileges": ["READ_VOLUME", "WRITE_VOLUME"]}]
    schema = plan["resources.schemas.raw.grants"]["new_state"]["value"]["__embed__"]
    assert schema == [{"principal": SERVICE_PRINCIPAL, "privileges": ["USE_SCHEMA"]}]
