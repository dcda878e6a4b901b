"""Extraction step: upload the raw source files to S3 (``ecom upload``), verified end to end.

See :mod:`ecom_lakehouse.tools.extraction.upload` for the logic (it needs the ``upload`` extra: boto3) and
``data_extraction/README.md`` for operations.
"""
