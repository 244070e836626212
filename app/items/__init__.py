"""Items domain."""
