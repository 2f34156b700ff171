"""Speed of burla, measured and written to files; never asserted in tests."""
