"""Helpers shared by every mode. Imports nothing else of this project."""
