"""nfd-compat-extender."""
