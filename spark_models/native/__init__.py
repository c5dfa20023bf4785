"""Native scoring of fitted models: one flattened tree representation and evaluators built on it.

:mod:`spark_models.native.trees` holds :class:`~spark_models.native.trees.TreeEnsemble` (flat node
arrays over all trees concatenated) and its vectorized numpy evaluator; extractors turning
scikit-learn, xgboost, lightgbm and Spark ML tree models into it live in
:mod:`spark_models.native.tree_sources` (Spark ML and MLeap ``tree.json``: :mod:`spark_models.native.spark_trees`).
"""
