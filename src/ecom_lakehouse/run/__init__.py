"""Running the pipeline: the steps, the one run lifecycle, the run history (``pipeline_runs``), the notebooks' entry
point."""
