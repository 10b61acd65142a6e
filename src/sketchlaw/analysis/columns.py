"""The columns of the rows the analysis writes (docs/METHODS.md §15), apart from the code that writes them
(``sketchlaw.analysis.rows``) so that the figures' helpers read the same names without importing the analysis.

Curve columns say which curve of an experiment a row belongs to, each empty where it does not apply: ``schedule``
(a schedule's label), ``step_rule`` (a mini-batch step-size rule), ``samples`` (the size N of a fixed dataset
reused over several passes), ``sketch`` (a sketch family other than the paper's Gaussian, docs/METHODS.md §19),
``coordinates`` (a coordinate law of the covariates, docs/METHODS.md §21).
"""

import math

CURVE = {"schedule": "", "step_rule": "", "samples": math.nan, "sketch": "", "coordinates": ""}
KEY = ["experiment", "spectrum", "a", "b"]
COLUMNS = KEY + ["variable", "abscissa", "scale", *CURVE, "estimator", "quantity", "fixed_variable", "fixed_value",
                 "x_lo", "x_hi", "n_points", "n_seeds", "fitted", "intercept", "ci_low", "ci_high", "sys_low",
                 "sys_high", "theory", "theory_finite", "extrapolated", "extrapolated_low", "extrapolated_high",
                 "verdict", "reason"]
# What a row's slope is fitted against: ``abscissa`` is the table column x, ``scale`` how it enters the regression
# of log y: log x ("log"), log log x ("loglog", the log power law) or the compute frontier's coordinates
# (``theory.frontier_coordinates``).
SCALES = ("log", "loglog", "frontier")
IDENTITY = KEY + ["variable", "estimator", *CURVE]  # unique per row
DIAGNOSTIC_COLUMNS = KEY + ["variable", *CURVE, "kind", "fixed", "x", "value"]
