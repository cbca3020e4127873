"""LEAD Hub core: what every stage shares (settings, keys, warehouse connection, CLI)."""

__version__ = "0.1.0"
