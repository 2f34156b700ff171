"""The embedded local cluster's backends: SQLite store, blob directory, worker processes."""
