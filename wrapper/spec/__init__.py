"""The spec layer: every Timeloop input and output as typed values (problem, architecture,
mapping, precision and packing, statistics, energy tables), the YAML they are read from and
written to, the architecture templates and the cost-model interface every engine implements.

It depends on nothing else in QuantMap but ``wrapper.errors``; engines and the main job build
on it.
"""
