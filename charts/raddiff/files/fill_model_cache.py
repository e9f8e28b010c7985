"""Fill RadDiff's model cache: run once, by the model-cache-fill Job, where the cluster reaches the hubs.

The plan is a JSON list; each entry names a folder under the cache and one source:
  {"dir": "chexagent", "hf": "StanfordAIMI/CheXagent-2-3b", "revision": "main"}   a Hugging Face snapshot
  {"dir": "chexzero", "url": "https://...", "sha256": "...", "file": "name.pt"}    one file, checked
An entry whose source is empty is skipped with a note. A folder is written under a temporary name and
renamed when complete, so the services never load half a model; a finished folder is kept as it is, so
running the Job again fetches only what is missing. Exit 0 when every non-skipped entry is in place,
2 on a malformed plan, 1 when a download fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

DONE_MARK = ".raddiff-complete"


class PlanError(ValueError):
    """The plan itself is wrong; retrying cannot help."""


def read_plan(path: Path) -> list[dict[str, str]]:
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan {path} is not JSON: {exc}") from None
    if not isinstance(entries, list):
        raise PlanError(f"plan {path} must be a JSON list of entries")
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("dir"):
            raise PlanError(f"plan entry {i} needs a 'dir'")
        name = str(entry["dir"])
        if "/" in name or name in (".", "..") or name.startswith("."):
            raise PlanError(f"plan entry {i}: dir {name!r} must be one plain folder name")
        if name in seen:
            raise PlanError(f"plan entry {i}: dir {name!r} appears twice")
        seen.add(name)
        if "hf" in entry and "url" in entry:
            raise PlanError(f"plan entry {i} ({name}) names both 'hf' and 'url'; use one")
        if entry.get("url") and not entry.get("file"):
            raise PlanError(f"plan entry {i} ({name}) has a url but no 'file' to save it as")
    return entries


def fetch_url(url: str, target: Path, sha256: str) -> None:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as reply, target.open("wb") as out:
        for chunk in iter(lambda: reply.read(1 << 20), b""):
            digest.update(chunk)
            out.write(chunk)
    if sha256 and digest.hexdigest() != sha256.lower():
        raise OSError(f"{url}: sha256 {digest.hexdigest()} does not match the plan's {sha256}")


def fetch_hf(repo: str, revision: str, folder: Path) -> None:
    from huggingface_hub import snapshot_download  # only the hf entries need it

    snapshot_download(repo_id=repo, revision=revision or None, local_dir=folder, token=os.environ.get("HF_TOKEN"))


def fill(entries: list[dict[str, str]], cache: Path) -> list[str]:
    """Fetch every entry not yet complete; returns one line of report per entry."""
    report = []
    for entry in entries:
        name = entry["dir"]
        final = cache / name
        if (final / DONE_MARK).exists():
            report.append(f"{name}: already complete")
            continue
        if not entry.get("hf") and not entry.get("url"):
            report.append(f"{name}: skipped (no source set in the plan)")
            continue
        partial = cache / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if entry.get("hf"):
            fetch_hf(entry["hf"], entry.get("revision", ""), partial)
            source = f"hf:{entry['hf']}@{entry.get('revision') or 'default'}"
        else:
            fetch_url(entry["url"], partial / entry["file"], entry.get("sha256", ""))
            source = entry["url"]
        (partial / DONE_MARK).write_text(source + "\n")
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        report.append(f"{name}: fetched from {source}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="the model cache folder (RADDIFF_MODEL_DIR)")
    args = parser.parse_args(argv)
    try:
        entries = read_plan(args.plan)
    except PlanError as exc:
        print(f"fill_model_cache: {exc}", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        report = fill(entries, args.cache)
    except OSError as exc:
        print(f"fill_model_cache: download failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
