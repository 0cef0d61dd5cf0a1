"""Specs, data loading, fingerprints, grids and the secret guard (no notebook runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from chimera_lab.config import Settings
from chimera_lab.data.synthetic import make_ohlcv
from chimera_lab.errors import ConfigError, PipelineError
from chimera_lab.pipelines import (
    PipelineSpec,
    assert_no_secrets,
    fingerprint_bars,
    grid_points,
    load_bars,
    load_spec,
    parse_grid,
    window_bars,
)
from chimera_lab.pipelines.execute import template_parameters
from chimera_lab.pipelines.safety import mask_url
from chimera_lab.pipelines.spec import DataSpec, project_root

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["walk_forward_sma", "daily_risk"])
def test_shipped_specs_load_and_match_their_templates(name: str) -> None:
    spec = load_spec(REPO / "pipelines" / f"{name}.yaml")
    assert spec.name == name
    for step in spec.steps:
        assert Path(step.template).is_file()
        declared = template_parameters(step.template)
        assert set(step.parameters) <= set(declared), step.name
        assert "output_dir" in declared


def test_spec_paths_resolve_from_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the repo: templates are found in the project tree
    spec = load_spec(REPO / "pipelines" / "walk_forward_sma.yaml")
    assert spec.steps[0].template == str(
        project_root() / "notebooks" / "templates" / "walk_forward_fold.ipynb"
    )
    assert spec.data is not None and spec.data.path == "btcusdt_1m"  # a sample name stays


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("name: x\nsteps: []\n", "steps"),
        ("name: x\nsteps:\n  - {name: a, template: t.ipynb, foreach: fold}\n", "no 'folds'"),
        (
            "name: x\nsteps:\n  - {name: a, template: t.ipynb}\n  - {name: a, template: u.ipynb}\n",
            "unique",
        ),
        ("name: 'bad name!'\nsteps:\n  - {name: a, template: t.ipynb}\n", "pipeline name"),
        ("name: x\nstepz: []\n", "stepz"),
        (
            "name: x\ndata: {path: a.csv, symbol: BTCUSDT}\nsteps:\n  - {name: a, template: t}\n",
            "exactly one of",
        ),
        (
            "name: x\nfolds: {train: 7D, test: 1D}\nsteps:\n  - {name: a, template: t}\n",
            "folds need data",
        ),
        ("- just\n- a list\n", "YAML mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_specs_name_the_problem(tmp_path: Path, doc: str, match: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(doc)
    with pytest.raises(ConfigError, match=match) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_load_bars_from_a_sample_with_bounds_lookback_and_resample() -> None:
    bars = load_bars(data_path="btcusdt_1m", start="2024-08-01", end="2024-08-02 23:59")
    assert bars.index[0] == pd.Timestamp("2024-08-01", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2024-08-02 23:59", tz="UTC")
    last = load_bars(data_path="btcusdt_1m", lookback="1D")
    assert last.index[-1] - last.index[0] < pd.Timedelta("1D")
    hourly = load_bars(
        data_path="btcusdt_1m", start="2024-08-01", end="2024-08-02 23:59", resample="1h"
    )
    assert len(hourly) == 48
    first_hour = bars.iloc[:60]
    expected = [
        first_hour["open"].iloc[0],
        first_hour["high"].max(),
        first_hour["low"].min(),
        first_hour["close"].iloc[-1],
        first_hour["volume"].sum(),
    ]
    np.testing.assert_allclose(
        hourly.iloc[0][["open", "high", "low", "close", "volume"]], expected, rtol=1e-12
    )
    with pytest.raises(ConfigError, match="not found"):
        load_bars(data_path="no/such/file.csv")
    with pytest.raises(ConfigError, match="give data_path"):
        load_bars()


def test_window_bars_prepends_the_warmup_and_fingerprints_identify_bars() -> None:
    bars = make_ohlcv(500, seed=4)
    w = window_bars(bars, bars.index[100], bars.index[199], warmup_bars=30)
    assert w.index[0] == bars.index[70] and w.index[-1] == bars.index[199]
    assert len(window_bars(bars, bars.index[10], bars.index[20], warmup_bars=30)) == 21
    assert fingerprint_bars(w) == fingerprint_bars(bars.iloc[70:200].copy())
    changed = w.copy()
    changed.iloc[5, 3] = np.nextafter(changed.iloc[5, 3], np.inf)  # one ulp of one close
    assert fingerprint_bars(changed) != fingerprint_bars(w)
    shifted = w.copy()
    shifted.index = shifted.index + pd.Timedelta(1, "ns")
    assert fingerprint_bars(shifted) != fingerprint_bars(w)
    assert fingerprint_bars(w.assign(extra=1.0)) == fingerprint_bars(w)  # extra columns ignored
    with pytest.raises(PipelineError, match="without columns"):
        fingerprint_bars(w.drop(columns="volume"))


def test_grids_parse_from_json_and_mappings() -> None:
    assert parse_grid('{"fast": [10, 20], "slow": 50}') == {"fast": [10, 20], "slow": [50]}
    assert parse_grid({"k": (1.5, 2.0)}) == {"k": [1.5, 2.0]}
    assert parse_grid("") == {} and parse_grid(None) == {}
    assert grid_points({}) == [{}]
    assert len(grid_points({"a": [1, 2, 3], "b": [4, 5]})) == 6
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_grid("{fast: [1]}")
    with pytest.raises(ConfigError, match="no values"):
        parse_grid('{"fast": []}')
    with pytest.raises(ConfigError, match="JSON object"):
        parse_grid("[1, 2]")


def test_secret_guard_walks_nested_parameters() -> None:
    settings = Settings(_env_file=None, bitget={"passphrase": "open-sesame-42"})
    assert_no_secrets({"strategy": "sma_cross", "grid": {"fast": [1, 2]}}, settings=settings)
    with pytest.raises(PipelineError, match=r"'nested\.deep\[0\]\.token'"):
        assert_no_secrets({"nested": {"deep": [{"token": "x"}]}})
    with pytest.raises(PipelineError, match="configured secret") as info:
        assert_no_secrets({"note": ["ok", "open-sesame-42"]}, settings=settings)
    assert "open-sesame-42" not in str(info.value)
    assert mask_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("duckdb:///tmp/x.duckdb") == "duckdb:///tmp/x.duckdb"


def test_store_urls_with_passwords_are_masked_in_specs_and_refused_as_parameters(
    tmp_path: Path, trivial_template: Path
) -> None:
    from chimera_lab.pipelines import run_pipeline

    spec = PipelineSpec.model_validate(
        {
            "name": "pg",
            "data": {"symbol": "BTCUSDT", "store": "postgresql://u:hunter22@db/bars"},
            "steps": [{"name": "s", "template": str(trivial_template)}],
        }
    )
    # The spec itself is refused before any data is read: the URL would enter the manifest.
    with pytest.raises(PipelineError, match="URL with a password"):
        run_pipeline(spec, runs_dir=tmp_path, progress=False, settings=Settings(_env_file=None))
    assert not list(tmp_path.iterdir())


def test_data_spec_round_trips_through_yaml() -> None:
    d = DataSpec(symbol="ETHUSDT", timeframe="1m", lookback="30D", resample="15m")
    again = DataSpec.model_validate(yaml.safe_load(yaml.safe_dump(d.model_dump())))
    assert again == d


def test_store_and_file_sources_give_the_same_bars(tmp_path: Path) -> None:
    # The resampling of a file must equal the store's SQL resampling of the same bars to the
    # last bit (one aggregation, chimera_lab.data.resample): same bars, same fingerprint.
    from chimera_lab.data import Store
    from chimera_lab.data.samples import import_sample

    url = str(tmp_path / "bars.duckdb")
    import_sample(Store(url), "btcusdt_1m")
    window = {"start": "2024-08-04", "end": "2024-08-06 23:59"}
    from_store = load_bars(symbol="BTCUSDT", store_url=url, **window)
    from_file = load_bars(data_path="btcusdt_1m", **window)
    pd.testing.assert_frame_equal(from_store, from_file, check_freq=False)
    for tf in ("15m", "1h", "4h", "1d"):
        a = load_bars(symbol="BTCUSDT", store_url=url, resample=tf, **window)
        b = load_bars(data_path="btcusdt_1m", resample=tf, **window)
        pd.testing.assert_frame_equal(a, b, check_freq=False, check_exact=True)
        assert fingerprint_bars(a) == fingerprint_bars(b), tf
    assert fingerprint_bars(from_store) == fingerprint_bars(from_file)


def test_resample_ohlcv_sums_volume_in_time_order() -> None:
    # The store's sum(volume ORDER BY ts): a sequential left-to-right float sum, which pandas'
    # (pairwise) sum does not reproduce bit for bit.
    from functools import reduce
    from operator import add

    from chimera_lab.data.resample import resample_ohlcv

    bars = make_ohlcv(3 * 60, seed=11)
    bars["volume"] = np.random.default_rng(1).lognormal(0, 3, len(bars))
    hourly = resample_ohlcv(bars, "1h")
    for k, (start, row) in enumerate(hourly.iterrows()):
        hour = bars.iloc[60 * k : 60 * (k + 1)]
        assert start == hour.index[0]
        assert row["volume"] == reduce(add, hour["volume"].tolist(), 0.0)
        assert (row["open"], row["close"]) == (hour["open"].iloc[0], hour["close"].iloc[-1])
        assert (row["high"], row["low"]) == (hour["high"].max(), hour["low"].min())


def test_relative_strategy_files_are_resolved_like_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The kernels run in their output folder: a relative strategy path must be made absolute
    # when the run is planned (like --csv), from the CLI and from a spec file.
    from chimera_lab.pipelines.walk_forward import walk_forward_spec

    (tmp_path / "strats").mkdir()
    (tmp_path / "strats" / "mine.py").write_text("def f(data):\n    return data['close'] * 0\n")
    monkeypatch.chdir(tmp_path)
    spec = walk_forward_spec(
        data=DataSpec(path="btcusdt_1m"), strategy="strats/mine.py:f", train="1D", test="1D"
    ).with_paths_resolved()
    assert spec.steps[0].parameters["strategy"] == f"{tmp_path / 'strats' / 'mine.py'}:f"
    assert spec.steps[1].parameters == {}
    doc = tmp_path / "specs" / "s.yaml"
    doc.parent.mkdir()
    doc.write_text(
        "name: s\ndata: {path: btcusdt_1m}\nfolds: {train: 1D, test: 1D}\nsteps:\n"
        "  - {name: fold, template: notebooks/templates/walk_forward_fold.ipynb, foreach: fold,"
        " parameters: {strategy: '../strats/mine.py:f'}}\n"
    )
    monkeypatch.chdir(tmp_path / "specs")
    loaded = load_spec(doc)
    assert loaded.steps[0].parameters["strategy"] == f"{tmp_path / 'strats' / 'mine.py'}:f"
    assert (
        load_spec(REPO / "pipelines" / "walk_forward_sma.yaml").steps[0].parameters["strategy"]
        == "sma_cross"
    )  # registered names stay names


def test_manifests_are_world_readable(tmp_path: Path) -> None:
    import stat

    from chimera_lab.pipelines.manifest import write_manifest

    path = write_manifest(tmp_path, {"tasks": []})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".manifest-*"))


def test_untracked_package_files_make_a_checkout_dirty(tmp_path: Path) -> None:
    import subprocess

    from chimera_lab.pipelines.manifest import git_commit

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
        )

    (tmp_path / "chimera_lab").mkdir()
    (tmp_path / "chimera_lab" / "a.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    assert git_commit(tmp_path) == {
        "commit": git_commit(tmp_path)["commit"],
        "dirty": False,
        "changes": [],
    }  # type: ignore[index]
    (tmp_path / "notes.txt").write_text("not code\n")  # untracked outside the package: clean
    assert git_commit(tmp_path)["dirty"] is False  # type: ignore[index]
    (tmp_path / "chimera_lab" / "new_module.py").write_text("y = 2\n")  # imported by a run
    info = git_commit(tmp_path)
    assert info is not None and info["dirty"] and info["changes"] == ["chimera_lab/new_module.py"]
    (tmp_path / "notebooks" / "templates").mkdir(parents=True)
    (tmp_path / "notebooks" / "templates" / "t.ipynb").write_text("{}")
    info = git_commit(tmp_path)
    assert info is not None and "notebooks/templates/t.ipynb" in info["changes"]


def test_source_hash_sees_any_module_change(tmp_path: Path) -> None:
    from chimera_lab.pipelines.manifest import source_sha256

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    before = source_sha256(pkg)
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    added = source_sha256(pkg)
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert len({before, added, source_sha256(pkg)}) == 3


def _unbounded(store: Any, symbol: str, resample: str | None, lookback: str, **window: Any) -> Any:
    # The reference: the whole range read (and resampled), then trimmed in pandas.
    lo = pd.Timestamp(window["start"], tz="UTC") if window.get("start") else None
    hi = pd.Timestamp(window["end"], tz="UTC") if window.get("end") else None
    if resample:
        bars = store.resample(symbol, resample, source_timeframe="1m", start=lo, end=hi)
    else:
        bars = store.read_bars(symbol, "1m", start=lo, end=hi)
    return bars.loc[bars.index > bars.index[-1] - pd.Timedelta(lookback)]


def test_lookback_reads_only_the_recent_store_rows_and_gives_the_same_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chimera_lab.data import DuckDBStore, Store
    from chimera_lab.data.samples import import_sample

    url = str(tmp_path / "bars.duckdb")
    store = Store(url)
    import_sample(store, "btcusdt_1m")
    # A second series with a one-day hole: an `end` inside it leaves the last bar a day
    # earlier than `end`, so a bound computed from `end` would be too tight.
    gappy = make_ohlcv(5 * 1440, seed=9, start="2024-03-01")
    store.write_bars("ETHUSDT", "1m", gappy.drop(gappy.loc["2024-03-03":"2024-03-03 23:59"].index))
    starts: list[Any] = []
    for name in ("resample", "bars"):  # load_bars reads stored bars through Store.bars
        real = getattr(DuckDBStore, name)

        def spy(self: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            starts.append(kwargs.get("start"))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(DuckDBStore, name, spy)
    last = store.last_timestamp("BTCUSDT", "1m")
    cases: list[tuple[str, str | None, str, dict[str, Any], pd.Timestamp | None]] = [
        ("BTCUSDT", "1h", "1D", {}, last - pd.Timedelta("1D") - pd.Timedelta("1h")),
        ("BTCUSDT", "15m", "2D", {"end": "2024-08-10 12:34"}, None),
        ("BTCUSDT", None, "36h", {}, last - pd.Timedelta("36h") - pd.Timedelta("1m")),
        ("BTCUSDT", "4h", "3D", {"start": "2024-08-24", "end": "2024-08-30"}, None),
        ("ETHUSDT", "1h", "1D", {"end": "2024-03-03 18:00"}, None),  # end in the hole
        ("ETHUSDT", "1d", "2D", {}, None),
    ]
    for symbol, resample, lookback, window, bound in cases:
        starts.clear()
        got = load_bars(
            symbol=symbol, store_url=url, resample=resample, lookback=lookback, **window
        )
        first_query = starts[0]
        starts.clear()
        want = _unbounded(store, symbol, resample, lookback, **window)
        pd.testing.assert_frame_equal(got, want, check_freq=False, check_exact=True)
        assert fingerprint_bars(got) == fingerprint_bars(want), (symbol, resample, lookback)
        assert first_query is not None  # the query itself was bounded ...
        if bound is not None:
            assert first_query == bound  # ... at last bar - lookback - one bucket
    # The case with the hole: the bounded read came up short and the full range was read.
    starts.clear()
    load_bars(symbol="ETHUSDT", store_url=url, resample="1h", lookback="1D", end="2024-03-03 18:00")
    assert starts[0] == pd.Timestamp("2024-03-02 17:00", tz="UTC") and starts[1] is None


def test_a_timeframe_the_store_lacks_is_aggregated_as_the_commands_do(tmp_path: Path) -> None:
    # One loader for commands and pipelines: 1h bars asked of a 1m-only store come from
    # Store.bars (aggregated from 1m), in load_bars and in the CLI's load_source alike.
    from chimera_lab.cli._common import load_source
    from chimera_lab.data import Store

    url = str(tmp_path / "bars.duckdb")
    store = Store(url)
    store.write_bars("BTCUSDT", "1m", make_ohlcv(3 * 1440, seed=4, start="2024-03-01"))
    want = store.resample("BTCUSDT", "1h", source_timeframe="1m", end="2024-03-02 12:00")
    got = load_bars(symbol="BTCUSDT", timeframe="1h", store_url=url, end="2024-03-02 12:00")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    bars, origin = load_source(
        csv_path=None, symbol="BTCUSDT", timeframe="1h", start=None, end="2024-03-02 12:00",
        store_url=url,
    )  # fmt: skip
    pd.testing.assert_frame_equal(bars, want, check_exact=True)
    assert (origin.kind, origin.location, origin.timeframe) == ("store", url, "1h")
