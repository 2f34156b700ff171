"""The simulator: the real services at cloud scale under virtual time."""
