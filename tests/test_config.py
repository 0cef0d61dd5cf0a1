"""Settings: env prefix, nested delimiter, .env files, secrets, and .env.example coverage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from chimera_lab.config import (
    BitgetSettings,
    RegimeLimitsSettings,
    RiskSettings,
    Settings,
    iter_secret_values,
)
from chimera_lab.config import find_project_root as real_find_project_root
from chimera_lab.errors import AuthenticationError

REPO = Path(__file__).resolve().parents[1]


def test_env_with_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIMERA_STORE__URL", "/tmp/x.duckdb")
    monkeypatch.setenv("CHIMERA_BITGET__RATE_LIMIT_PER_SECOND", "7")
    monkeypatch.setenv("CHIMERA_RISK__REGIME_LIMITS__CRISIS__VAR_LIMIT", "0.01")
    monkeypatch.setenv("CHIMERA_STORE__ROLLUP_TIMEFRAMES", '["1h"]')
    s = Settings(_env_file=None)
    assert s.store.url == "/tmp/x.duckdb"
    assert s.bitget.rate_limit_per_second == 7
    assert s.risk.regime_limits["crisis"].var_limit == 0.01
    # the other regimes keep their defaults
    assert s.risk.regime_limits["normal"] == Settings(_env_file=None).risk.regime_limits["normal"]
    assert s.store.rollup_timeframes == ["1h"]


def test_dotenv_file_and_secrets(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("CHIMERA_BITGET__API_KEY=key-123456\nCHIMERA_BITGET__API_SECRET=shh-abcdef\n")
    s = Settings(_env_file=env)
    assert isinstance(s.bitget.api_secret, SecretStr)
    assert s.bitget.api_secret.get_secret_value() == "shh-abcdef"
    assert "shh-abcdef" not in repr(s) and "shh-abcdef" not in str(s.model_dump())
    assert sorted(iter_secret_values(s)) == ["key-123456", "shh-abcdef"]


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIMERA_RISK__VAR_CONFIDENCE", "1.5")
    with pytest.raises(ValidationError, match="var_confidence"):
        Settings(_env_file=None)


def test_unknown_regime_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown regime"):
        Settings(_env_file=None, risk={"regime_limits": {"panic": RegimeLimitsSettings()}})


def test_partial_regime_override_keeps_that_regimes_own_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docs/risk.md's example: one field of one regime. Crisis's other limits must stay
    # crisis's own (exposure 0, leverage 0.5), not the looser class defaults (1.0).
    monkeypatch.setenv("CHIMERA_RISK__REGIME_LIMITS__CRISIS__VAR_LIMIT", "0.01")
    crisis = Settings(_env_file=None).risk.regime_limits["crisis"]
    assert crisis == RegimeLimitsSettings(exposure_multiplier=0.0, max_leverage=0.5, var_limit=0.01)


def test_regime_override_is_merged_field_by_field_for_mappings_and_models() -> None:
    defaults = RiskSettings().regime_limits
    for given in ({"var_limit": 0.01}, RegimeLimitsSettings(var_limit=0.01)):
        limits = RiskSettings(regime_limits={"volatile": given}).regime_limits
        assert limits["volatile"] == defaults["volatile"].model_copy(update={"var_limit": 0.01})
        assert {k: v for k, v in limits.items() if k != "volatile"} == {
            k: v for k, v in defaults.items() if k != "volatile"
        }


def test_regime_keys_are_case_insensitive() -> None:
    limits = RiskSettings(regime_limits={"Crisis": {"max_leverage": 0.25}}).regime_limits
    assert set(limits) == {"normal", "trending", "volatile", "crisis"}
    assert limits["crisis"] == RegimeLimitsSettings(
        exposure_multiplier=0.0, max_leverage=0.25, var_limit=0.02
    )


def test_unknown_regime_key_names_it_and_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as info:
        RiskSettings(regime_limits={"Crisys": {"var_limit": 0.01}})
    message = str(info.value)
    assert "'Crisys'" in message and "did you mean 'crisis'" in message
    assert "['crisis', 'normal', 'trending', 'volatile']" in message


def test_regime_given_twice_in_different_case_is_refused() -> None:
    with pytest.raises(ValidationError, match="given twice"):
        RiskSettings(regime_limits={"crisis": {}, "CRISIS": {"var_limit": 0.5}})


def test_regime_override_is_still_validated() -> None:
    with pytest.raises(ValidationError, match="var_limit"):
        RiskSettings(regime_limits={"crisis": {"var_limit": 0.0}})


def _leaf_variables(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += _leaf_variables(ann, f"{prefix}{name.upper()}__")
        elif name != "regime_limits":  # a mapping, documented by example
            names.append(f"{prefix}{name.upper()}")
    return names


def test_env_example_documents_every_variable() -> None:
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(CHIMERA_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = set(_leaf_variables(Settings, "CHIMERA_"))
    assert expected - documented == set(), "undocumented in .env.example"
    assert (
        documented
        - expected
        - {v for v in documented if v.startswith("CHIMERA_RISK__REGIME_LIMITS__")}
        == set()
    ), "documented but not a setting"


def test_relative_paths_and_dotenv_belong_to_the_project_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A kernel started in notebooks/ must see the same store and .env as the project root.
    root = tmp_path / "checkout"
    (root / "notebooks").mkdir(parents=True)
    (root / ".env").write_text("CHIMERA_BACKTEST__FEE_BPS=3\n")
    monkeypatch.setattr("chimera_lab.config.find_project_root", lambda start=None: root)
    monkeypatch.chdir(root / "notebooks")
    s = Settings()
    assert s.backtest.fee_bps == 3
    assert s.store.url == str(root / "data" / "chimera.duckdb")
    assert s.pipeline.runs_dir == str(root / "data" / "runs")
    for kept in ("/abs/x.duckdb", "duckdb:///abs/x.duckdb", ":memory:", "postgresql://h/db"):
        assert Settings(_env_file=None, store={"url": kept}).store.url == kept


def test_find_project_root_recognises_this_checkout() -> None:
    # The autouse fixture replaces the module attribute; this is the original, imported above.
    assert real_find_project_root(REPO / "notebooks") == REPO
    assert real_find_project_root(Path("/")) is None


def test_unknown_chimera_variables_warn_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    from chimera_lab.config import ConfigWarning

    monkeypatch.setenv("CHIMERA_STORE_URL", "x.duckdb")  # missing the second underscore
    with pytest.warns(ConfigWarning, match="did you mean CHIMERA_STORE__URL"):
        Settings(_env_file=None)
    monkeypatch.delenv("CHIMERA_STORE_URL")
    monkeypatch.setenv("CHIMERA_RISK__REGIME_LIMITS__CRISIS__VAR_LIMIT", "0.01")  # a mapping
    Settings(_env_file=None)  # no warning (warnings are errors here)


def test_credentials_too_short_to_redact_are_refused() -> None:
    with pytest.raises(ValidationError, match="shorter than 4 characters"):
        Settings(_env_file=None, bitget={"passphrase": "abc"})


@pytest.mark.parametrize("missing", ["api_key", "api_secret", "passphrase"])
def test_bitget_credentials_refuse_an_incomplete_set_naming_the_variables(missing: str) -> None:
    values = {"api_key": "key-1234", "api_secret": "secret-1234", "passphrase": "phrase-1234"}
    values[missing] = None  # type: ignore[assignment]
    settings = BitgetSettings(**values)
    with pytest.raises(AuthenticationError) as info:
        settings.credentials()
    message = str(info.value)
    for name in ("API_KEY", "API_SECRET", "PASSPHRASE"):
        assert f"CHIMERA_BITGET__{name}" in message
    assert not any(v in message for v in values.values() if v)  # no secret in the message
    complete = BitgetSettings(api_key="k-12", api_secret="s-12", passphrase="p-12")
    assert complete.credentials() == ("k-12", "s-12", "p-12")
