"""Hashers: float embeddings -> packed binary codes."""
