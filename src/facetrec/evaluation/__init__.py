"""Evaluation: metrics as pure functions, protocols, reports and plots."""
