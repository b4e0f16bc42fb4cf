"""Batch scoring (`python -m mlops_template predict`): the API's predictions for the same
rows, bad rows refused into the rejects file, CSV/Parquet/directory inputs and outputs,
flat memory on a file 10x larger, and the prediction log keyed like the output."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset
from tests.helpers import tool_env
from tests.serving.conftest import MixedModel, copy_served_files, records
from tests.serving.test_api import in_process_app, wait_ready

from mlops_template import batch
from mlops_template.config import ServeParams, load_params
from mlops_template.serve import Contract, LoadedModel, build_contract, load_model

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

FEATURES = ["x1", "x2", "color", "size"]
CLASSES = ["high", "low", "mid"]
PROBABILITIES = [f"probability:{c}" for c in CLASSES]


@dataclass(frozen=True)
class Scorer:
    root: Path
    contract: Contract
    model: LoadedModel

    def run(
        self, inputs: list[Path], output: Path, log: Any = None, **config: Any
    ) -> batch.BatchResult:
        config.setdefault("keep", ("customer_id",))
        return batch.run_batch(
            inputs, output, self.contract, self.model, "dev", log, batch.BatchConfig(**config)
        )


@pytest.fixture(scope="module")
def scorer(mixed_model: MixedModel, tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    root = copy_served_files(mixed_model.root, tmp_path_factory.mktemp("batch") / "project")
    serve = load_params(root / "params.yaml").serve
    contract = build_contract(mixed_model.schema, serve)
    return Scorer(root, contract, load_model(root, contract, serve, "dev"))


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"request_id": str, "prediction": str})
    return pd.read_parquet(path)


def api_answer(mixed_model: MixedModel, frame: pd.DataFrame) -> dict[str, Any]:
    from starlette.testclient import TestClient

    with TestClient(in_process_app(mixed_model)) as client:
        wait_ready(client)
        response = client.post("/predict", json=records(frame, mixed_model.schema))
    assert response.status_code == 200, response.text
    return response.json()


def test_batch_predictions_are_the_apis(
    mixed_model: MixedModel, scorer: Scorer, tmp_path: Path
) -> None:
    """The same rows (nulls in x2 and color included) through the in-process API and
    through batch scoring, from CSV and from Parquet, into CSV and Parquet: identical
    labels and probabilities (bit for bit)."""
    frame = mixed_model.test.reset_index(drop=True)
    assert frame["x2"].isna().any() and frame["color"].isna().any()
    answer = api_answer(mixed_model, frame)
    assert answer["classes"] == CLASSES
    want = np.asarray(answer["probabilities"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet")
    for source in ("in.csv", "in.parquet"):
        for target in ("out.csv", "out.parquet"):
            output = tmp_path / f"{source}-{target}"
            output = output.with_suffix(Path(target).suffix)
            result = scorer.run([tmp_path / source], output, chunk_rows=64)
            assert (result.rows_read, result.rows_scored, result.bad_rows) == (
                len(frame),
                len(frame),
                0,
            )
            got = read(output)
            assert list(got.columns) == [
                "request_id",
                "row",
                "customer_id",
                "prediction",
                *PROBABILITIES,
            ]
            assert got["prediction"].tolist() == answer["predictions"], (source, target)
            np.testing.assert_array_equal(got[PROBABILITIES].to_numpy(), want)
            assert got["customer_id"].astype(int).tolist() == frame["customer_id"].tolist()
            # chunks of 64 rows: requests batch-<run>-0, -1, -2, rows 0..63 in each
            chunks = np.arange(len(frame)) // 64
            assert got["request_id"].tolist() == [f"batch-{result.run_id}-{c}" for c in chunks]
            assert got["row"].tolist() == (np.arange(len(frame)) % 64).tolist()
            assert batch.rejects_path(output).read_text().splitlines() == [
                ",".join(batch.REJECT_COLUMNS)
            ]


BAD_CSV = """\
customer_id,x1,x2,color,size
0,0.5,1.0,red,S
1,abc,1.0,red,S
2,0.5,inf,blue,M
3,0.5,,,L
4,1e39,2.0,green,XL
5,0.1,2.0,purple,M
6,true,2.0,red,S
7,0.2,3.0,red,XXL
"""


def test_bad_rows_go_to_the_rejects_file_and_the_rest_is_scored(
    mixed_model: MixedModel, scorer: Scorer, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(BAD_CSV)
    output = tmp_path / "scores.parquet"
    result = scorer.run([source], output, max_bad_rows=None)
    # refused: x1 "abc", x2 inf, x1 1e39 (beyond float32), x1 "true"; scored: 0, 3
    # (nulls), 5 and 7 (unknown categories: serve.unknown_categories accept)
    assert (result.rows_read, result.rows_scored, result.bad_rows) == (8, 4, 4)
    assert result.unknown_categories == 2
    rejects = pd.read_csv(batch.rejects_path(output))
    assert rejects["row"].tolist() == [1, 2, 4, 6]
    assert rejects["column"].tolist() == ["x1", "x2", "x1", "x1"]
    assert set(rejects["file"]) == {str(source)}
    assert rejects["value"].astype(str).tolist() == ["abc", "inf", "1e39", "true"]
    assert "not a number" in rejects["reason"][0]
    assert "finite" in rejects["reason"][1]
    assert "float32" in rejects["reason"][2]
    got = read(output)
    assert got["customer_id"].tolist() == ["0", "3", "5", "7"]  # CSV ids are text
    assert got["row"].tolist() == [0, 1, 2, 3]  # positions in the request: scored rows only
    good = pd.read_csv(source, dtype={"color": str, "size": str}).iloc[[0, 3, 5, 7]]
    answer = api_answer(
        mixed_model, good.assign(x1=good["x1"].astype(float), x2=good["x2"].astype(float))
    )
    assert got["prediction"].tolist() == answer["predictions"]

    # serve.unknown_categories: reject refuses them as the API does (422), naming the values
    strict = build_contract(mixed_model.schema, ServeParams(unknown_categories="reject"))
    output = tmp_path / "strict.csv"
    result = batch.run_batch(
        [source], output, strict, scorer.model, "dev", None, batch.BatchConfig(max_bad_rows=10)
    )
    assert (result.rows_scored, result.bad_rows) == (2, 6)
    rejects = pd.read_csv(batch.rejects_path(output))
    unknown = rejects[rejects["row"].isin([5, 7])]
    assert unknown["column"].tolist() == ["color", "size"]
    assert all("unknown category" in r and "allowed" in r for r in unknown["reason"])

    # Parquet types: a string in a numeric feature, a number or "" in a categorical one
    typed = pd.DataFrame(
        {
            "customer_id": [0, 1, 2, 3],
            "x1": pd.Series([0.1, "0.2", 0.3, 0.4], dtype=object),
            "x2": [1.0, 2.0, 3.0, np.nan],
            "color": ["red", "blue", "", "green"],
            "size": ["S", "M", "L", "XL"],
        }
    )
    typed["x1"] = typed["x1"].astype(str)  # Parquet needs one type: all strings
    typed.loc[[0, 2, 3], "x1"] = None
    typed.to_parquet(tmp_path / "typed.parquet")
    result = scorer.run([tmp_path / "typed.parquet"], tmp_path / "typed.csv", max_bad_rows=None)
    rejects = pd.read_csv(batch.rejects_path(tmp_path / "typed.csv"))
    assert rejects[["row", "column"]].values.tolist() == [[1, "x1"], [2, "color"]]
    assert "wrong type" in rejects["reason"][0] and "empty" in rejects["reason"][1]
    assert (result.rows_scored, result.bad_rows) == (2, 2)


def test_too_many_bad_rows_fail_without_touching_the_output(scorer: Scorer, tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(BAD_CSV)
    output = tmp_path / "scores.csv"
    output.write_text("the previous run's output\n")
    with pytest.raises(batch.BatchError, match=r"4 refused row\(s\), more than --max-bad-rows 3"):
        scorer.run([source], output, max_bad_rows=3)
    assert output.read_text() == "the previous run's output\n"  # not clobbered
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.csv",
        "scores.csv",
        "scores.rejects.csv",
    ]
    assert len(pd.read_csv(batch.rejects_path(output))) == 4
    with pytest.raises(batch.BatchError, match="more than --max-bad-rows 0"):
        scorer.run([source], output)  # the default: no refused row is tolerated


def test_directory_of_csv_and_parquet_and_the_cli(
    mixed_model: MixedModel, scorer: Scorer, tmp_path: Path
) -> None:
    """A directory (sorted: a.csv, b.parquet, c.csv) through the CLI, with the prediction
    log the way `serve` configures it (PREDICTION_LOG); a missing column is exit 2 naming
    the column and the file."""
    frame = mixed_model.test.reset_index(drop=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    frame.iloc[:50].to_csv(inputs / "a.csv", index=False)
    frame.iloc[50:100].to_parquet(inputs / "b.parquet")
    frame.iloc[100:].to_csv(inputs / "c.csv", index=False)
    (inputs / "README.txt").write_text("not data")
    log = tmp_path / "predictions.sqlite"
    output = tmp_path / "out" / "scores.csv"
    cli = [sys.executable, "-m", "mlops_template", "predict", "--input", str(inputs)]
    done = subprocess.run(
        [*cli, "--output", str(output), "--keep", "customer_id", "--chunk-rows", "30"],
        cwd=scorer.root, env=tool_env(PREDICTION_LOG=str(log)), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rows/s" in done.stderr and "README.txt" in done.stderr  # progress; skipped file
    got = read(output)
    assert got["customer_id"].astype(int).tolist() == frame["customer_id"].tolist()
    answer = api_answer(mixed_model, frame)
    assert got["prediction"].tolist() == answer["predictions"]
    np.testing.assert_array_equal(got[PROBABILITIES].to_numpy(), answer["probabilities"])
    # per file: 50 rows = chunks of 30 + 20, so 6 requests for 3 files
    assert got["request_id"].nunique() == 6
    assert got.groupby("request_id", sort=False).size().tolist() == [
        30,
        20,
        30,
        20,
        30,
        len(frame) - 130,
    ]

    from mlops_template.predlog import read_log

    logged = read_log(log)
    assert logged["log.request_id"].tolist() == got["request_id"].tolist()

    broken = tmp_path / "broken"
    broken.mkdir()
    frame.drop(columns=["size"]).to_parquet(broken / "x.parquet")
    failed = subprocess.run(
        [sys.executable, "-m", "mlops_template", "predict", "--input", str(broken),
         "--output", str(tmp_path / "never.parquet"), "--no-log"],
        cwd=scorer.root, env=tool_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert failed.returncode == 2, failed.stderr
    assert "x.parquet: column 'size' is missing" in failed.stderr
    assert not (tmp_path / "never.parquet").exists()


def test_logged_rows_have_the_outputs_request_ids_and_positions(
    scorer: Scorer, mixed_model: MixedModel, tmp_path: Path
) -> None:
    from mlops_template.predlog import PredictionLogger, read_log

    frame = mixed_model.test.reset_index(drop=True)
    frame.to_parquet(tmp_path / "in.parquet")
    output = tmp_path / "scores.parquet"
    with PredictionLogger(tmp_path / "log.sqlite", classes=CLASSES) as log:
        result = scorer.run([tmp_path / "in.parquet"], output, log=log, chunk_rows=40)
    assert log.stats().written == len(frame)
    got = read(output)
    logged = read_log(tmp_path / "log.sqlite")
    assert result.requests == 4
    # the join key of delayed labels: (request id, position in the request)
    position = logged.groupby("log.request_id", sort=False).cumcount()
    assert list(zip(logged["log.request_id"], position, strict=True)) == list(
        zip(got["request_id"], got["row"], strict=True)
    )
    assert logged["log.prediction"].tolist() == got["prediction"].tolist()
    np.testing.assert_array_equal(
        logged[[f"log.{c}" for c in PROBABILITIES]].to_numpy(), got[PROBABILITIES].to_numpy()
    )
    assert set(logged["log.model_version"]) == {"dev"}
    np.testing.assert_array_equal(logged["x2"].to_numpy(float), frame["x2"].to_numpy(float))
    assert logged["color"].fillna("<null>").tolist() == frame["color"].fillna("<null>").tolist()


# The child's own peak: VmHWM of its address space. (getrusage's ru_maxrss would not do:
# Linux carries the parent's high-water mark across fork + exec into the child's.)
RSS_PROBE = textwrap.dedent(
    """\
    import re, runpy, sys
    out = sys.argv.pop(1)
    sys.argv[0] = "mlops_template"
    try:
        runpy.run_module("mlops_template", run_name="__main__")
    finally:
        status = open("/proc/self/status").read()
        with open(out, "w") as handle:
            handle.write(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
    """
)


def test_memory_stays_flat_on_a_file_ten_times_larger(scorer: Scorer, tmp_path: Path) -> None:
    """The command's peak RSS on 40k rows and on 400k rows (Parquet in row groups of 10k,
    chunks of 10k, prediction log on) grows by a small fraction of what the same 400k
    rows cost scored in one chunk (what a non-chunked reader would do): it reads, scores,
    logs and writes chunk by chunk. Measured: +~25 MiB chunked (SQLite's page cache and
    allocator slack), +~370 MiB in one chunk."""
    (tmp_path / "probe.py").write_text(RSS_PROBE)
    for rows in (40_000, 400_000):
        frame = mixed_dataset(rows=rows, seed=3).drop(columns=["label"])
        frame.to_parquet(tmp_path / f"in-{rows}.parquet", row_group_size=10_000)

    def peak(rows: int, chunk_rows: int) -> int:
        output = tmp_path / f"out-{rows}-{chunk_rows}.parquet"
        probe = tmp_path / f"rss-{rows}-{chunk_rows}"
        done = subprocess.run(
            [sys.executable, str(tmp_path / "probe.py"), str(probe), "predict",
             "--input", str(tmp_path / f"in-{rows}.parquet"), "--output", str(output),
             "--chunk-rows", str(chunk_rows), "--keep", "customer_id", "--threads", "1"],
            cwd=scorer.root, env=tool_env(PREDICTION_LOG=str(tmp_path / f"{probe.name}.sqlite")),
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(pd.read_parquet(output, columns=["row"])) == rows  # every row scored
        return int(probe.read_text()) * 1024

    small, large, whole = peak(40_000, 10_000), peak(400_000, 10_000), peak(400_000, 400_000)
    growth, unchunked = large - small, whole - small
    print(
        f"peak RSS: 40k {small >> 20} MiB, 400k {large >> 20} MiB, 400k in one chunk {whole >> 20} MiB"
    )
    assert unchunked > 150 * 2**20  # the yardstick: holding 400k rows at once costs this much
    assert growth < 0.15 * unchunked, (small, large, whole)
    assert growth < 48 * 2**20, (small, large, whole)


def test_input_files_and_formats(tmp_path: Path) -> None:
    (tmp_path / "b.parquet").write_bytes(b"")
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / ".hidden.csv").write_text("x\n")
    assert batch.input_files(tmp_path) == [tmp_path / "a.csv", tmp_path / "b.parquet"]
    with pytest.raises(batch.BatchError, match="inside the input directory"):
        batch.input_files(tmp_path, tmp_path / "out.csv")
    with pytest.raises(batch.BatchError, match="unknown format"):
        batch.file_format(tmp_path / "out.json")
    with pytest.raises(batch.BatchError, match="no such file"):
        batch.input_files(tmp_path / "nothing")
    assert batch.rejects_path(tmp_path / "s.parquet") == tmp_path / "s.rejects.csv"
    assert json.dumps(batch.request_id("r", 3)) == '"batch-r-3"'


class NaNForNegativeX1:
    """A stand-in model: the real one's answers, but no finite probabilities for a row
    whose x1 is negative (what an extreme input can do to a real model)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def predict(self, feeds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        labels, proba = self.model.predict(feeds)
        proba[feeds[0][:, 0] < 0] = np.nan
        return labels, proba


def test_rows_the_model_cannot_score_are_refused(
    scorer: Scorer, mixed_model: MixedModel, tmp_path: Path
) -> None:
    frame = mixed_model.test.reset_index(drop=True)
    frame.to_parquet(tmp_path / "in.parquet")
    output = tmp_path / "out.parquet"
    model: Any = NaNForNegativeX1(scorer.model)
    result = batch.run_batch(
        [tmp_path / "in.parquet"], output, scorer.contract, model, "dev", None,
        batch.BatchConfig(max_bad_rows=None, keep=("customer_id",), chunk_rows=50),
    )  # fmt: skip
    negative = frame["x1"] < 0
    assert result.bad_rows == negative.sum() > 0
    assert read(output)["customer_id"].tolist() == frame.loc[~negative, "customer_id"].tolist()
    rejects = pd.read_csv(batch.rejects_path(output))
    assert rejects["row"].tolist() == np.flatnonzero(negative).tolist()
    assert all("no finite output" in reason for reason in rejects["reason"])


def test_csv_without_pyarrow_is_written_by_pandas_alike(
    scorer: Scorer, mixed_model: MixedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serving image has no pyarrow: CSV in and out still work, same values."""
    frame = mixed_model.test.reset_index(drop=True)
    frame.to_csv(tmp_path / "in.csv", index=False)
    scorer.run([tmp_path / "in.csv"], tmp_path / "arrow.csv", run_id="r")
    monkeypatch.setattr(batch, "_arrow", lambda: None)
    scorer.run([tmp_path / "in.csv"], tmp_path / "pandas.csv", run_id="r")
    pd.testing.assert_frame_equal(read(tmp_path / "arrow.csv"), read(tmp_path / "pandas.csv"))


def test_version_and_stage_resolve_to_a_registered_version_and_its_model_sha256(
    scorer: Scorer, tmp_path: Path
) -> None:
    """--version / --stage: the registry's tags (GTO format, as `registry register` and
    `promote` write them) name the version and the sha256 its model must have (scoring
    with another version's model: tests/pipeline/test_predict_versions_e2e.py)."""
    import shutil

    from mlops_template.commands.predict import _registry_version
    from mlops_template.registry import registration_message

    root = tmp_path / "project"
    shutil.copytree(scorer.root, root)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=tool_env(), check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "model")
    for tag, model_sha in (("model@v1.0.0", "1" * 64), ("model@v1.1.0", "2" * 64)):
        message = registration_message(
            "model", tag.split("@")[1], {}, {"model.onnx": model_sha}, None
        )
        git("tag", "-a", tag, "-m", message)
    git("tag", "-a", "model#prod#1", "-m", "assign prod")
    git("commit", "-q", "--allow-empty", "-m", "next")
    git("tag", "-a", "model@v1.2.0", "-m", "registered by hand: no metadata line")

    # v1.0.0 and v1.1.0 are at the same commit: the stage goes to the highest (GTO's rule)
    prod = _registry_version(root, None, "prod")
    assert (prod.info.version, prod.info.tag, prod.onnx_sha256) == (
        "v1.1.0",
        "model@v1.1.0",
        "2" * 64,
    )
    assert _registry_version(root, "v1.0.0", None).onnx_sha256 == "1" * 64
    with pytest.raises(batch.BatchError, match=r"model@v1\.2\.0: its message records no model"):
        _registry_version(root, "v1.2.0", None)
    with pytest.raises(batch.BatchError, match="not a registered version"):
        _registry_version(root, "v2.0.0", None)
    with pytest.raises(batch.BatchError, match=r"expected vMAJOR\.MINOR\.PATCH"):
        _registry_version(root, "1.0", None)
    with pytest.raises(batch.BatchError, match="no version of model is in staging"):
        _registry_version(root, None, "staging")


def test_text_columns_are_checked_alike_from_arrow_and_from_objects() -> None:
    """A categorical column read as Arrow strings (Parquet; CSV with pyarrow) is checked
    per distinct value after dictionary encoding; any other column value by value: both
    give the same values, nulls, empty strings and known levels."""
    values = ["red", None, "", "blue", "purple", np.nan, "red", "", "blue"]
    levels = frozenset({"red", "blue", "green"})
    arrow = pd.Series(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    assert batch._dictionary_encoded(arrow) is not None  # the dictionary path
    objects = pd.Series(values, dtype=object)
    assert batch._dictionary_encoded(objects) is None  # the value-by-value path
    fast, slow = batch._text_column(arrow, levels), batch._text_column(objects, levels)
    assert fast.values.tolist() == slow.values.tolist()
    assert fast.values.tolist() == ["red", None, "", "blue", "purple", None, "red", "", "blue"]
    for name, want in (
        ("missing", [0, 1, 0, 0, 0, 1, 0, 0, 0]),
        ("not_text", [0] * 9),
        ("empty", [0, 0, 1, 0, 0, 0, 0, 1, 0]),
        ("known", [1, 0, 0, 1, 0, 0, 1, 0, 1]),
    ):
        assert (
            getattr(fast, name).tolist() == getattr(slow, name).tolist() == [bool(v) for v in want]
        )
    # a column of numbers is only seen value by value: refused as not a string
    numbers = batch._text_column(pd.Series([1, None, 2.5], dtype=object), levels)
    assert numbers.not_text.tolist() == [True, False, True]
    empty = batch._text_column(pd.Series([None, None], dtype=arrow.dtype), levels)
    assert empty.missing.tolist() == [True, True] and empty.values.tolist() == [None, None]
