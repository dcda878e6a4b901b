"""Offline helpers for the Databricks Asset Bundle: load, merge and inspect it the way the CLI does, without the CLI.

Used by tests/unit/test_bundle.py and reusable elsewhere (e.g. to run the dashboard's SQL against a local gold layer):

    from bundle_utils import dashboard_queries
    for name, sql in dashboard_queries(REPO / "src/dashboards/ecom_profit.lvdash.json").items():
        spark.sql("USE spark_catalog.ecom_gold")   # the queries name the views unqualified
        spark.sql(sql).show()

Merge semantics follow the CLI (libs/dyn/merge): maps merge key by key with the later value winning, sequences
concatenate, scalars are replaced. Included files are merged into databricks.yml in glob order; a target's
overrides are then merged on top, and a job's tasks / job clusters / parameters that end up with the same key
are merged into one entry, as the CLI's MergeJobTasks / MergeJobClusters / MergeJobParameters mutators do.
YAML anchors, aliases and ``<<`` merge keys (databricks.yml shares the classic job cluster and prod's settings
between targets with them) are resolved by the YAML loader, in PyYAML as in the CLI's libs/dyn/yamlloader.

tests/integration/test_bundle_cli.py checks the same configuration with the real CLI; these helpers keep the offline
checks fast and free of any binary.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_FILE = "databricks.yml"

# ${var.name} / ${var.name.field} references, as the CLI's variable syntax allows.
VAR_REF = re.compile(r"\$\{var\.([A-Za-z][\w-]*)")
# ${resources.<type>.<key>.<field>} references.
RESOURCE_REF = re.compile(r"\$\{resources\.([A-Za-z_]+)\.([A-Za-z][\w-]*)\.([\w.\[\]]+)\}")
ANY_REF = re.compile(r"\$\{[^}]*\}")

# Widgets a notebook reads: Python dbutils calls (also inside "# MAGIC" cells) and SQL CREATE WIDGET / getArgument.
_PY_WIDGET = re.compile(
    r"dbutils\.widgets\.(?:text|dropdown|combobox|multiselect|get|getArgument)\(\s*(?:name\s*=\s*)?[\"']([^\"']+)[\"']"
)
_SQL_WIDGET = re.compile(r"\bCREATE\s+WIDGET\s+(?:TEXT|DROPDOWN|COMBOBOX|MULTISELECT)\s+`?([A-Za-z_]\w*)`?", re.I)
_SQL_GET_ARGUMENT = re.compile(r"\bgetArgument\(\s*[\"']([^\"']+)[\"']", re.I)

NOTEBOOK_HEADERS = {".py": "# Databricks notebook source", ".sql": "-- Databricks notebook source"}
CELL_SEPARATORS = {".py": "# COMMAND ----------", ".sql": "-- COMMAND ----------"}

# The package's notebook entry point, which declares and reads the job's widgets itself (ecom_lakehouse.run.tasks).
PACKAGE_DIR = REPO_ROOT / "src" / "ecom_lakehouse"
RUN_TASK_MODULE = PACKAGE_DIR / "run" / "tasks.py"
_RUN_TASK_CALL = re.compile(r"^\s*(?:display\()?\s*run_task\(", re.M)

# Keys the CLI uses to merge duplicate entries of a job's lists after target overrides.
_JOB_KEYED_LISTS = {"tasks": "task_key", "job_clusters": "job_cluster_key", "parameters": "name"}


class BundleError(ValueError):
    """The bundle configuration is inconsistent in a way the CLI would reject."""


@dataclass
class Bundle:
    """The merged bundle configuration (targets still in place) and where each piece came from."""

    root: Path
    config: dict[str, Any]
    files: list[Path]
    resource_files: dict[tuple[str, str], Path] = field(default_factory=dict)

    def resource_file(self, resource_type: str, key: str) -> Path:
        """File that defines ``resources.<resource_type>.<key>``: relative paths in it resolve against its folder."""
        return self.resource_files.get((resource_type, key), self.root / BUNDLE_FILE)

    @property
    def targets(self) -> dict[str, Any]:
        return self.config.get("targets") or {}

    @property
    def variables(self) -> dict[str, Any]:
        return self.config.get("variables") or {}


def load_yaml(path: Path) -> dict[str, Any]:
    """One bundle configuration file as a mapping (an empty file is an empty mapping)."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BundleError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def merge(a: Any, b: Any) -> Any:
    """CLI merge: maps merge recursively (b wins), sequences concatenate, anything else is replaced by b."""
    if a is None:
        return copy.deepcopy(b)
    if b is None:
        return copy.deepcopy(a)
    if isinstance(a, dict) and isinstance(b, dict):
        out = copy.deepcopy(a)
        for key, value in b.items():
            out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return copy.deepcopy(a) + copy.deepcopy(b)
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        raise BundleError(f"cannot merge {type(a).__name__} with {type(b).__name__}")
    return copy.deepcopy(b)


def load_bundle(root: Path = REPO_ROOT) -> Bundle:
    """databricks.yml with every ``include`` glob merged in, as ``databricks bundle validate`` loads it."""
    main = root / BUNDLE_FILE
    config = load_yaml(main)
    files = [main]
    resource_files: dict[tuple[str, str], Path] = {}
    _record_resources(config, main, resource_files)

    included: list[Path] = []
    for pattern in config.get("include") or []:
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matches:
            raise BundleError(f"include pattern {pattern!r} matches no file")
        included += [p for p in matches if p not in included]

    for path in included:
        part = load_yaml(path)
        if "include" in part:
            raise BundleError(f"{path}: only databricks.yml may use include")
        _record_resources(part, path, resource_files)
        config = merge(config, part)
        files.append(path)
    return Bundle(root=root, config=config, files=files, resource_files=resource_files)


def _record_resources(config: dict[str, Any], path: Path, seen: dict[tuple[str, str], Path]) -> None:
    for resource_type, entries in (config.get("resources") or {}).items():
        for key in entries or {}:
            if (resource_type, key) in seen:
                raise BundleError(
                    f"resources.{resource_type}.{key} is defined in both {seen[(resource_type, key)]} and {path}"
                )
            seen[(resource_type, key)] = path


def resolve_target(bundle: Bundle, target: str) -> dict[str, Any]:
    """The configuration the CLI deploys for ``-t target``: target overrides merged in, ``targets`` removed.

    Variable values are not substituted; a variable's effective default is in ``variables.<name>.default``.
    """
    if target not in bundle.targets:
        raise BundleError(f"no target {target!r}; have {sorted(bundle.targets)}")
    overrides = bundle.targets[target] or {}
    config = copy.deepcopy(bundle.config)
    config.pop("targets", None)

    if "run_as" in overrides:  # replaced, not merged
        config["run_as"] = copy.deepcopy(overrides["run_as"])
    section = config.setdefault("bundle", {})
    for key in ("mode", "git", "cluster_id", "compute_id"):
        if key in overrides:
            section[key] = merge(section.get(key), overrides[key])
    section["target"] = target

    variables = config.setdefault("variables", {})
    for name, value in (overrides.get("variables") or {}).items():
        if name not in variables:
            raise BundleError(f"target {target!r} assigns variable {name!r}, which is not declared")
        declared = variables[name] if isinstance(variables[name], dict) else {"default": variables[name]}
        if isinstance(value, dict) and ("default" in value or "lookup" in value):
            declared = {k: v for k, v in declared.items() if k not in ("default", "lookup")} | value
        else:
            declared = {k: v for k, v in declared.items() if k != "lookup"} | {"default": value}
        variables[name] = declared

    for key in ("bundle", "workspace", "artifacts", "resources", "sync", "permissions", "presets"):
        if key in overrides:
            config[key] = merge(config.get(key), overrides[key])

    for job in ((config.get("resources") or {}).get("jobs") or {}).values():
        for list_name, key in _JOB_KEYED_LISTS.items():
            if isinstance(job.get(list_name), list):
                job[list_name] = merge_keyed(job[list_name], key)
    return config


def merge_keyed(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Merge entries that share ``key`` (first position wins), as the CLI does for job tasks and clusters."""
    merged: dict[Any, dict[str, Any]] = {}
    for item in items:
        name = item.get(key)
        merged[name] = merge(merged[name], item) if name in merged else copy.deepcopy(item)
    return list(merged.values())


def variable_values(config: dict[str, Any]) -> dict[str, Any]:
    """Effective value of every variable of a resolved target: its default, ``LOOKUP`` for a lookup, else None."""
    out: dict[str, Any] = {}
    for name, spec in (config.get("variables") or {}).items():
        spec = spec if isinstance(spec, dict) else {"default": spec}
        if "default" in spec and spec["default"] is not None:
            out[name] = spec["default"]
        elif spec.get("lookup"):
            out[name] = "LOOKUP"
        else:
            out[name] = None
    return out


def substitute_variables(node: Any, values: dict[str, Any], _depth: int = 0) -> Any:
    """A copy of ``node`` with every string that is exactly ``${var.name}`` replaced by the variable's value.

    A value that itself holds ``${var.x}`` strings (a complex variable's map, say) is substituted in turn, as the
    CLI resolves variables that refer to variables. Variables without a value (None in ``values``, the user supplies
    them) and references inside longer strings stay as they are, so the result still validates against the bundle
    schema wherever a value is unknown.
    """
    if _depth > 10:  # the CLI gives up after 11 rounds too
        raise BundleError("variable references are too deep (a cycle?)")
    if isinstance(node, str):
        match = re.fullmatch(r"\$\{var\.([A-Za-z][\w-]*)\}", node)
        if match and values.get(match.group(1)) is not None:
            return substitute_variables(copy.deepcopy(values[match.group(1)]), values, _depth + 1)
        return node
    if isinstance(node, dict):
        return {key: substitute_variables(value, values, _depth) for key, value in node.items()}
    if isinstance(node, list):
        return [substitute_variables(value, values, _depth) for value in node]
    return node


COMPUTE_KEYS = ("job_cluster_key", "new_cluster", "existing_cluster_id", "environment_key")


def task_compute(task: dict[str, Any]) -> dict[str, Any]:
    """The compute settings a task names; empty for a serverless task (notebook tasks then use serverless)."""
    return {key: task[key] for key in COMPUTE_KEYS if task.get(key)}


def iter_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string (keys excluded) in a nested structure, with a dotted path to it."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from iter_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from iter_strings(value, f"{path}[{index}]")


def variable_references(node: Any) -> dict[str, set[str]]:
    """``{variable name: {paths that reference it}}`` for every ``${var.x}`` in the structure."""
    refs: dict[str, set[str]] = {}
    for path, text in iter_strings(node):
        for name in VAR_REF.findall(text):
            refs.setdefault(name, set()).add(path)
    return refs


def used_variables(config: dict[str, Any]) -> set[str]:
    """Variables the configuration uses: referenced outside ``variables``, or by the value of a used variable.

    A variable referenced only from another variable's default (``pause_status: ${var.x}`` inside a complex
    variable, say) is used exactly when that variable is.
    """
    declared = config.get("variables") or {}
    used = set(variable_references({k: v for k, v in config.items() if k != "variables"}))
    pending = list(used)
    while pending:
        spec = declared.get(pending.pop())
        for name in variable_references(spec if isinstance(spec, dict) else {"default": spec}):
            if name not in used:
                used.add(name)
                pending.append(name)
    return used


def resource_references(node: Any) -> set[tuple[str, str, str]]:
    """Every ``${resources.<type>.<key>.<field>}`` as (type, key, field)."""
    return {match for _, text in iter_strings(node) for match in RESOURCE_REF.findall(text)}


def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return (config.get("resources") or {}).get("jobs") or {}


def task_graph(job: dict[str, Any]) -> dict[str, list[str]]:
    """``{task_key: [task keys it depends on]}``."""
    return {
        task["task_key"]: [dep["task_key"] for dep in task.get("depends_on") or []] for task in job.get("tasks", [])
    }


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a list of task keys (first == last), or None if the graph is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if state.get(dep) is None and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def topological_order(graph: dict[str, list[str]]) -> list[str]:
    """Task keys in run order (ties broken by declaration order); raises BundleError on a cycle."""
    if cycle := find_cycle(graph):
        raise BundleError(f"dependency cycle: {' -> '.join(cycle)}")
    order: list[str] = []
    remaining = dict(graph)
    while remaining:
        ready = [key for key, deps in remaining.items() if all(dep in order for dep in deps)]
        order.append(ready[0])
        del remaining[ready[0]]
    return order


def notebook_widgets(path: Path, package_widgets: set[str] | None = None) -> set[str]:
    """Names of the widgets a notebook (Databricks source format, .py or .sql) defines or reads.

    A notebook that hands over to the package's ``run_task(spark, dbutils, step)`` reads the widgets that function
    declares: ``package_widgets`` (default: :func:`run_task_widgets`).
    """
    text = path.read_text(encoding="utf-8")
    found = set(_PY_WIDGET.findall(text)) | set(_SQL_WIDGET.findall(text)) | set(_SQL_GET_ARGUMENT.findall(text))
    if path.suffix == ".py" and _RUN_TASK_CALL.search(text):
        found |= run_task_widgets() if package_widgets is None else package_widgets
    return found


def _module_function(path: Path, name: str) -> ast.FunctionDef:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise BundleError(f"{path}: no function {name}()")


def run_task_widgets(module: Path = RUN_TASK_MODULE) -> set[str]:
    """The widgets ``run_task`` declares: the keys of the dict literal ``widget_defaults()`` returns.

    Read from the source with ``ast``, so these offline checks import neither the package nor PySpark.
    """
    function = _module_function(module, "widget_defaults")
    returns = [node.value for node in ast.walk(function) if isinstance(node, ast.Return)]
    if len(returns) != 1 or not isinstance(returns[0], ast.Dict):
        raise BundleError(f"{module}: widget_defaults() should return one dict literal")
    keys = returns[0].keys
    if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
        raise BundleError(f"{module}: widget_defaults() keys should be string literals")
    return {k.value for k in keys}  # type: ignore[union-attr]


def module_constant(path: Path, name: str) -> Any:
    """The literal value of a module-level ``NAME = <literal>`` assignment, read with ``ast``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise BundleError(f"{path}: no module-level {name} = <literal>")


def notebook_cells(path: Path) -> list[str]:
    """The cells of a source-format notebook, header and ``MAGIC`` prefixes removed, each stripped."""
    text = path.read_text(encoding="utf-8")
    header, separator = NOTEBOOK_HEADERS[path.suffix], CELL_SEPARATORS[path.suffix]
    comment = "#" if path.suffix == ".py" else "--"
    cells = []
    for cell in text.removeprefix(header).split(separator):
        lines = [re.sub(rf"^{re.escape(comment)} MAGIC ?", "", line) for line in cell.strip().splitlines()]
        cells.append("\n".join(lines).strip())
    return [cell for cell in cells if cell]


def load_dashboard(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def dataset_sql(dataset: dict[str, Any]) -> str:
    """A Lakeview dataset's SQL, whether stored as ``queryLines`` (exports since 2024) or one ``query`` string."""
    if "queryLines" in dataset:
        return "".join(dataset["queryLines"])
    return dataset.get("query", "")


def dashboard_queries(path: str | Path) -> dict[str, str]:
    """``{dataset name: SQL}`` for every dataset of a ``.lvdash.json`` dashboard.

    The queries name the gold views without catalog or schema (the bundle sets dataset_catalog/dataset_schema);
    run ``USE <catalog>.<gold schema>`` first, e.g. ``USE spark_catalog.ecom_gold`` locally.
    """
    return {dataset["name"]: dataset_sql(dataset) for dataset in load_dashboard(Path(path)).get("datasets", [])}


def dashboard_widgets(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for page in dashboard.get("pages", []):
        for item in page.get("layout", []):
            if "widget" in item:
                yield item["widget"]


def relation_names(sql: str) -> list[str]:
    """Names after FROM / JOIN in a query (subqueries and CTE names included): enough for simple dataset SQL."""
    return re.findall(r"\b(?:FROM|JOIN)\s+([`\w.]+)", sql, re.I)


def schema_validator(schema_path: Path) -> Any:
    """A jsonschema validator for the CLI's bundle schema, whose patterns use \\p{L}/\\p{N} (``regex`` module)."""
    import jsonschema
    import regex

    def pattern(validator: Any, value: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not regex.search(value, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {value!r}")

    with schema_path.open(encoding="utf-8") as handle:
        schema = json.load(handle)
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return jsonschema.validators.extend(base, {"pattern": pattern})(schema)


def _leaf_errors(error: Any) -> list[Any]:
    """Unfold oneOf/anyOf failures into the errors of the alternative that fits the instance's type.

    Nearly every node of the CLI schema is ``oneOf: [<the object>, <a ${var.x} string>]``, so a single typo deep in
    a job would otherwise surface as one opaque "is not valid under any of the given schemas" at ``resources``.
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    viable = [
        errs for errs in branches.values() if not any(e.validator == "type" and not e.relative_path for e in errs)
    ]
    if len(viable) != 1:
        return [error]
    return [leaf for sub in viable[0] for leaf in _leaf_errors(sub)]


def schema_errors(validator: Any, instance: dict[str, Any]) -> list[str]:
    """Every schema violation as ``path: message``, with oneOf/anyOf failures unfolded to their real cause."""
    messages = set()
    for error in validator.iter_errors(instance):
        for leaf in _leaf_errors(error):
            where = "/".join(str(p) for p in leaf.absolute_path) or "<root>"
            messages.add(f"{where}: {leaf.message}")
    return sorted(messages)
