"""The DTN-in-a-Box agent: the controller program that runs at each site."""

__version__ = "0.1.0"
