"""Install a distribution by hand: a dist-info (METADATA, entry_points.txt) and its files in a folder.

Offline and instant, yet importlib.metadata sees it exactly like a pip-installed distribution
once the folder is on sys.path or PYTHONPATH, so the registry loads it through its entry point.
"""

from __future__ import annotations

from pathlib import Path

ENTRY_POINT_GROUP = "modelzoo"


def write_distribution(site: Path, name: str, version: str, entry_points: dict, files: dict) -> Path:
    """Write `files` ({relative path: text}) into `site` with a dist-info declaring `entry_points` ({name: module})."""
    site = Path(site)
    for relative, text in files.items():
        target = site / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{ep} = {module}" for ep, module in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dist_info
