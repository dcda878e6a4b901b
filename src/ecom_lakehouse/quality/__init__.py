"""Data quality: the declared rules (expectations), their counts, and the reconciliation of the layers."""
