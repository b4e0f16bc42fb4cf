""".github/actions/setup-cml under act: download, sha256 check, install, token sent.

The action runs for real in a one-step probe workflow; only github.com is replaced, by
the loopback release server of tests/workflows/downloads.py (SETUP_CML_TEST_BASE_URL,
honoured for http://127.0.0.1 only), which serves the `cml` recorder as the asset and
records each request's Authorization header.
"""

from __future__ import annotations

import hashlib

import pytest
from tests.workflows.act import ActResult, GitRepo, World, make_repo, push_event
from tests.workflows.downloads import RECORDER, downloads

pytestmark = pytest.mark.slow

PROBE = """name: setup-cml probe
on: push
permissions: {}
jobs:
  probe:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - name: Check out (a local action is read from the checkout, on GitHub as here)
        uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credentials: false
      - name: Set up CML
        uses: ./.github/actions/setup-cml
      - name: Use cml
        run: |
          command -v cml
          sha256sum "$(command -v cml)"
"""
SETUP = "Set up CML"
USE = "Use cml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("github"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    repo = make_repo(tmp_path_factory.mktemp("repo") / "probe", "acme/probe")
    repo.commit("setup-cml probe", {".github/workflows/probe.yaml": PROBE})
    return repo


def probe(world: World, repo: GitRepo, **env: str) -> ActResult:
    return world.act(repo, "push", push_event(repo), "probe.yaml", env=env)


def cml_requests() -> list[dict[str, str]]:
    server = downloads()
    return server.requests_for(server.cml_path)


def test_the_verified_asset_lands_on_path_and_the_token_was_sent(
    world: World, repo: GitRepo
) -> None:
    before = len(cml_requests())
    result = probe(world, repo)
    assert result.succeeded, result
    assert result.step_succeeded(USE), result
    recorder_sha = hashlib.sha256(RECORDER.read_bytes()).hexdigest()
    assert f"{recorder_sha}  " in result.output  # the cml on PATH is the served file
    assert "setup-cml-v0.20.5/cml" in result.output  # installed by the action, not found
    (request,) = cml_requests()[before:]
    assert request["authorization"] == "Bearer test-token"  # the run's github.token


def test_a_wrong_checksum_fails_and_installs_nothing(world: World, repo: GitRepo) -> None:
    before = len(cml_requests())
    result = probe(world, repo, SETUP_CML_TEST_SHA256="0" * 64)
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "CML checksum mismatch" in result.output
    assert not result.step_ran(USE)
    assert len(cml_requests()) == before + 1  # it did download, then refused


def test_without_a_pinned_checksum_it_fails_closed_before_downloading(
    world: World, repo: GitRepo
) -> None:
    """The real configuration: no test base URL, and CML_SHA256 not recorded yet."""
    before = len(downloads().requests)
    result = probe(world, repo, SETUP_CML_TEST_BASE_URL="")
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "CML checksum not pinned" in result.output
    assert not result.step_ran(USE)
    assert len(downloads().requests) == before


def test_the_test_override_is_refused_for_anything_but_loopback(
    world: World, repo: GitRepo
) -> None:
    result = probe(world, repo, SETUP_CML_TEST_BASE_URL="https://example.com/cml/download")
    assert result.returncode != 0, result
    assert result.step_failed(SETUP), result
    assert "must be http://127.0.0.1:PORT/" in result.output
    assert not result.step_ran(USE)
