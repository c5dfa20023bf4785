"""MLflow tracking and Model Registry: logging models (:mod:`spark_models.tracking.log`, needs
MLflow) and resolving ``runs:/`` and ``models:/`` URIs on the scoring side
(:mod:`spark_models.tracking.resolve`: MLflow's client when ``mlflow`` is importable, otherwise the
tracking server's REST API, :mod:`spark_models.tracking.rest`); either way the model's files land
in the private cache (:mod:`spark_models.tracking.artifacts`).

Nothing is imported here: every flavor shim imports :mod:`spark_models.tracking.log`, Spark
workers too, and they must not load an HTTP client.
"""
