"""Stage 5, scorers: from a user's history to a score for every item."""
