"""`init` planning (pure) and `doctor` reporting."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_template import template as t


@pytest.mark.parametrize("name", ["churn_model", "a", "model2", "x_y_z"])
def test_valid_names_are_accepted(name: str) -> None:
    assert t.check_package_name(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("2fast", "not a valid Python identifier"),
        ("my-project", "not a valid Python identifier"),
        ("class", "not a valid Python identifier"),
        ("", "not a valid Python identifier"),
        ("ChurnModel", "lowercase"),
        ("_private", "lowercase"),
    ],
)
def test_invalid_names_are_refused_naming_the_value(name: str, words: str) -> None:
    with pytest.raises(t.TemplateError) as err:
        t.check_package_name(name)
    assert words in str(err.value)
    assert repr(name) in str(err.value)


def test_replace_names_touches_import_and_distribution_names_only() -> None:
    # made-up names: this file is itself renamed by `init`, so it must not use the real one
    text = "import acme_old.cli\nname = 'acme-old'\nacme_olds stays\nAcme old stays"
    out = t.replace_names(text, "acme_old", "acme_new")
    assert out == "import acme_new.cli\nname = 'acme-new'\nacme_olds stays\nAcme old stays"


def test_plan_moves_package_edits_references_and_drops_examples() -> None:
    files = [
        ("src/acme_old/__init__.py", ""),
        ("src/acme_old/cli.py", "from acme_old import log\n"),
        ("dvc.yaml", "cmd: python -m acme_old ingest\n"),
        ("CHANGELOG.md", "created from acme_old\n"),
        ("examples/churn/churn.csv", "a,b\n"),
        ("models/blob.bin", None),
    ]
    plan = t.plan_rename(files, "acme_old", "acme_new", keep_examples=False)
    assert plan.moves == {
        "src/acme_old/__init__.py": "src/acme_new/__init__.py",
        "src/acme_old/cli.py": "src/acme_new/cli.py",
    }
    assert plan.edits == {
        "src/acme_new/cli.py": "from acme_new import log\n",
        "dvc.yaml": "cmd: python -m acme_new ingest\n",
    }
    assert plan.removals == ["examples/churn/churn.csv"]


def test_plan_keeps_examples_on_request_and_is_idempotent() -> None:
    files = [("examples/churn/README.md", "use acme_old\n"), ("src/acme_new/cli.py", "x")]
    kept = t.plan_rename(files, "acme_old", "acme_new", keep_examples=True)
    assert kept.removals == []
    assert kept.edits == {"examples/churn/README.md": "use acme_new\n"}
    again = t.plan_rename(
        [("src/acme_new/cli.py", "import acme_new")], "acme_new", "acme_new", True
    )
    assert again.empty


def test_doctor_reports_what_to_fix(tmp_path: Path) -> None:
    def runner(args: list[str], cwd: Path) -> tuple[int, str]:
        if args[:2] == ["git", "rev-parse"]:
            return (0, "true") if "--is-shallow-repository" in args else (0, str(cwd))
        if args[0] == "node":
            return 127, "node: not found"
        if args[:2] == ["dvc", "remote"]:
            return 0, "storage\ts3://bucket/path"
        if args[:2] == ["dvc", "status"]:
            return 255, "ERROR: unable to reach s3://bucket/path"
        return 0, "ok"

    findings = {f.name: f for f in t.doctor_checks(tmp_path, runner)}
    assert not findings["full git history"].ok
    assert "unshallow" in findings["full git history"].fix
    assert not findings["node"].ok
    assert not findings["dvc remote storage"].ok
    assert "unable to reach" in findings["dvc remote storage"].detail
    assert findings["params.yaml"].ok
