"""What the cluster installs is what the cluster needs: the job's modules import no tooling, and the wheel pip builds
from this project requires only what the job imports (tooling dependencies are extras)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser

import pytest

from tests.conftest import REPO_ROOT

JOB_MODULES = ("ecom_lakehouse.run.tasks", "ecom_lakehouse.run.lifecycle", "ecom_lakehouse.run.steps")
TOOLING = ("ecom_lakehouse.tools", "boto3", "botocore", "altair", "vl_convert", "databricks.sdk", "rich", "duckdb")
RUNTIME_REQUIREMENTS = {"fastexcel", "openpyxl", "pyarrow", "pyyaml"}


def test_the_jobs_modules_import_no_tooling():
    probe = (
        "import sys\n"
        f"for name in {JOB_MODULES!r}: __import__(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({TOOLING!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_the_cli_parser_needs_no_tooling_extra():
    probe = (
        "import sys\nfrom ecom_lakehouse.tools.cli import build_parser\nbuild_parser()\n"
        f"print(sorted(m for m in sys.modules if m.startswith({TOOLING[1:]!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("ecom_lakehouse-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_requires_only_what_the_job_imports(wheel):
    metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = Parser().parsestr(wheel.read(metadata_name).decode("utf-8"))
    requires = metadata.get_all("Requires-Dist") or []
    unconditional = {r.split(";")[0].split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
                     for r in requires if "extra ==" not in r}  # fmt: skip
    assert unconditional == RUNTIME_REQUIREMENTS
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"local", "upload", "charts", "remote"} <= extras
    for tool in ("boto3", "altair", "vl-convert-python", "databricks-sdk", "pyspark"):
        assert any(r.startswith(tool) and "extra ==" in r for r in requires), f"{tool} should be an extra"


def test_the_wheel_carries_the_one_copy_of_conf_and_the_report_notebook(wheel):
    names = set(wheel.namelist())
    assert {"ecom_lakehouse/conf/pipeline.yml", "ecom_lakehouse/notebooks/05_profit_report.sql"} <= names
    assert wheel.read("ecom_lakehouse/conf/pipeline.yml") == (REPO_ROOT / "conf" / "pipeline.yml").read_bytes()
