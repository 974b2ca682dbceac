"""The ppl_ad version (its own module, so that subpackages need not import the package facade)."""

__version__ = "0.1.0"
