"""Upload the raw source files to S3: ``python data_extraction/upload_raw.py SOURCE_DIR --bucket BUCKET [...]``.

A thin wrapper around the ``upload`` sub-command of the ``ecom`` CLI (``ecom upload``); the same parser, options
and exit codes. See data_extraction/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from ecom_lakehouse.tools.extraction.cli import main
except ModuleNotFoundError:  # running from a source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from ecom_lakehouse.tools.extraction.cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="upload_raw.py"))
