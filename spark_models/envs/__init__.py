"""Scoring a model in its own Python environment (``env_manager="uv"|"virtualenv"|"conda"``).

The environment is built once per machine from the model's ``python_env.yaml`` /
``requirements.txt`` (or ``conda.yaml``), cached by a hash of those files, the platform and
the Python version; one persistent scorer process per Python worker runs in it and receives
batches as Arrow IPC over pipes.
"""
