"""The ~80-variable research mart."""
