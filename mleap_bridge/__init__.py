"""MLeap bundles without the JVM: read, write and score Bundle.ML in numpy.

Filled in by the mleap_bridge issue; the package exists so the layout is stable.
"""
