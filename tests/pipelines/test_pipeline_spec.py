"""Specs, data loading, fingerprints, grids and the secret guard (no notebook runs here)."""

from __future__ import annotations

from pathlib import Path

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
    # The pandas resampling of a file must equal the store's SQL resampling of the same bars.
    from chimera_lab.data import Store
    from chimera_lab.data.samples import import_sample

    url = str(tmp_path / "bars.duckdb")
    import_sample(Store(url), "btcusdt_1m")
    window = {"start": "2024-08-04", "end": "2024-08-06 23:59"}
    from_store = load_bars(symbol="BTCUSDT", store_url=url, **window)
    from_file = load_bars(data_path="btcusdt_1m", **window)
    pd.testing.assert_frame_equal(from_store, from_file, check_freq=False)
    for tf in ("15m", "1h", "4h"):
        a = load_bars(symbol="BTCUSDT", store_url=url, resample=tf, **window)
        b = load_bars(data_path="btcusdt_1m", resample=tf, **window)
        pd.testing.assert_frame_equal(a, b, check_freq=False, rtol=1e-12)
    assert fingerprint_bars(from_store) == fingerprint_bars(from_file)
