"""Arrow-based batch scoring of pyfunc models in PySpark (``spark_udf``).

Filled in by the spark_udf issue; the package exists so the layout is stable.
"""
