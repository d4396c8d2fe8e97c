"""Publishers cannot grow ``/metrics`` or ``/v1/topics`` without bound (issue 11.5)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.observability.metrics import OVERFLOW
from tests.backends import unique
from tests.harness import Hookline, eventually, running_hookline
from tests.receiver import Receiver

Sample = tuple[str, dict[str, str], float]


async def samples(hookline: Hookline) -> list[Sample]:
    response = await hookline.client.get("/metrics")
    assert response.status_code == 200, response.text
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]


def label_values(got: list[Sample], label: str) -> set[str]:
    return {labels[label] for _, labels, _ in got if label in labels}


def total(got: list[Sample], name: str, **where: str) -> float:
    return sum(
        v for n, labels, v in got if n == name and all(labels.get(k) == w for k, w in where.items())
    )


async def test_label_values_are_capped_and_unsubscribed_topics_share_one_series(
    receiver: Receiver,
) -> None:
    cap = 3
    async with running_hookline("builtin", observability={"max_label_values": cap}) as hookline:
        topics = [unique(f"sub{i}") for i in range(5)]
        subs = [unique(f"s{i}") for i in range(5)]
        for topic, sub in zip(topics, subs, strict=True):
            await hookline.subscribe(id=sub, topic=topic, url=receiver.url("/ok"))
        for topic in topics:
            await hookline.publish(topic, {"to": topic})
        for n in range(40):
            await hookline.publish(unique(f"nobody{n}"), {"n": n})
        await receiver.wait_for(5, "/ok")

        async def delivered_all() -> bool:
            return total(await samples(hookline), "hookline_deliveries_total") == 5

        await eventually(delivered_all)
        before = await samples(hookline)
        topic_labels = label_values(before, "topic")
        sub_labels = label_values(before, "subscription")
        assert len(topic_labels - {OVERFLOW}) <= cap
        assert len(sub_labels - {OVERFLOW}) <= cap
        assert OVERFLOW in topic_labels
        assert OVERFLOW in sub_labels
        assert not any(t.startswith("nobody") for t in topic_labels)
        # Nothing is lost, only grouped.
        assert total(before, "hookline_messages_published_total") == 45
        assert total(before, "hookline_messages_published_total", topic=OVERFLOW) >= 40

        # Thousands more unsubscribed topics add no series at all.
        for n in range(200):
            await hookline.publish(unique(f"more{n}"), {"n": n})
        after = await samples(hookline)
        assert len(after) == len(before)
        assert total(after, "hookline_messages_published_total") == 245

        # A deleted subscription gives its series and its label slot back.
        labelled = sorted(sub_labels - {OVERFLOW})
        gone = labelled[0]
        deleted = await hookline.client.delete(f"/v1/subscriptions/{gone}")
        assert deleted.status_code == 204, deleted.text

        async def forgotten() -> bool:
            return gone not in label_values(await samples(hookline), "subscription")

        await eventually(forgotten)
        # The freed slot goes to a subscription that was counted under the overflow.
        relabelled = label_values(await samples(hookline), "subscription") - {OVERFLOW}
        assert len(relabelled) == cap
        assert relabelled - set(labelled)


async def test_topic_list_pages_visit_every_topic_once(receiver: Receiver) -> None:
    async with running_hookline("builtin") as hookline:
        topics = {unique(f"page{i:02d}") for i in range(25)}
        for topic in topics:
            await hookline.subscribe(topic=topic, url=receiver.url())
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 7}
            if cursor is not None:
                params["cursor"] = cursor
            response = await hookline.client.get("/v1/topics", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["topics"]) <= 7
            seen += [t["topic"] for t in page["topics"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(topics)
        assert pages == 4

        default = (await hookline.client.get("/v1/topics")).json()
        assert len(default["topics"]) == 25
        assert default["next_cursor"] is None

        for params in ({"limit": 1001}, {"limit": 0}, {"cursor": "not a topic!"}):
            refused = await hookline.client.get("/v1/topics", params=params)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "validation_error"
