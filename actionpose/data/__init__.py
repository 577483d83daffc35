"""The canonical skeleton-sequence format, importers, transforms and data modules."""
