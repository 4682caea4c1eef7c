"""The command-line layer: one module per ``quantmap`` verb, each parsing its arguments and
calling library code. Nothing in the library imports this package."""
