"""Readers for other libraries' model files (pure Python/numpy, no library needed, no code executed)."""
