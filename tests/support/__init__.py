"""Helpers shared by several test modules: fact files, checkpoint series, training data and reference loops."""
