"""Flex Template entry point: template parameters arrive as --name=value flags."""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main(["clean", *sys.argv[1:]]))
