"""LUME platform: the library that flows, the operator and the CLI share."""

__version__ = "0.1.0"
