"""One module per dashboard tab; each view owns its components and an `update(data)` method."""
