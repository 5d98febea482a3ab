"""The real datasets and the reference model, downloaded with the disk space checked first.

Each download is a plan of steps: `hf download` commands (run as `.venv/bin/hf`, the one beside
this Python, so nothing depends on an activated environment) and unzips (done here, with
Python's zipfile, so no `unzip` binary is needed). Before the first byte is fetched, the space
the plan still needs (what is not on disk yet, downloads and unzipped copies both) is checked
against the free space where the data goes, and the download is refused if it does not fit.

The sizes are those the Hugging Face Hub lists for each file (rounded up), so the check needs
no network: ALLaVA-4V's ten LAION image zips are 8.9 to 9.4 GB each and unzip to about the same
(JPEG files, stored); Vision-Flan's image zip is 36.3 GB; every LLaVA-Video-178K video archive
is about 5.3 GB, and each bucket has the number of archives below.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GB = 10**9
COPY_BLOCK_BYTES = 8 << 20

ALLAVA_REPO = "FreedomIntelligence/ALLaVA-4V"
ALLAVA_MANIFESTS = (
    ("allava_laion/ALLaVA-Caption-LAION-4V.json", 1.13),
    ("allava_laion/ALLaVA-Instruct-LAION-4V.json", 0.61),
    ("allava_vflan/ALLaVA-Caption-VFLAN-4V.json", 0.39),
    ("allava_vflan/ALLaVA-Instruct-VFLAN-4V.json", 0.24),
    ("allava_text/Evol-Instruct-GPT4-Turbo-143K.json", 0.38),
)
LAION_CHUNK_GB = (9.28, 9.35, 9.21, 9.30, 9.30, 9.06, 9.38, 9.31, 8.94, 9.15)
VFLAN_REPO, VFLAN_ZIP, VFLAN_ZIP_GB = (
    "Vision-Flan/vision-flan_191-task_1k",
    "image_191-task_1k.zip",
    36.3,
)
LLAVA_VIDEO_REPO = "lmms-lab/LLaVA-Video-178K"
LLAVA_VIDEO_ARCHIVES = {  # bucket -> its <bucket>_videos_<n>.tar.gz archives, n = 1..count
    "0_30_s_academic_v0_1": 8,
    "0_30_s_youtube_v0_1": 19,
    "30_60_s_academic_v0_1": 10,
    "30_60_s_youtube_v0_1": 13,
    "1_2_m_academic_v0_1": 14,
    "1_2_m_youtube_v0_1": 50,
    "2_3_m_academic_v0_1": 18,
    "2_3_m_youtube_v0_1": 98,
}
LLAVA_VIDEO_ARCHIVE_GB = 5.34
LLAVA_VIDEO_MANIFESTS_GB = 1.0  # caption, open-ended and multiple-choice JSON of one bucket
DEFAULT_BUCKET = "0_30_s_youtube_v0_1"
IXC_FILES = (  # (repo, file or None for all of it, local dir below data/, GB)
    (
        "internlm/internlm-xcomposer2d5-7b-reward",
        None,
        "models/internlm-xcomposer2d5-7b-reward",
        18.0,
    ),
    ("internlm/internlm-xcomposer2d5-clip", None, "models/internlm-xcomposer2d5-clip", 1.22),
    ("internlm/internlm-xcomposer2d5-7b", "SimHei.ttf", "models/fonts", 0.01),
)


class DownloadError(ValueError):
    """A download that cannot start (unknown name, no room, no `hf`): one line, exit 2."""


def _bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


@dataclass(frozen=True)
class HubDownload:
    """One `hf download`: named files (each with its listed size) or include patterns."""

    repo: str
    local_dir: Path
    files: tuple[tuple[str, float], ...] = ()
    include: tuple[str, ...] = ()
    include_gb: float = 0.0
    include_folder: str = ""  # where the included files land, below local_dir
    dataset: bool = False

    def command(self, hf: str) -> list[str]:
        command = [hf, "download", self.repo, *(name for name, _ in self.files)]
        if self.dataset:
            command += ["--repo-type", "dataset"]
        for pattern in self.include:
            command += ["--include", pattern]
        return [*command, "--local-dir", str(self.local_dir)]

    def bytes_needed(self) -> int:
        """What is not on disk yet: files not there, or the part of the included set not there."""
        needed = sum(
            int(gb * GB) for name, gb in self.files if not (self.local_dir / name).is_file()
        )
        if self.include or not self.files:
            have = _bytes_under(self.local_dir / self.include_folder)
            needed += max(0, int(self.include_gb * GB) - have)
        return needed

    def describe(self, hf: str) -> str:
        return shlex.join(self.command(hf))

    def run(self, hf: str) -> None:
        subprocess.run(self.command(hf), check=True)


@dataclass(frozen=True)
class Unzip:
    """Unzip `archive` into `target` (`flat`: every member straight into it, as `unzip -j`)."""

    archive: Path
    target: Path
    flat: bool
    gb: float

    @property
    def done_marker(self) -> Path:
        return self.target / f".unzipped-{self.archive.name}"

    def bytes_needed(self) -> int:
        return 0 if self.done_marker.exists() else int(self.gb * GB)

    def describe(self, hf: str) -> str:
        return f"unzip {'(flat) ' if self.flat else ''}{self.archive} -> {self.target}"

    def run(self, hf: str) -> None:
        self.target.mkdir(parents=True, exist_ok=True)
        root = self.target.resolve()
        with zipfile.ZipFile(self.archive) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                name = Path(member.filename).name if self.flat else member.filename
                destination = (self.target / name).resolve()
                if root not in destination.parents:  # a zip may name ../ paths: never follow
                    raise DownloadError(f"{self.archive}: {member.filename} leaves {self.target}")
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out, COPY_BLOCK_BYTES)
        self.done_marker.touch()  # last: an interrupted unzip is redone, not skipped


Step = HubDownload | Unzip


@dataclass(frozen=True)
class Plan:
    name: str
    steps: tuple[Step, ...]
    then: str = ""  # what to run next, said once the download is done

    def bytes_needed(self) -> int:
        return sum(step.bytes_needed() for step in self.steps)

    def total_gb(self) -> float:
        return sum(
            step.gb if isinstance(step, Unzip) else sum(g for _, g in step.files) + step.include_gb
            for step in self.steps
        )


def _allava(data: Path, chunks: range) -> list[Step]:
    root = data / "ALLaVA-4V"
    zips = tuple((f"allava_laion/image_chunks/images_{i}.zip", LAION_CHUNK_GB[i]) for i in chunks)
    steps: list[Step] = [HubDownload(ALLAVA_REPO, root, ALLAVA_MANIFESTS + zips, dataset=True)]
    for name, gb in zips:
        steps.append(Unzip(root / name, root / "allava_laion" / "images", True, gb))
    return steps


def _vflan(data: Path) -> list[Step]:
    images = data / "ALLaVA-4V" / "allava_vflan" / "images"
    return [
        HubDownload(VFLAN_REPO, images, ((VFLAN_ZIP, VFLAN_ZIP_GB),), dataset=True),
        Unzip(images / VFLAN_ZIP, images, False, VFLAN_ZIP_GB),
    ]


def _llava_video(data: Path, bucket: str, archives: int | None) -> list[Step]:
    if bucket not in LLAVA_VIDEO_ARCHIVES:
        raise DownloadError(
            f"unknown LLaVA-Video-178K bucket {bucket!r}; "
            f"buckets: {', '.join(LLAVA_VIDEO_ARCHIVES)}"
        )
    count = LLAVA_VIDEO_ARCHIVES[bucket]
    wanted = count if archives is None else min(archives, count)
    if archives is None:
        include: tuple[str, ...] = (f"{bucket}/*",)
    else:
        include = (f"{bucket}/*.json",) + tuple(
            f"{bucket}/{bucket}_videos_{n}.tar.gz" for n in range(1, wanted + 1)
        )
    gb = LLAVA_VIDEO_MANIFESTS_GB + wanted * LLAVA_VIDEO_ARCHIVE_GB
    local = data / "LLaVA-Video-178K"
    return [HubDownload(LLAVA_VIDEO_REPO, local, (), include, gb, bucket, dataset=True)]


def _ixc25(data: Path) -> list[Step]:
    return [
        HubDownload(repo, data / folder, ((name, gb),))
        if name
        else HubDownload(repo, data / folder, include_gb=gb)
        for repo, name, folder, gb in IXC_FILES
    ]


PLANS: dict[str, Callable[..., Plan]] = {
    "allava-1pct": lambda data, **_: Plan(
        "allava-1pct",
        tuple(_allava(data, range(1))),
        "make subset DATASET=allava FRACTION=0.01 SUBSET=data/ALLaVA-4V-1pct",
    ),
    "allava": lambda data, **_: Plan(
        "allava", tuple(_allava(data, range(len(LAION_CHUNK_GB))) + _vflan(data))
    ),
    "llava-video": lambda data, bucket=DEFAULT_BUCKET, archives=None, **_: Plan(
        "llava-video",
        tuple(_llava_video(data, bucket, archives)),
        "make subset DATASET=llava_video_178k FRACTION=0.01 SUBSET=data/LLaVA-Video-178K-1pct",
    ),
    "ixc25": lambda data, **_: Plan("ixc25", tuple(_ixc25(data)), "make doctor"),
}


def plan_for(name: str, data: str | Path = "data", **options) -> Plan:
    if name not in PLANS:
        raise DownloadError(f"unknown download {name!r}; choose one of: {', '.join(PLANS)}")
    return PLANS[name](Path(data), **options)


def free_bytes(data: Path) -> int:
    """Free space on the disk `data` is (or will be) on."""
    probe = data.resolve()
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_space(plan: Plan, data: Path, keep_free_gb: float) -> int:
    """The bytes `plan` still needs; raise DownloadError if they do not fit beside
    `keep_free_gb` of free space."""
    needed, free = plan.bytes_needed(), free_bytes(data)
    if needed + keep_free_gb * GB > free:
        raise DownloadError(
            f"{plan.name} needs {needed / GB:.1f} GB more in {data} and only {free / GB:.1f} GB "
            f"is free (keeping {keep_free_gb:g} GB free); nothing was downloaded. Free some "
            f"space, or make {data} a link to a larger disk"
        )
    return needed


def hf_command() -> str:
    """The `hf` of this Python's environment (.venv/bin/hf), activated or not."""
    hf = Path(sys.executable).parent / "hf"
    if not hf.exists():
        raise DownloadError(f"{hf} not found: `make install` installs it (huggingface_hub)")
    return str(hf)


def download(plan: Plan, data: Path, keep_free_gb: float, dry_run: bool = False) -> None:
    """Check the space, then run every step in order (or, with `dry_run`, say what would run)."""
    hf = hf_command()
    needed = check_space(plan, data, keep_free_gb)
    print(
        f"rmclean: {plan.name}: {plan.total_gb():.1f} GB in all, {needed / GB:.1f} GB of it not "
        f"on disk yet; {free_bytes(data) / GB:.1f} GB free in {data}",
        flush=True,
    )
    for step in plan.steps:
        print(f"  {step.describe(hf)}", flush=True)
        if not dry_run:
            step.run(hf)
    if plan.then and not dry_run:
        print(f"rmclean: {plan.name} downloaded; next: {plan.then}")
