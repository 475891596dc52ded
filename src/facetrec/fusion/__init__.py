"""Fusion: frozen content vectors (text, reviews, later images and audio) and item IDs into one item vector."""
