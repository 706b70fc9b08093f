"""Landing files into raw tables: the readers, the registered landing sources, and `add-source`."""
