"""wildsep: universal sound separation learned from in-the-wild audio."""

__version__ = "0.1.0"
