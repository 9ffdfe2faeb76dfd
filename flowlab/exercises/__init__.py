"""Auto-checkers that students call from exercise cells, one module per chapter.

Each checker takes the student's answer, compares it with a value computed independently, and
prints helpful feedback (returning ``True`` when the answer is right).
"""

from . import (autoregressive, change_of_variables, circles, composition, continuous, jacobians, linear, objectives, practice,
               residual, universality)

__all__ = ["autoregressive", "change_of_variables", "circles", "composition", "continuous", "jacobians", "linear", "objectives", "practice",
           "residual", "universality"]
