"""``python -m sketchlaw.workflow.warm_up``: compile every numba kernel once into numba's cache (beside the sources), so that
no later process compiles them (``make install`` runs it)."""

from sketchlaw.engine import exact
from sketchlaw.theory import equivalents


def main() -> None:
    exact.warm_up()
    equivalents.warm_up()


if __name__ == "__main__":
    main()
