"""Model signatures: what a model takes and returns, and everything that checks or converts
data against it. The public names are :mod:`spark_models.types` and :mod:`spark_models.models`.

- :mod:`.type_table` — the one table of signature ↔ numpy/Python/Spark/Arrow types;
- :mod:`.types`, :mod:`.params`, :mod:`.signature` — ``Schema``, ``ParamSchema``, ``ModelSignature``;
- :mod:`.inference` — ``infer_signature`` from example data;
- :mod:`.columns`, :mod:`.enforcement` — checking and converting input before ``predict``;
- :mod:`.json_decoding`, :mod:`.input_example` — typed columns through JSON.
"""
