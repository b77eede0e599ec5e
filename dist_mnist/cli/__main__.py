"""`python -m dist_mnist.cli ...`: the same as `dist-mnist ...`."""

from dist_mnist.cli.commands import run

if __name__ == "__main__":
    run()
