"""The real Timeloop/Accelergy backend: discovery, runner, output parsers, patch set, CostModel.

Entry points: ``costmodel.TimeloopCostModel`` (registered as engine "timeloop") and
``cli_backend.evaluate_files`` / ``map_files`` for the ``--engine timeloop`` CLIs.
"""
