"""Local tooling, never imported by the job: the ``ecom`` CLI, report rendering and charts, the notebook runner, the
data generator, the S3 uploader and remote operations. Their dependencies are extras of the package."""
