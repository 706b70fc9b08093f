"""The `identity-warehouse` command line and its quiet console."""
