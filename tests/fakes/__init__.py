"""Local stand-ins for cloud APIs that have no official emulator, driven by the real clients."""
