"""A stand-in model server: prints what it would serve and exits."""

import sys

from api_wrapper import describe

if __name__ == "__main__":
    print(f"serving {describe()} with args {sys.argv[1:]}")
