"""Print the URL of flash-attn's prebuilt wheel for the torch installed here (`make install-gpu`).

flash-attn's PyPI release is source only and takes an hour and a CUDA compiler to build; its
GitHub releases carry wheels per flash-attn version, CUDA major version, torch major.minor,
C++ ABI and Python version. Exits 1, saying why, when torch is a CPU build (no wheel applies).
Whether a wheel exists for this combination only the download can tell.
"""

from __future__ import annotations

import platform
import sys

RELEASES = "https://github.com/Dao-AILab/flash-attention/releases/download"


def wheel_url(flash_version: str, torch_version: str, cuda: str, python: str, abi: bool) -> str:
    """`torch_version` like 2.7.1+cu128, `cuda` like 12.8, `python` like 3.11."""
    torch_minor = ".".join(torch_version.split("+")[0].split(".")[:2])
    cuda_major = cuda.split(".")[0]
    tag = "cp" + python.replace(".", "")
    return (
        f"{RELEASES}/v{flash_version}/flash_attn-{flash_version}+cu{cuda_major}"
        f"torch{torch_minor}cxx11abi{str(abi).upper()}-{tag}-{tag}-linux_x86_64.whl"
    )


def main(argv: list[str]) -> int:
    import torch

    flash_version = argv[0] if argv else "2.8.3"
    if torch.version.cuda is None:
        print(
            f"torch {torch.__version__} is a CPU build: no flash-attn wheel applies",
            file=sys.stderr,
        )
        return 1
    python = ".".join(platform.python_version_tuple()[:2])
    abi = bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    print(wheel_url(flash_version, torch.__version__, torch.version.cuda, python, abi))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
