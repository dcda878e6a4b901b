# Databricks notebook source
# MAGIC %md
# MAGIC # 2. Silver: customers and products
# MAGIC
# MAGIC `customers`: one row per Customer ID; the name repaired (injected digits, symbols and stray spaces removed,
# MAGIC look-alike characters read back, Unicode letters, apostrophes and hyphens kept) beside the raw name; phone in
# MAGIC E.164 or null; postal code zero-padded to 5 digits. `products`: one row per Product ID, chosen by a deterministic
# MAGIC rule, flagged where duplicates conflicted. Records that break a quarantine rule go to `quarantine` with reasons.
# MAGIC Runs only when a dimension changed (or on a full refresh); the task adds its rows and seconds to the run.
# MAGIC
# MAGIC The next two cells install the `ecom_lakehouse` package and its dependencies from the files of the bundle this
# MAGIC notebook was deployed with (`..` is the bundle root), the same way on serverless, standard and dedicated compute.

# COMMAND ----------

# MAGIC %pip install --quiet --disable-pip-version-check ..

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

from ecom_lakehouse.run.tasks import run_task

display(run_task(spark, dbutils, "silver_dimensions"))
