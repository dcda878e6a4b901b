#!/usr/bin/env bash
# Builds the pinned Databricks CLI once per machine and prints the binary's path on stdout (progress goes to stderr).
#
#   ECOM_DATABRICKS_CLI="$(.ci/databricks-cli.sh)"     # .ci/run does this; `make databricks-cli` runs it
#
# The binary lives outside the repository, in ${XDG_CACHE_HOME:-$HOME/.cache}/ecom-lakehouse/databricks-cli/<version>/,
# and is reused while it reports the pinned version. It is built from the CLI's Go module source, fetched through
# the Go module proxy (`go mod download`; `go install github.com/databricks/cli@...` does not work for this module),
# with the build flags of the official release (version stamped in, symbols stripped). Needs Go (the CLI's go.mod
# asks for Go 1.26; the first build takes a few minutes). tests/integration/test_bundle_cli.py runs `bundle validate` and
# `bundle plan` with it; databricks.yml's databricks_cli_version constraint must admit this version.
set -euo pipefail

version=1.10.0
module=github.com/databricks/cli
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ecom-lakehouse/databricks-cli/$version"
binary="$cache_dir/databricks"

log() { echo "databricks-cli: $*" >&2; }

reports_version() { [ -x "$1" ] && [ "$("$1" --version 2>/dev/null)" = "Databricks CLI v$version" ]; }

if reports_version "$binary"; then
  log "using $binary"
  echo "$binary"
  exit 0
fi

if ! command -v go >/dev/null; then
  log "Go is not installed; it is needed to build the Databricks CLI v$version (https://go.dev/dl/)"
  exit 1
fi

# A Go older than the CLI's go.mod asks for (a distribution's package, say) then fetches that toolchain, itself a
# Go module from the same proxy; a new enough Go builds with itself. An explicit GOTOOLCHAIN wins.
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

# The module's source folder in the module cache (read-only; the build writes only to GOCACHE and the output).
source_dir="$(go mod download -json "$module@v$version" | python3 -c '
import json, sys
info = json.load(sys.stdin)
if info.get("Error") or not info.get("Dir"):
    sys.exit("go mod download failed: " + info.get("Error", "no Dir in the answer"))
print(info["Dir"])
')"

mkdir -p "$cache_dir"
build_dir="$(mktemp -d "$cache_dir/.build.XXXXXX")"
trap 'rm -rf "$build_dir"' EXIT

log "building Databricks CLI v$version from $source_dir (once per machine, a few minutes)"
(
  cd "$source_dir"
  go build -trimpath -ldflags "-s -w -X $module/internal/build.buildVersion=$version" -o "$build_dir/databricks" .
)

if ! reports_version "$build_dir/databricks"; then
  log "the built binary reports '$("$build_dir/databricks" --version 2>&1 || true)', expected 'Databricks CLI v$version'"
  exit 1
fi
mv -f "$build_dir/databricks" "$binary" # same file system: an atomic replace, never a half-written binary
log "built $binary"
echo "$binary"
