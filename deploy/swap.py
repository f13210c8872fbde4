"""A running deployment takes the predictor versions now in `model_repository/length_predictor/`
(a retrained `<N+1>`, or a rollback), without a restart.

The deploy starts tritonserver with explicit model control and the repository API behind a key
(deploy.triton.RepositoryAccess). This links the source model folder's numeric versions into the
rendered repository (and unlinks retired ones), then asks Triton to load `length_predictor`: Triton
loads the latest version beside the serving one and unloads the old one once the new is ready
(version policy latest 1), so requests keep flowing and the ensemble's `model_version: -1` moves to
the new version; requests already scored are not re-scored or re-ordered. When the new version's
tokenizer differs from the one it replaces, `preprocessing` (which tokenizes for the predictor) is
loaded again too, right after.

    python -m deploy.swap [--state-dir .deploy] [--http-url TRITON_HOST:PORT]

The repository API is Triton's, on its private HTTP port (the door refuses it): by default the
one `make deploy` wrote to `<state-dir>/ports.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path

from deploy.supervisor import PORTS_FILE
from deploy.triton import RepositoryAccess
from repo_paths import REPO_ROOT, SOURCE_REPOSITORY
from runtime.predictor_version import mark_serving

PREDICTOR = "length_predictor"
PREPROCESSING = "preprocessing"


def _numeric(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.isdigit() and p.is_dir()} if folder.is_dir() else set()


def sync_versions(source_model_dir: Path, rendered_model_dir: Path) -> tuple[list[str], list[str]]:
    """Make the rendered model folder's version links match the source's numeric versions."""
    source, rendered = _numeric(source_model_dir), _numeric(rendered_model_dir)
    added, removed = sorted(source - rendered, key=int), sorted(rendered - source, key=int)
    for v in added:
        (rendered_model_dir / v).symlink_to((source_model_dir / v).resolve())
    for v in removed:
        link = rendered_model_dir / v
        if link.is_symlink():
            link.unlink()
        else:
            raise RuntimeError(f"{link} is a real folder, not a link to the source: not removing it")
    return added, removed


def ready_versions(http_url: str, model: str) -> list[str]:
    """The versions Triton serves now (model metadata; not a restricted API)."""
    with urllib.request.urlopen(f"http://{http_url}/v2/models/{model}", timeout=10) as resp:
        return sorted(json.loads(resp.read()).get("versions", []), key=int)


def load_model(http_url: str, access: RepositoryAccess, model: str, timeout_s: float = 300) -> None:
    """POST the repository API's load (it returns when the model is loaded or failed)."""
    req = urllib.request.Request(
        f"http://{http_url}/v2/repository/models/{model}/load", data=b"{}",
        headers={"Content-Type": "application/json", **access.headers()},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s):
            return
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"loading {model} failed: HTTP {err.code} {err.read().decode(errors='replace')}") from None


def _tokenizer_hash(version_dir: Path) -> str:
    path = version_dir / "tokenizer.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def swap(rendered_repo: Path, http_url: str, access: RepositoryAccess, source_repo: Path = SOURCE_REPOSITORY) -> dict:
    """Sync, load, check; returns what happened (versions before and after)."""
    rendered = Path(rendered_repo) / PREDICTOR
    before = ready_versions(http_url, PREDICTOR)
    old_dir = rendered / before[-1] if before else None
    added, removed = sync_versions(Path(source_repo) / PREDICTOR, rendered)
    target = max(_numeric(rendered), key=int)
    load_model(http_url, access, PREDICTOR)
    after = ready_versions(http_url, PREDICTOR)
    tokenizer_changed = old_dir is not None and _tokenizer_hash(old_dir.resolve()) != _tokenizer_hash(rendered / target)
    if tokenizer_changed:
        load_model(http_url, access, PREPROCESSING)
    if after != [target]:
        raise RuntimeError(f"{PREDICTOR}: expected version {target} to serve, Triton reports {after}")
    mark_serving(rendered, target)  # what the scheduler reads for its log rows and metrics
    return {"before": before, "after": after, "linked": added, "unlinked": removed, "preprocessing_reloaded": tokenizer_changed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".deploy")
    ap.add_argument("--http-url", default="", help="Triton's private HTTP address (default: from ports.json)")
    args = ap.parse_args(argv)
    if not args.http_url:
        try:
            args.http_url = f"127.0.0.1:{json.loads((args.state_dir / PORTS_FILE).read_text())['http']}"
        except FileNotFoundError:
            print(f"no {PORTS_FILE} in {args.state_dir}: is a deployment (make deploy) running from it?")
            return 1
    try:
        access = RepositoryAccess.load(args.state_dir)
    except FileNotFoundError:
        print(f"no repository API key in {args.state_dir}: is a deployment (make deploy) running from it?")
        return 1
    result = swap(args.state_dir / "model_repository", args.http_url, access)
    print(f"{PREDICTOR}: versions {result['before']} -> {result['after']}"
          + (" (preprocessing reloaded: new tokenizer)" if result["preprocessing_reloaded"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
