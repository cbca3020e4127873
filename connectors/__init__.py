"""How extracts arrive: declared contracts, drop-folder intake, pull connectors."""
