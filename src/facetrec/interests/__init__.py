"""User models: from a behaviour sequence to one or several interest vectors."""
