"""Pipeline configuration: table names, schemas and source-file patterns, loaded from conf/pipeline.yml.

The file is looked up, in order, at ``$ECOM_CONF``, inside the installed wheel (``ecom_lakehouse/conf``),
and in the repository's ``conf/`` (source checkout or editable install). The wheel copy is built from the
repository file, so there is one source of truth.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ecom_lakehouse.errors import ConfigError

_CONF_NAME = "pipeline.yml"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _conf_path() -> Path:
    candidates = []
    if os.environ.get("ECOM_CONF"):
        candidates.append(Path(os.environ["ECOM_CONF"]))
    package_dir = Path(__file__).resolve().parent
    candidates += [package_dir / "conf" / _CONF_NAME, package_dir.parents[1] / "conf" / _CONF_NAME]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"pipeline configuration not found; looked at: {', '.join(map(str, candidates))}")


@dataclass(frozen=True)
class SourceSpec:
    """How one raw dataset is recognised and read."""

    dataset: str
    pattern: re.Pattern[str]
    format: str

    def matches(self, file_name: str) -> bool:
        return self.pattern.match(file_name) is not None


@dataclass(frozen=True)
class PipelineConfig:
    """Names of every table and the source patterns; immutable, override with :meth:`with_overrides`."""

    catalog: str
    schemas: dict[str, str]
    tables: dict[str, dict[str, str]]
    sources: dict[str, SourceSpec] = field(default_factory=dict)

    def table(self, layer: str, name: str) -> str:
        """Full three-part name of a table, e.g. ``table("silver", "orders")``.

        Args:
            layer: ``bronze``, ``silver`` or ``gold``.
            name: the logical table key under that layer in conf/pipeline.yml.

        Returns:
            ``catalog.schema.table``.
        """
        try:
            return f"{self.catalog}.{self.schemas[layer]}.{self.tables[layer][name]}"
        except KeyError as exc:
            raise ConfigError(f"no table {layer}.{name} in {_CONF_NAME}") from exc

    def schema(self, layer: str) -> str:
        """Full two-part name of a layer's schema, e.g. ``spark_catalog.ecom_silver``."""
        return f"{self.catalog}.{self.schemas[layer]}"

    def all_tables(self) -> list[tuple[str, str]]:
        """Every (layer, logical name) pair, bronze first."""
        return [(layer, name) for layer in ("bronze", "silver", "gold") for name in self.tables.get(layer, {})]

    def with_overrides(
        self,
        catalog: str | None = None,
        bronze_schema: str | None = None,
        silver_schema: str | None = None,
        gold_schema: str | None = None,
    ) -> PipelineConfig:
        """A copy with the catalog and/or schema names replaced (job parameters and widgets use this)."""
        schemas = dict(self.schemas)
        for layer, value in (("bronze", bronze_schema), ("silver", silver_schema), ("gold", gold_schema)):
            if value:
                schemas[layer] = _identifier(value, f"{layer}_schema")
        return replace(self, catalog=_identifier(catalog, "catalog") if catalog else self.catalog, schemas=schemas)


def _identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ConfigError(f"{what} {value!r} is not a plain SQL identifier (letters, digits, underscore)")
    return value


def _parse(raw: dict[str, Any], origin: Path) -> PipelineConfig:
    try:
        sources = {
            dataset: SourceSpec(dataset, re.compile(spec["pattern"], re.IGNORECASE), spec["format"])
            for dataset, spec in raw["sources"].items()
        }
        config = PipelineConfig(
            catalog=_identifier(raw["catalog"], "catalog"),
            schemas={layer: _identifier(name, f"schemas.{layer}") for layer, name in raw["schemas"].items()},
            tables={layer: dict(names) for layer, names in raw["tables"].items()},
            sources=sources,
        )
    except (KeyError, TypeError, re.error) as exc:
        raise ConfigError(f"{origin}: invalid configuration: {exc!r}") from exc
    for layer, _name in config.all_tables():
        if layer not in config.schemas:
            raise ConfigError(f"{origin}: tables.{layer} has no schema under schemas")
    return config


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Load the pipeline configuration.

    Args:
        path: an explicit YAML file; by default the lookup described in the module docstring.

    Returns:
        The parsed configuration.
    """
    origin = Path(path) if path else _conf_path()
    with origin.open(encoding="utf-8") as handle:
        return _parse(yaml.safe_load(handle), origin)
