"""The real Timeloop/Accelergy backend: discovery, runner, output parsers, patch set, CostModel.

Entry point: ``costmodel.TimeloopCostModel`` (registered as engine "timeloop"), which the
``--engine timeloop`` CLIs and experiments use alike.
"""
