"""ecom-lakehouse: an e-commerce medallion lakehouse on Spark + Delta, locally and on Databricks."""

__version__ = "0.1.0"
