"""`registry register | promote | rollback | show | verify | resolve` and `serve-smoke`.

The model registry lives in GTO git tags (see `mlops_template.registry`). Exit codes:
0 = done (also when `promote` refuses: the decision is in reports/deploy/decision.json);
2 = user error (nothing registered at HEAD, stale outputs, a model file that fails its
sha256 check, ...); 3 = unexpected internal error. In GitHub Actions ($GITHUB_OUTPUT set)
the commands also write their results as step outputs: `version`, `tag`, `commit`,
and for promote/rollback `promoted`, `previous`, `model-sha256`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mlops_template import paths
from mlops_template.commands.common import EXIT_USER_ERROR, params, pipeline_is_fresh, user_errors
from mlops_template.files import json_number, read_json, write_json, write_text
from mlops_template.github import run_url
from mlops_template.log import get_logger

logger = get_logger("registry")

EXIT_INTERNAL_ERROR = 3
registry_app = typer.Typer(
    help="Model registry on GTO git tags: register, promote (gated), rollback, show.",
    no_args_is_help=True,
)


@contextlib.contextmanager
def registry_errors() -> Iterator[None]:
    """RegistryError / SmokeError -> one logged line and exit 2; anything else -> exit 3."""
    from mlops_template.registry import RegistryError
    from mlops_template.smoke import SmokeError

    try:
        with user_errors():
            yield
    except typer.Exit:
        raise
    except (RegistryError, SmokeError) as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except Exception:
        logger.exception("internal error (this is a bug)")
        raise typer.Exit(EXIT_INTERNAL_ERROR) from None


def github_output(**values: Any) -> None:
    """Append step outputs to $GITHUB_OUTPUT when running in GitHub Actions."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    with open(target, "a") as out:
        for key, value in values.items():
            text = (
                ""
                if value is None
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            out.write(f"{key.replace('_', '-')}={text.replace(chr(10), ' ')}\n")


def _require_fresh(root: Path, check: bool) -> None:
    from mlops_template.registry import RegistryError

    if check and not pipeline_is_fresh(root):
        raise RegistryError(
            "the pipeline outputs do not match this commit (`dvc status` is not clean): "
            "run `make run` first"
        )


def _model_name(root: Path) -> str:
    from mlops_template.registry import RegistryError, artifact_names

    name = params().registry.model_name
    known = artifact_names(root)
    if name not in known:
        raise RegistryError(
            f"registry.model_name: {name!r} is not an artifact in dvc.yaml (artifacts: "
            f"{known or 'none'}); add it under `artifacts:` or change the param"
        )
    return name


def _date(unix: int) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- register


@registry_app.command("register")
def register_command(
    bump: str = typer.Option(
        None, "--bump", help="major | minor | patch (default: params registry.bump)."
    ),
    push: bool = typer.Option(False, "--push", help="Push the version tag to --remote."),
    remote: str = typer.Option("origin", "--remote", help="Remote to push tags to."),
    check_fresh: bool = typer.Option(
        True, "--check-fresh/--no-check-fresh", help="Require `dvc status` to be clean."
    ),
) -> None:
    """Register the current commit as the next model version (tag NAME@vX.Y.Z)."""
    with registry_errors():
        from mlops_template import registry as r

        p = params()
        root = Path.cwd()
        chosen = bump or p.registry.bump
        if chosen not in ("major", "minor", "patch"):
            raise r.RegistryError(f"--bump {chosen!r}: expected major, minor or patch")
        name = _model_name(root)
        changed = r.uncommitted_changes(root)
        if changed:
            raise r.RegistryError(
                f"uncommitted changes in {', '.join(changed[:5])}: the registered commit would "
                "not be what was built; commit them (dvc.lock included) first"
            )
        _require_fresh(root, check_fresh)
        sha = r.verify_model_files(root)
        metrics = read_json(paths.METRICS)
        schema = read_json(paths.SCHEMA)
        state = r.load_state(root, name)
        commit = r.head_commit(root)
        existing = state.at_commit(commit)
        if existing is not None:
            logger.info(
                "%s is already registered as %s: nothing to do", commit[:8], existing.version
            )
            version, tag = existing.version, existing.tag
        else:
            version = r.next_version([v.version for v in state.versions], chosen)  # type: ignore[arg-type]
            message = r.registration_message(
                name, version, metrics, sha, schema.get("dataset_hash")
            )
            r.wait_for_next_second(state)
            tag = r.create_registration(root, name, commit, version, message)
            logger.info("registered %s at %s (%s bump): tag %s", version, commit[:8], chosen, tag)
        if push:
            r.push_tags(root, [tag], remote)
        github_output(version=version, tag=tag, commit=commit)


# ---------------------------------------------------------------- promote


def _candidate() -> tuple[Any, Any]:
    """The workspace's model (ModelArtifacts) and its test rows."""
    import pandas as pd

    from mlops_template.compare import workspace_side

    candidate = workspace_side()
    return candidate, pd.read_parquet(paths.TEST_DATA)


def _write_card(
    name: str,
    target: Any,
    decision: Any,
    previous_info: Any,
    candidate: Any,
    test: Any,
    comparison: Any,
    gate: Any,
    sha: dict[str, str],
    base_note: str,
) -> dict[str, Any]:
    """Write reports/deploy/model_card.md; return the metrics with intervals (JSON-ready)."""
    from mlops_template.compare import metrics_to_compare
    from mlops_template.model_card import CardContext, metric_intervals, render_model_card

    p = params()
    intervals = metric_intervals(
        comparison.y_true, comparison.classes, comparison.outputs_pr,
        metrics_to_compare(p.compare, p.gate, comparison.task),
        p.compare.bootstrap_resamples, p.compare.confidence, p.compare.seed, comparison.task,
    )  # fmt: skip
    card = render_model_card(
        CardContext(
            name=name,
            version=target.version,
            commit=target.commit,
            promoted=decision.promoted,
            decision_reasons=decision.reasons,
            previous=previous_info.version if previous_info else None,
            previous_commit=previous_info.commit if previous_info else None,
            schema=candidate.schema,
            params=candidate.params,
            train_info=read_json(paths.TRAIN_INFO),
            model_sha256=sha,
            intervals=intervals,
            test_rows=len(test),
            resamples=p.compare.bootstrap_resamples,
            confidence=p.compare.confidence,
            comparison=comparison if comparison.base_available else None,
            gate=gate,
            base_note=base_note,
            validation=candidate.validation,
            run_url=run_url(os.environ),
        )
    )
    write_text(paths.MODEL_CARD, card)
    return {
        m: {"value": json_number(i.value), "ci": [json_number(i.low), json_number(i.high)]}
        for m, i in intervals.items()
    }


def _promote(
    version: str | None, skip_gate: bool, check_fresh: bool
) -> tuple[dict[str, Any], list[str]]:
    """The gated promotion; returns (decision.json payload, tags created)."""
    from mlops_template import registry as r
    from mlops_template.compare import base_side, compare, decide_gate
    from mlops_template.worktree import BaseRefError, obtain_base

    p = params()
    root = Path.cwd()
    name = _model_name(root)
    state = r.load_state(root, name)
    commit = r.head_commit(root)
    if version is not None:
        r.parse_version(version)
        target = state.version(version)
        if target is None:
            raise r.RegistryError(f"--version {version}: not a registered version of {name}")
        if target.commit != commit:
            raise r.RegistryError(
                f"{target.tag} is commit {target.commit[:8]} but HEAD is {commit[:8]}: check out "
                f"{target.tag} and run `make run` first (promotion scores the workspace's model)"
            )
    else:
        target = state.at_commit(commit)
        if target is None:
            raise r.RegistryError(
                f"no version of {name} is registered at HEAD ({commit[:8]}): run "
                "`make register` first"
            )
    _require_fresh(root, check_fresh)
    recorded = (target.metadata.get("model_sha256") or {}).get(paths.MODEL_ONNX.name)
    sha = r.verify_model_files(root, expected_onnx=recorded)
    candidate, test = _candidate()

    previous = state.current(r.PROD)
    previous_info = state.version(previous) if previous else None
    base_status: r.BaseStatus = "none"
    base_reason = ""
    base_model = None
    if previous_info is not None and previous != target.version:
        try:
            base = obtain_base(previous_info.commit, root)
            base_status, base_reason = base.status, base.reason
        except BaseRefError as exc:
            base, base_status, base_reason = None, "failed", str(exc)
        if base is not None and base.available:
            logger.info(
                "prod %s (%s) reproduced in %.1fs: %d stage(s) from the run-cache, %d run",
                previous, previous_info.commit[:8], base.seconds,
                len(base.stages_restored), len(base.stages_run),
            )  # fmt: skip
            base_model = base_side(base)
        else:
            logger.warning("prod %s could not be reproduced: %s", previous, base_reason)
    comparison = compare(
        candidate, base_model, test, p.compare, p.gate, base_missing_reason=base_reason
    )
    gate = decide_gate(comparison, p.gate)
    decision = r.decide_promotion(
        target.version,
        previous,
        base_status,
        base_reason or comparison.base_note,
        comparison.metrics,
        gate,
        comparison.base_available,
        skip_gate=skip_gate,
    )

    created: list[str] = []
    stage_tag = None
    if decision.promoted and decision.kind != "already":
        r.wait_for_next_second(state)
        stage_tag = r.create_assignment(
            root, state, target.version, f"Promote {name} {target.version} to {r.PROD}: "
            + "; ".join(decision.reasons)[:2000],
        )  # fmt: skip
        created.append(stage_tag)

    metrics = _write_card(
        name,
        target,
        decision,
        previous_info if previous != target.version else None,
        candidate,
        test,
        comparison,
        gate,
        sha,
        base_reason or comparison.base_note,
    )
    payload = decision.to_json() | {
        "name": name,
        "tag": target.tag,
        "commit": target.commit,
        "model_sha256": sha[paths.MODEL_ONNX.name],
        "stage_tag": stage_tag,
        "gate": gate.to_json(),
        "metrics": metrics,
        "comparison": {
            m.name: {
                "prod": json_number(m.base),
                "new": json_number(m.pr),
                "delta": json_number(m.delta),
                "ci": [json_number(m.ci_low), json_number(m.ci_high)],
                "verdict": m.verdict,
            }
            for m in comparison.metrics
        }
        if comparison.base_available
        else None,
    }
    return payload, created


@registry_app.command("promote")
def promote_command(
    version: str = typer.Option(
        None, "--version", help="Version to promote (default: the one registered at HEAD)."
    ),
    skip_gate: bool = typer.Option(
        False, "--skip-gate", help="Promote even if the gate refuses (a person's decision)."
    ),
    push: bool = typer.Option(False, "--push", help="Push the version and stage tags."),
    remote: str = typer.Option("origin", "--remote", help="Remote to push tags to."),
    check_fresh: bool = typer.Option(
        True, "--check-fresh/--no-check-fresh", help="Require `dvc status` to be clean."
    ),
) -> None:
    """Compare with prod (rebuilt from its commit) and assign prod if the gate passes.

    Writes reports/deploy/decision.json and reports/deploy/model_card.md; exits 0 whether
    or not the version was promoted."""
    from mlops_template import registry as r

    started = time.perf_counter()
    with registry_errors():
        payload, created = _promote(version, skip_gate, check_fresh)
        write_json(paths.DEPLOY_DECISION, payload)
        if push:
            r.push_tags(Path.cwd(), [payload["tag"], *created], remote)
        level = 20 if payload["promoted"] else 30
        logger.log(
            level,
            "%s %s %s (prod was %s) in %.1fs",
            payload["name"],
            payload["version"],
            "PROMOTED to prod" if payload["promoted"] else "NOT promoted",
            payload["previous"] or "none",
            time.perf_counter() - started,
        )
        for reason in payload["reasons"]:
            logger.log(level, "  %s", reason)
        logger.info("wrote %s and %s", paths.DEPLOY_DECISION, paths.MODEL_CARD)
        github_output(
            promoted=payload["promoted"],
            version=payload["version"],
            previous=payload["previous"],
            tag=payload["tag"],
            commit=payload["commit"],
            model_sha256=payload["model_sha256"],
        )


# ---------------------------------------------------------------- rollback, resolve


@registry_app.command("rollback")
def rollback_command(
    push: bool = typer.Option(False, "--push", help="Push the stage tags."),
    remote: str = typer.Option("origin", "--remote", help="Remote to push tags to."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would change."),
    expect: str = typer.Option(
        None, "--expect", help="Refuse unless the rollback target is this version."
    ),
) -> None:
    """Assign prod back to the previous production version (and unassign the current one)."""
    with registry_errors():
        from mlops_template import registry as r

        root = Path.cwd()
        name = _model_name(root)
        state = r.load_state(root, name)
        current, target = r.rollback_target(state)
        if expect is not None and expect != target:
            raise r.RegistryError(
                f"--expect {expect}: the rollback target is now {target} (prod is {current})"
            )
        info = state.version(target)
        assert info is not None
        if dry_run:
            logger.info("would roll %s back from %s to %s", r.PROD, current, target)
            github_output(version=target, previous=current, tag=info.tag, commit=info.commit)
            return
        r.wait_for_next_second(state)
        unassigned = r.create_unassignment(root, state, current, f"Roll back {name} {current}")
        state = r.load_state(root, name)
        r.wait_for_next_second(state)
        assigned = r.create_assignment(
            root, state, target, f"Roll back {name} {r.PROD} from {current} to {target}"
        )
        reasons = [
            f"rollback: {current} unassigned from {r.PROD} ({unassigned}), {target} assigned ({assigned})"
        ]
        sha = (info.metadata.get("model_sha256") or {}).get(paths.MODEL_ONNX.name)
        payload = r.PromotionDecision(True, target, current, reasons, "rollback").to_json() | {
            "name": name,
            "tag": info.tag,
            "commit": info.commit,
            "model_sha256": sha,
            "stage_tag": assigned,
        }
        if r.head_commit(root) == info.commit and sha is not None:
            # The target's commit is checked out and built (promote.yaml): verify its model
            # and write its card, so the deploy publishes the same files as a promotion.
            from mlops_template.compare import compare

            p = params()
            files = r.verify_model_files(root, expected_onnx=sha)
            candidate, test = _candidate()
            comparison = compare(candidate, None, test, p.compare, p.gate)
            payload["metrics"] = _write_card(
                name, info, r.PromotionDecision(True, target, current, reasons, "rollback"),
                state.version(current), candidate, test, comparison, None, files,
                f"rollback from {current}: no comparison is made, {target} was in {r.PROD} before",
            )  # fmt: skip
        write_json(paths.DEPLOY_DECISION, payload)
        if push:
            r.push_tags(root, [unassigned, assigned], remote)
        logger.info("%s rolled back: %s -> %s", r.PROD, current, target)
        github_output(
            promoted=True, version=target, previous=current, tag=info.tag, commit=info.commit,
            model_sha256=sha,
        )  # fmt: skip


@registry_app.command("resolve")
def resolve_command(
    version: str = typer.Option(None, "--version", help="A registered version, e.g. v0.3.0."),
    rollback: bool = typer.Option(False, "--rollback", help="The rollback target instead."),
    stage: str = typer.Option(None, "--stage", help="The version in this stage, e.g. prod."),
) -> None:
    """Which version a manual deploy would use (for promote.yaml), or the one in a stage:
    version, tag, commit as step outputs."""
    with registry_errors():
        from mlops_template import registry as r

        root = Path.cwd()
        state = r.load_state(root, _model_name(root))
        if sum((rollback, bool(version), bool(stage))) != 1:
            raise r.RegistryError(
                "give exactly one of --version VERSION, --stage STAGE or --rollback"
            )
        if rollback:
            _, version = r.rollback_target(state)
        elif stage:
            version = state.current(stage)
            if version is None:
                raise r.RegistryError(f"--stage {stage}: no version is in this stage yet")
        else:
            r.parse_version(version)
        info = state.version(version)
        if info is None:
            raise r.RegistryError(f"--version {version}: not a registered version")
        logger.info("%s: %s at %s", info.version, info.tag, info.commit[:8])
        github_output(version=info.version, tag=info.tag, commit=info.commit)


# ---------------------------------------------------------------- verify, show


@registry_app.command("verify")
def verify_command(
    sha256: str = typer.Option(None, "--sha256", help="Expected sha256 of models/model.onnx."),
    version: str = typer.Option(
        None, "--version", help="Check against the sha256 recorded when VERSION was registered."
    ),
) -> None:
    """Check the model files' sha256 (train_info.json, and the registered one) before publishing."""
    with registry_errors():
        from mlops_template import registry as r

        root = Path.cwd()
        expected = sha256
        if version is not None:
            info = r.load_state(root, _model_name(root)).version(version)
            if info is None:
                raise r.RegistryError(f"--version {version}: not a registered version")
            recorded = (info.metadata.get("model_sha256") or {}).get(paths.MODEL_ONNX.name)
            if recorded is None:
                raise r.RegistryError(f"{info.tag}: its message records no model sha256")
            if expected is not None and expected != recorded:
                raise r.RegistryError(f"--sha256 {expected} differs from {info.tag}'s {recorded}")
            expected = recorded
        found = r.verify_model_files(root, expected_onnx=expected)
        logger.info(
            "model files verified: %s",
            ", ".join(f"{k} {v[:12]}…" for k, v in sorted(found.items())),
        )


def render_show(state: Any, metric_names: list[str]) -> str:
    """The registry as text: versions (newest first) with stages and metrics, then history."""
    header = ["version", "commit", "registered (UTC)", "stages", *metric_names]
    rows = []
    for info in reversed(state.versions):
        metrics = info.metrics
        rows.append(
            [
                info.version,
                info.commit[:8],
                _date(info.created),
                ",".join(state.stages(info.version)) or "-",
                *[
                    f"{metrics[m]:.4f}" if isinstance(metrics.get(m), (int, float)) else "n/a"
                    for m in metric_names
                ],
            ]
        )
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    from mlops_template.registry import PROD

    prod = state.current(PROD)
    out = [
        f"{state.name}: {len(state.versions)} version(s), {PROD} = {prod or 'none'} "
        "(metrics: each version's own evaluation, from its registration tag)",
        line(header),
        *[line(r) for r in rows],
    ]
    if state.events:
        out += ["", "stage history (newest first):"]
        for event in reversed(state.events):
            action = "assigned" if event.assigned else "unassigned"
            out.append(
                f"  {event.tag:<18} {event.version:<8} {event.stage} {action:<10} "
                f"{_date(event.created)}"
            )
    return "\n".join(out)


@registry_app.command("show")
def show_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Versions, stages and metrics (read from the GTO tags; no DVC cache needed)."""
    import json

    from mlops_template.compare import metrics_to_compare

    with registry_errors():
        from mlops_template import registry as r

        root = Path.cwd()
        p = params()
        state = r.load_state(root, _model_name(root))
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "name": state.name,
                        "stages": {r.PROD: state.current(r.PROD)},
                        "versions": [
                            {
                                "version": v.version,
                                "commit": v.commit,
                                "tag": v.tag,
                                "stages": state.stages(v.version),
                                "metrics": v.metrics,
                                "model_sha256": v.metadata.get("model_sha256"),
                            }
                            for v in reversed(state.versions)
                        ],
                        "history": [e.__dict__ for e in state.events],
                    },
                    indent=2,
                )
            )
            return
        typer.echo(render_show(state, metrics_to_compare(p.compare)))


# ---------------------------------------------------------------- smoke test


def serve_smoke(
    url: str = typer.Option(None, "--url", help="Base URL of a running API."),
    image: str = typer.Option(None, "--image", help="Container image to run and test instead."),
    expect_version: str = typer.Option(None, "--expect-version", help="Required model_version."),
    expect_sha256: str = typer.Option(None, "--expect-sha256", help="Required model sha256."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for /health."),
    container_port: int = typer.Option(8000, "--container-port", help="Port inside the image."),
) -> None:
    """Smoke-test the serving API: /health, /metadata and one /predict."""
    from mlops_template.smoke import SmokeError, container, smoke_test

    with registry_errors():
        if (url is None) == (image is None):
            raise SmokeError("give exactly one of --url URL or --image IMAGE")
        with contextlib.ExitStack() as stack:
            target = url or stack.enter_context(container(image, container_port))
            result = smoke_test(target, expect_version, expect_sha256, timeout)
        logger.info(
            "smoke test passed: %s serves %s (sha256 %s…), one row predicted %r, %.1fs",
            image or url, result.model_version, (result.model_sha256 or "?")[:12],
            result.prediction, result.seconds,
        )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
    app.command("serve-smoke")(serve_smoke)
