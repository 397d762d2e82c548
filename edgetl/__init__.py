"""edgetl: from a folder of labelled photos to a verified classifier on the edge."""

__version__ = "0.1.0"
