"""The core every stage shares: settings, keys, errors, contracts, warehouse, archive, files.

It imports no stage (connectors, expectations, transforms, synthetic) and no entry point
(the ``leadhub`` command, the pipeline functions, the DAGs); tests/test_layers.py checks it.
"""
