"""The theory: asymptotic rates, exponents and regimes (``rates``, re-exported here; pure numpy) and the finite-size
deterministic equivalents of a Gaussian sketch (``equivalents``; compiled kernels, imported only where needed)."""

from sketchlaw.theory.rates import (BATCH_VARIANCE_EXPONENT, WINDOW_MARGIN, data_limits_nothing,
                                    compute_exponents, dataset_limits_nothing, effective_dimension, exponents, fitted_dimension,
                                    frontier_coordinates, ols_variance, power_decay_exponent, rates, schedule_exponent,
                                    sketch_limits_nothing, variance_predictor)

__all__ = ["BATCH_VARIANCE_EXPONENT", "WINDOW_MARGIN", "compute_exponents", "data_limits_nothing", "dataset_limits_nothing",
           "effective_dimension", "exponents", "fitted_dimension", "frontier_coordinates", "ols_variance", "power_decay_exponent", "rates",
           "schedule_exponent", "sketch_limits_nothing", "variance_predictor"]
