"""`rmclean download`: a real dataset or the reference model, the disk space checked first."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pipelines.commands.usage import EXIT_FAILED, EXIT_OK, usage

NAME = "download"


def add_parser(commands) -> argparse.ArgumentParser:
    from pipelines.jobs.downloads import DEFAULT_BUCKET, PLANS

    download = commands.add_parser(
        NAME,
        help="download a dataset or the ixc25 model into data/, checking the free space first",
        allow_abbrev=False,
    )
    download.add_argument("what", choices=sorted(PLANS), help="what to download")
    download.add_argument("--data", default="data", help="where the data goes (data)")
    download.add_argument(
        "--bucket", default=DEFAULT_BUCKET, help=f"llava-video: the bucket ({DEFAULT_BUCKET})"
    )
    download.add_argument(
        "--archives", type=int, help="llava-video: only the first N video archives (default all)"
    )
    download.add_argument(
        "--keep-free", type=float, default=2.0, help="GB to leave free on the disk (2)"
    )
    download.add_argument(
        "--dry-run", action="store_true", help="check the space and print the steps only"
    )
    return download


def run(args: argparse.Namespace) -> int:
    from pipelines.jobs.downloads import DownloadError, download, plan_for

    try:
        plan = plan_for(args.what, args.data, bucket=args.bucket, archives=args.archives)
        download(plan, Path(args.data), args.keep_free, args.dry_run)
    except DownloadError as exc:
        return usage(str(exc))
    except subprocess.CalledProcessError as exc:
        print(
            f"rmclean: download failed: {' '.join(exc.cmd)} exited {exc.returncode}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
