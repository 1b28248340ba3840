"""[kpi] max_campaign_channels and campaign_retention (SPEC 4)."""

from __future__ import annotations

import pytest

from streams.config.errors import SettingsError
from streams.config.settings import settings_from

DAY_MS = 24 * 3600 * 1000


def test_defaults_are_spec_4s() -> None:
    settings = settings_from({}, {})
    assert settings.max_campaign_channels == 10_000
    assert settings.campaign_retention_ms == 30 * DAY_MS


def test_values_are_read() -> None:
    settings = settings_from({"kpi": {"max_campaign_channels": 50,
                                      "campaign_retention": "2d"}}, {})
    assert settings.max_campaign_channels == 50
    assert settings.campaign_retention_ms == 2 * DAY_MS


@pytest.mark.parametrize(("kpi", "named", "said"), [
    ({"max_campaign_channels": 0}, "[kpi] max_campaign_channels", "0"),
    ({"max_campaign_channels": "many"}, "[kpi] max_campaign_channels", "'many'"),
    ({"max_campaign_channels": True}, "[kpi] max_campaign_channels", "True"),
    ({"campaign_retention": "1h"}, "[kpi] campaign_retention", "longest window"),
    ({"campaign_retention": "soon"}, "[kpi] campaign_retention", "soon"),
])
def test_bad_values_name_the_setting(kpi: dict[str, object], named: str, said: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from({"kpi": kpi}, {})
    assert named in str(caught.value) and said in str(caught.value)
