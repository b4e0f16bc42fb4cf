"""Links built from the runner's variables: only well-formed ones become links."""

from __future__ import annotations

import pytest

from mlops_template import github


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "GITHUB_SERVER_URL": "https://github.com",
                "GITHUB_REPOSITORY": "octo/repo",
                "GITHUB_RUN_ID": "123",
            },
            "https://github.com/octo/repo/actions/runs/123",
        ),
        ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "octo/repo"}, None),
        (
            {
                "GITHUB_SERVER_URL": "https://github.com",
                "GITHUB_REPOSITORY": "octo/repo) [x](http://evil",
                "GITHUB_RUN_ID": "1",
            },
            None,
        ),
        (
            {
                "GITHUB_SERVER_URL": "javascript:alert(1)",
                "GITHUB_REPOSITORY": "octo/repo",
                "GITHUB_RUN_ID": "1",
            },
            None,
        ),
        ({}, None),
    ],
)
def test_run_url_only_from_well_formed_variables(env: dict[str, str], expected: str | None) -> None:
    assert github.run_url(env) == expected


def test_repository_url_defaults_the_server_and_refuses_anything_else() -> None:
    assert (
        github.repository_url({"GITHUB_REPOSITORY": "octo/repo"}) == "https://github.com/octo/repo"
    )
    assert (
        github.repository_url(
            {"GITHUB_SERVER_URL": "http://127.0.0.1:8080", "GITHUB_REPOSITORY": "octo/repo"}
        )
        == "http://127.0.0.1:8080/octo/repo"
    )
    assert github.repository_url({"GITHUB_REPOSITORY": "octo/repo/../x"}) is None
    assert github.repository_url({}) is None
