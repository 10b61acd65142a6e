"""sketchlaw: exact and Monte Carlo simulation of sketched linear regression trained by one-pass SGD."""
__version__ = "0.1.0"
