"""Entry point for `python -m lmtrain` and `torchrun -m lmtrain`."""

from lmtrain.cli.main import main

if __name__ == "__main__":
    main()
