"""Generative and reconstruction methods (each a sub-package; heavy imports stay inside)."""
