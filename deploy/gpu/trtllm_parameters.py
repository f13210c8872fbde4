"""The `parameters` of TensorRT-LLM's `tensorrt_llm` model for the pinned backend, kept as data
(deploy/gpu/tensorrt_llm/template_parameters.json) so that the rendered config is checked against
NVIDIA's own list instead of our memory of it.

Two lists come out of NVIDIA's sources:
- `known`: every key of the official template
  (`inflight_batcher_llm/tensorrt_llm/config.pbtxt`); a key outside it is a typo the backend ignores.
- `required`: keys the C++ backend reads with no default (a `GetParameter` call outside any `try`
  block in `model_instance_state.cc` / `model_state.cc`); without one the model fails to load with
  "Cannot find parameter with name: ...". NVIDIA's template always carries them (empty = off).
- `optional`: keys the backend reads inside a `try` block (a default when absent) that the template
  does not carry, e.g. `recv_poll_period_ms`: valid, though not in `known`.

Refresh after changing the pinned TensorRT-LLM version (docs/gpu.md, "Pinned versions"):

    git clone --depth 1 --branch v1.0.0 https://github.com/NVIDIA/TensorRT-LLM.git build/TensorRT-LLM
    .venv/bin/python -m deploy.gpu.trtllm_parameters --source build/TensorRT-LLM --version 1.0.0 \\
        --origin "NVIDIA/TensorRT-LLM tag v1.0.0"

or, from any git clone without a work tree: `--git-dir DIR --ref v1.0.0`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_PARAMETERS = Path(__file__).resolve().parent / "tensorrt_llm" / "template_parameters.json"

# Where the template and the backend sources sit: TensorRT-LLM >= 0.20 carries the Triton backend
# under triton_backend/; triton-inference-server/tensorrtllm_backend <= 0.19 at its root.
SOURCE_LAYOUTS = ("triton_backend/", "")
TEMPLATE_PATH = "all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt"
BACKEND_SOURCES = ("inflight_batcher_llm/src/model_instance_state.cc", "inflight_batcher_llm/src/model_state.cc")

_PARAMETER = re.compile(r'parameters:?\s*\{\s*key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"')
_GET_PARAMETER = re.compile(r'GetParameter<[^(;]*>\(\s*"([^"]+)"\s*\)')


@dataclass(frozen=True)
class TemplateParameters:
    version: str  # the TensorRT-LLM version this list is declared for (the pinned one)
    origin: str  # where the files were read from (repository, tag or commit)
    known: dict[str, str]  # key -> the template's value (mostly a ${placeholder})
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()  # read by the backend (with a default), absent from the template

    def problems(self, parameters: dict[str, str]) -> list[str]:
        """Both directions: nothing unknown, nothing required missing."""
        unknown = sorted(set(parameters) - set(self.known) - set(self.optional))
        missing = sorted(set(self.required) - set(parameters))
        return ([f"tensorrt_llm parameter {k!r} is not in TensorRT-LLM {self.version}'s template nor read by its backend"
                 for k in unknown]
                + [f"tensorrt_llm lacks parameter {k!r}, which TensorRT-LLM {self.version} reads without a default"
                   for k in missing])

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "origin": self.origin, "template": TEMPLATE_PATH,
                           "backend_sources": list(BACKEND_SOURCES), "required": list(self.required),
                           "optional": list(self.optional), "known": self.known}, indent=2) + "\n"


def load_template_parameters(path: Path = TEMPLATE_PARAMETERS) -> TemplateParameters:
    data = json.loads(Path(path).read_text())
    return TemplateParameters(data["version"], data["origin"], dict(data["known"]), tuple(data["required"]),
                              tuple(data.get("optional", ())))


def config_parameters(config) -> dict[str, str]:
    """A ModelConfig's parameters as plain strings."""
    return {k: v.string_value for k, v in config.parameters.items()}


def template_parameters(template_text: str) -> dict[str, str]:
    """Keys and values of the template's `parameters` entries (the file has ${...} placeholders
    outside strings, so it does not parse as a ModelConfig before filling)."""
    uncommented = re.sub(r"(?m)^\s*#.*$", "", template_text)  # the template comments some entries out
    found = dict(_PARAMETER.findall(uncommented))
    if not found:
        raise ValueError("no `parameters { key ... string_value ... }` entries in the template")
    return found


def _code_only(source: str) -> str:
    """The C++ text with comments blanked and string/char literals emptied (kept as "" / ''), so
    braces inside them do not count; GetParameter's literal names are taken before this."""
    out, i, n = [], 0, len(source)
    while i < n:
        two = source[i:i + 2]
        if two == "//":
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif two == "/*":
            j = source.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif source[i] in "\"'":
            quote, j = source[i], i + 1
            while j < n and source[j] != quote:
                j += 2 if source[j] == "\\" else 1
            out.append(quote * 2)
            i = j + 1
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


def unguarded_parameter_reads(cpp_source: str) -> list[str]:
    """Names passed as string literals to `GetParameter<...>("name")` outside every `try { }` block:
    the backend throws when such a key is absent. Reads inside a try fall back to a default."""
    names = iter(_GET_PARAMETER.findall(cpp_source))
    code = _code_only(_GET_PARAMETER.sub(lambda m: "GetParameter(@)", cpp_source))
    unguarded, stack, pending_try = [], [], False
    for token in re.finditer(r"\btry\b|[{}]|GetParameter\(@\)", code):
        text = token.group()
        if text == "try":
            pending_try = True
        elif text == "{":
            stack.append(pending_try)
            pending_try = False
        elif text == "}":
            if stack:
                stack.pop()
        else:
            name = next(names)
            if not any(stack):
                unguarded.append(name)
    return sorted(set(unguarded))


def parameter_reads(cpp_source: str) -> list[str]:
    """Every name passed as a string literal to `GetParameter<...>("name")`, guarded or not."""
    return sorted(set(_GET_PARAMETER.findall(cpp_source)))


def _reader(source: Path | None, git_dir: Path | None, ref: str | None):
    if source is not None:
        return lambda rel: (Path(source) / rel).read_text() if (Path(source) / rel).is_file() else None

    def from_git(rel: str) -> str | None:
        shown = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{ref}:{rel}"], capture_output=True, text=True)
        return shown.stdout if shown.returncode == 0 else None

    return from_git


def read_sources(version: str, origin: str, source: Path | None = None, git_dir: Path | None = None,
                 ref: str | None = None) -> TemplateParameters:
    """The lists from a TensorRT-LLM (or tensorrtllm_backend) checkout, or from a git ref."""
    read = _reader(source, git_dir, ref)
    for prefix in SOURCE_LAYOUTS:
        template = read(prefix + TEMPLATE_PATH)
        if template is not None:
            break
    else:
        raise FileNotFoundError(f"no {TEMPLATE_PATH} (with or without triton_backend/) in {source or f'{git_dir}@{ref}'}")
    known = template_parameters(template)
    required: set[str] = set()
    read_at_all: set[str] = set()
    for rel in BACKEND_SOURCES:
        text = read(prefix + rel)
        if text is None:
            raise FileNotFoundError(f"no {prefix + rel} next to the template")
        required |= set(unguarded_parameter_reads(text))
        read_at_all |= set(parameter_reads(text))
    if not_in_template := required - set(known):
        raise ValueError(f"the backend requires {sorted(not_in_template)}, which its template lacks")
    return TemplateParameters(version, origin, known, tuple(sorted(required)), tuple(sorted(read_at_all - set(known))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="a TensorRT-LLM checkout at the pinned tag")
    where.add_argument("--git-dir", type=Path, help="a git directory; read with `git show REF:path`")
    ap.add_argument("--ref", help="tag or commit, with --git-dir")
    ap.add_argument("--version", required=True, help="the TensorRT-LLM version the list is for (deploy/gpu/bundle.py)")
    ap.add_argument("--origin", required=True, help="what was read, e.g. 'NVIDIA/TensorRT-LLM tag v1.0.0'")
    ap.add_argument("--out", type=Path, default=TEMPLATE_PARAMETERS)
    args = ap.parse_args(argv)
    if args.git_dir is not None and not args.ref:
        ap.error("--git-dir needs --ref")
    params = read_sources(args.version, args.origin, args.source, args.git_dir, args.ref)
    args.out.write_text(params.to_json())
    print(f"{args.out}: {len(params.known)} known, required {', '.join(params.required)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
