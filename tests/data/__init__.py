"""Tests of the 4D sequence data module (backend/data, shared/pc2.py)."""
