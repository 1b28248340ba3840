"""A flood of new campaign names is capped and silent campaign-channels retire (SPEC 4)."""

from __future__ import annotations

from streams.windows.counts import VIEWS, WIDTH
from tests.unit.flow_model import DAY_MS, FlowModel

NOW = 1_795_430_000_000
MIN = 60_000


def view(i: int, campaign: str, ts: int = NOW, channel: str = "web") -> dict[str, object]:
    return {"event_id": f"v-{i}", "ts": ts, "campaign_id": campaign, "channel": channel}


def live_cells(model: FlowModel) -> set[tuple[str, str]]:
    return {(c, ch) for c, ch, w in model.rows() if w == "total"}


def test_a_flood_of_new_campaigns_stops_at_the_cap_and_known_ones_keep_counting() -> None:
    model = FlowModel(NOW, partitions=4, max_campaign_channels=8)
    model.publish("views", view(0, "real"))
    model.publish("views", [view(i, f"flood-{i}") for i in range(1, 500)])
    model.publish("views", view(500, "real"))
    cells = live_cells(model)
    assert ("real", "web") in cells
    assert len(cells) == 8  # one worker owns every partition: the cap, exactly
    refused = [d for d in model.dead_letters if d["reason"].startswith("too many")]
    assert len(refused) == 500 - len(cells)
    assert "[kpi] max_campaign_channels is 8" in refused[0]["reason"]
    assert model.outcomes[("view", "invalid")] == len(refused)
    assert model.rows()[("real", "web", "total")][VIEWS] == 2


def test_campaigns_that_hash_unevenly_fill_the_cap_of_a_worker_owning_every_partition(
) -> None:
    """The cap is per deployment (SPEC 4): campaigns that all land in one partition still
    count up to it when one worker owns every partition, and not one past it."""
    model = FlowModel(NOW, partitions=4, max_campaign_channels=8)
    crowded = [f"c{i}" for i in range(200) if model.part(f"c{i}") == 0][:9]
    model.publish("views", [view(i, campaign) for i, campaign in enumerate(crowded)])
    assert live_cells(model) == {(c, "web") for c in crowded[:8]}
    (refused,) = model.dead_letters
    assert refused["reason"].startswith("too many campaign-channels")


def test_a_worker_owning_half_the_partitions_holds_half_the_cap() -> None:
    """Several workers: each keeps its partitions' share of the cap, so the deployment's
    live campaign-channels stay within it."""
    model = FlowModel(NOW, partitions=4, max_campaign_channels=8)
    owned = {0, 1}
    model.counts.rebuild(owned, lambda campaign: model.part(campaign) in owned, NOW)
    mine = [f"c{i}" for i in range(200) if model.part(f"c{i}") in owned][:6]
    model.publish("views", [view(i, campaign) for i, campaign in enumerate(mine)])
    assert live_cells(model) == {(c, "web") for c in mine[:4]}
    assert len(model.dead_letters) == 2
    assert "4 on this worker, for 2 of 4 partitions" in model.dead_letters[0]["reason"]


def test_campaign_channels_reloaded_at_a_restart_still_count_against_the_cap() -> None:
    model = FlowModel(NOW, partitions=4, max_campaign_channels=3)
    model.publish("views", [view(i, f"c{i}") for i in range(3)])
    every = set(range(4))
    model.counts.rebuild(every, lambda campaign: True, NOW)  # a restart on the same tables
    model.publish("views", [view(3, "c3"), view(4, "c0")])
    assert live_cells(model) == {(f"c{i}", "web") for i in range(3)}
    (refused,) = model.dead_letters
    assert refused["raw"] == (f'{{"campaign":"c3","kind":"v","id":"v-3","ts":{NOW},'
                              '"channel":"web","amount":0}')
    assert model.rows()[("c0", "web", "total")][VIEWS] == 2


def test_a_new_channel_of_a_known_campaign_counts_against_the_cap_too() -> None:
    model = FlowModel(NOW, partitions=1, max_campaign_channels=2)
    model.publish("views", [view(1, "a", channel="web"), view(2, "a", channel="tv"),
                            view(3, "a", channel="radio"), view(4, "a", channel="web")])
    assert live_cells(model) == {("a", "tv"), ("a", "web")}  # first come: radio refused
    assert model.rows()[("a", "web", "total")][VIEWS] == 2
    (refused,) = model.dead_letters
    assert refused["index"] == 2 and refused["type"] == "view"


def test_silent_campaign_channels_retire_and_make_room() -> None:
    model = FlowModel(NOW, partitions=1, max_campaign_channels=1,
                      campaign_retention_ms=2 * DAY_MS)
    model.publish("views", view(1, "old"))
    model.publish("views", view(2, "new"))
    assert live_cells(model) == {("old", "web")}
    model.now_ms += 2 * DAY_MS + MIN  # silent past the retention
    model.publish("views", view(3, "new", ts=model.now_ms))
    assert live_cells(model) == {("new", "web")}
    assert model.rows()[("new", "web", "total")][VIEWS] == 1
    assert not [key for key in model.counts.table if key[0] == "old"]  # tombstoned
    assert model.rows().get(("old", "web", "total"), [0] * WIDTH)[VIEWS] == 0


def test_a_partition_without_events_still_retires_and_forgets_on_its_ticks() -> None:
    """No event comes to the partition again: the ticks alone retire its campaign-channel
    (with tombstones) and forget its ids."""
    model = FlowModel(NOW, partitions=4, max_campaign_channels=100,
                      campaign_retention_ms=2 * DAY_MS)
    model.publish("views", view(1, "ended"))
    partition = model.part("ended")
    assert live_cells(model) == {("ended", "web")}
    assert len(model.counts.id_table) == 1
    model.tick(advance_ms=DAY_MS + MIN)  # past the dedup window
    assert len(model.counts.id_table) == 0
    assert live_cells(model) == {("ended", "web")}
    model.tick(advance_ms=DAY_MS + MIN)  # silent past the retention
    assert live_cells(model) == set()
    assert not [key for key in model.counts.table if key[0] == "ended"]
    assert model.counts.campaigns is not None
    assert model.counts.campaigns.live.get(partition, {}) == {}
