"""The console in Chromium against a real ``hookline serve`` and a real receiver: sign in,
watch a topic appear, pause and resume, redrive a dead letter and see it delivered.

Every test ends with no console error (but those it provokes) and no request that left
127.0.0.1; each page's screenshot lands in ``test-artifacts/ui/``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.backends import unique
from tests.process import until
from tests.receiver import Receiver, Reply
from tests.ui.conftest import DLQ_KEY, PUBLISH_KEY, Console, Server, new_console

pytestmark = pytest.mark.slow


async def subscribe(server: Server, topic: str, url: str, **extra: Any) -> dict[str, Any]:
    body = {"topic": topic, "url": url, "retry": {"retry_delay_ms": 20, "jitter": 0}, **extra}
    created: dict[str, Any] = await server.call("POST", "/v1/subscriptions", json=body)
    return created


async def signed_in(browser: Any, server: Server, key: str | None = None, **ctx: Any) -> Console:
    console = await new_console(browser, server, **ctx)
    await console.open()
    if server.key:
        await console.sign_in(key or server.key)
    return console


async def test_a_wrong_key_is_refused_with_the_servers_error(
    browser: Any, keyed_server: Server
) -> None:
    console = await new_console(browser, keyed_server)
    console.watch.allow(r"status of 401")  # the refused sign-in request
    await console.open()
    page = console.page
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await console.screenshot("sign-in")
    await console.sign_in("not-a-key-at-all")
    await expect(page.get_by_role("alert")).to_contain_text("invalid API key")
    await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0
    await console.sign_in(keyed_server.key or "")
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.get_by_text("Key scopes: admin")).to_be_visible()
    # Signing out forgets the key: a reload asks again.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    console.watch.assert_clean()


async def test_a_topic_appears_live_after_a_publish(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    topic = unique("ui.orders")
    console = await signed_in(browser, keyed_server)
    page = console.page
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    section = page.locator(f'section[data-topic="{topic}"]')
    await expect(section).to_have_count(0)
    sub = await subscribe(keyed_server, topic, receiver.url("/live"))
    await keyed_server.call("POST", f"/v1/topics/{topic}/messages", json={"data": {"n": 1}})
    await receiver.wait_for(1, "/live")
    # No reload: the overview refreshes by itself.
    await expect(section.get_by_role("heading", name=topic)).to_be_visible()
    await expect(section.get_by_role("link", name=sub["id"])).to_be_visible()
    await expect(section.get_by_text(receiver.url("/live"))).to_be_visible()
    # Rates come from successive readings of /metrics: the delivery shows up as a rate.
    await keyed_server.call("POST", f"/v1/topics/{topic}/messages", json={"data": {"n": 2}})
    await receiver.wait_for(2, "/live")
    delivered = section.locator(".stat", has_text="Delivered").locator(".stat-value")
    await expect(delivered).to_have_text(re.compile(r"^(?!0\.0/s)\d+(\.\d)?/s$"), timeout=10_000)
    await console.screenshot("overview")
    console.watch.assert_clean()


async def test_the_publish_form_publishes(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    topic = unique("ui.publish")
    await subscribe(keyed_server, topic, receiver.url("/form"))
    console = await signed_in(browser, keyed_server)
    page = console.page
    await console.go(f"#/publish?topic={topic}")
    await expect(page.get_by_role("heading", name="Publish a message")).to_be_visible()
    await expect(page.get_by_label("Topic")).to_have_value(topic)
    data = page.get_by_label("Data (JSON)")
    await data.fill("{not json")
    await page.get_by_role("button", name="Publish").click()
    await expect(data).to_have_attribute("aria-invalid", "true")
    await expect(data).to_be_focused()
    await data.fill('{"from": "the console"}')
    await page.get_by_label("Headers (JSON object, optional)").fill('{"source": "ui"}')
    await page.get_by_role("button", name="Publish").click()
    published = page.locator("#published")
    await expect(published).to_contain_text("Published message")
    message_id = await published.get_attribute("data-message-id")
    [got] = await receiver.wait_for(1, "/form")
    assert got.json()["data"] == {"from": "the console"}
    assert got.json()["id"] == message_id
    await console.screenshot("publish")
    console.watch.assert_clean()


async def test_a_publish_only_key_sees_only_what_it_may_do(
    browser: Any, keyed_server: Server
) -> None:
    console = await signed_in(browser, keyed_server, PUBLISH_KEY)
    page = console.page
    nav = page.get_by_role("navigation", name="Main")
    await expect(page.get_by_role("heading", name="Publish a message")).to_be_visible()
    await expect(nav.get_by_role("link")).to_have_text(["Publish"])
    console.watch.assert_clean()


async def test_pause_resume_rotate_edit_and_delete_a_subscription(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    topic = unique("ui.subs")
    sub = await subscribe(keyed_server, topic, receiver.url("/sub"))
    console = await signed_in(browser, keyed_server)
    console.watch.allow(r"status of 422")  # the bad condition, refused on purpose
    page = console.page
    path = f"/v1/subscriptions/{sub['id']}"
    await console.go(f"#/subscriptions/{sub['id']}")
    await expect(page.get_by_role("heading", name=f"Subscription {sub['id']}")).to_be_focused()
    state = page.locator("#sub-state")
    await expect(state).to_have_text("active")

    await page.get_by_role("button", name="Pause").click()
    await expect(state).to_have_text("paused")
    assert (await keyed_server.call("GET", path))["paused"] is True
    await expect(page.get_by_role("button", name="Pause")).to_be_disabled()
    await page.get_by_role("button", name="Resume").click()
    await expect(state).to_have_text("active")
    assert (await keyed_server.call("GET", path))["paused"] is False

    # Rotate: confirmed in a dialog, the new secret shown once.
    await page.get_by_label("Old secret keeps signing for (ms)").fill("0")
    await page.get_by_role("button", name="Rotate secret").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await dialog.get_by_role("button", name="Rotate").click()
    secret = page.get_by_label("New secret (shown this once: copy it now)")
    await expect(secret).to_have_value(re.compile(r"^whsec_"))
    assert await secret.input_value() != sub["secret"]

    # A condition that does not compile: the server's error next to the field.
    condition = page.get_by_label("Condition (CEL)")
    await condition.fill("data.amount >")
    await page.get_by_role("button", name="Save changes").click()
    await expect(condition).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".field-error").filter(has_text=re.compile(r"\S"))).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("condition")
    assert (await keyed_server.call("GET", path))["condition"] is None
    await condition.fill("data.amount > 100")
    await page.get_by_label("Max retries").fill("7")
    await page.get_by_role("button", name="Save changes").click()
    saved_notice = page.locator("main").get_by_text("Retry policy and condition saved.")
    await expect(saved_notice).to_be_visible()
    saved = await keyed_server.call("GET", path)
    assert saved["condition"] == "data.amount > 100"
    assert saved["retry"]["max_retries"] == 7
    await console.screenshot("subscription")

    # Delete: Cancel keeps it, Delete removes it.
    await page.get_by_role("button", name="Delete subscription").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert (await keyed_server.call("GET", path))["id"] == sub["id"]
    await page.get_by_role("button", name="Delete subscription").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    async with keyed_server.client() as client:
        assert (await client.get(path)).status_code == 404
    console.watch.assert_clean()


async def test_a_dead_letter_is_found_and_redriven_until_delivered(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    topic = unique("ui.dlq")
    receiver.script("/flaky", Reply(status=500, body=b"receiver down"))
    sub = await subscribe(
        keyed_server, topic, receiver.url("/flaky"), retry={"max_retries": 0, "jitter": 0}
    )
    published = await keyed_server.call(
        "POST", f"/v1/topics/{topic}/messages", json={"data": {"order": 42}}
    )
    message_id = published["id"]

    async def dead_lettered() -> bool:
        count = await keyed_server.call("GET", f"/v1/topics/{topic}/dlq/count")
        return bool(count["count"] == 1)

    await until(dead_lettered, what="the message dead-lettered")

    console = await signed_in(browser, keyed_server)
    page = console.page
    # From the overview's DLQ link to the topic's dead letters.
    await (
        page.locator(f'section[data-topic="{topic}"]')
        .get_by_role("link", name="Dead letters")
        .click()
    )
    await expect(page.get_by_role("heading", name=f"Dead letters of {topic}")).to_be_focused()
    row = page.locator(f'tr[data-message="{message_id}"]')
    await expect(row).to_contain_text(sub["id"])
    await expect(row).to_contain_text("500")
    await expect(page.locator("#dlq-count")).to_contain_text("1 entry")

    await row.get_by_role("button", name=f"Inspect {message_id}").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("receiver down")
    await expect(dialog).to_contain_text('"order": 42')
    await console.screenshot("dlq-entry")
    await page.keyboard.press("Escape")
    await expect(dialog).to_have_count(0)
    await console.screenshot("dlq")

    await row.get_by_role("button", name=f"Redrive {message_id}").click()
    await expect(page.locator("main").get_by_text("Redriven 1 entry")).to_be_visible()
    delivered = await receiver.wait_for(2, "/flaky")
    assert delivered[-1].json()["id"] == message_id
    assert delivered[-1].json()["data"] == {"order": 42}
    await expect(page.locator("main").get_by_text("No dead letters here.")).to_be_visible()
    console.watch.assert_clean()


async def test_redrive_selected_redrive_all_and_purge(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    topic = unique("ui.bulk")
    receiver.script("/bulk", *[Reply(status=410)] * 5)
    await subscribe(keyed_server, topic, receiver.url("/bulk"))
    body = {"messages": [{"data": {"n": n}} for n in range(5)]}
    await keyed_server.call("POST", f"/v1/topics/{topic}/messages/batch", json=body)

    async def all_dead() -> bool:
        count = await keyed_server.call("GET", f"/v1/topics/{topic}/dlq/count")
        return bool(count["count"] == 5)

    await until(all_dead, what="five dead letters")
    # A dlq-only key: it cannot list topics, but it can work the DLQ.
    phone = {"width": 390, "height": 844}
    console = await signed_in(browser, keyed_server, DLQ_KEY, viewport=phone)
    page = console.page
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    await console.go("#/dlq")
    await expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    await page.get_by_label("Topic", exact=True).fill(topic)
    await page.get_by_role("button", name="Show").click()
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(5)
    await console.screenshot("dlq-phone")
    await rows.nth(0).get_by_role("checkbox").check()
    await rows.nth(1).get_by_role("checkbox").check()
    await page.get_by_role("button", name="Redrive selected (2)").click()
    await expect(page.locator("main").get_by_text("Redriven 2 entries (selected)")).to_be_visible()
    await receiver.wait_for(7, "/bulk")
    await expect(rows).to_have_count(3)

    await page.get_by_role("button", name="Redrive all").click()
    await page.get_by_role("dialog").get_by_role("button", name="Redrive all").click()
    await expect(page.locator("main").get_by_text("Redriven 3 entries (all)")).to_be_visible()
    await receiver.wait_for(10, "/bulk")
    await expect(page.locator("main").get_by_text("No dead letters here.")).to_be_visible()

    # Purge: make one more dead letter, then purge it (after a confirmation).
    receiver.script("/bulk", Reply(status=410))
    await keyed_server.call("POST", f"/v1/topics/{topic}/messages", json={"data": {"n": 9}})
    await until(lambda: _count_is(keyed_server, topic, 1), what="one more dead letter")
    await page.get_by_role("button", name="Show").click()
    await expect(rows).to_have_count(1)
    await page.get_by_role("button", name="Purge").click()
    await page.get_by_role("dialog").get_by_role("button", name="Purge").click()
    await expect(page.locator("main").get_by_text("Purged 1 entry")).to_be_visible()
    assert await _count_is(keyed_server, topic, 0)
    console.watch.assert_clean()


async def _count_is(server: Server, topic: str, expected: int) -> bool:
    count = await server.call("GET", f"/v1/topics/{topic}/dlq/count")
    return bool(count["count"] == expected)


async def test_dlq_pages_follow_next_cursor(browser: Any, keyed_server: Server) -> None:
    topic = unique("ui.pages")
    receiver_url = "http://127.0.0.1:9/unreachable"  # nothing listens: connection refused
    await subscribe(keyed_server, topic, receiver_url, retry={"max_retries": 0})
    body = {"messages": [{"data": {"n": n}} for n in range(30)]}
    await keyed_server.call("POST", f"/v1/topics/{topic}/messages/batch", json=body)
    await until(lambda: _count_is(keyed_server, topic, 30), what="thirty dead letters")
    console = await signed_in(browser, keyed_server)
    page = console.page
    await console.go(f"#/dlq/{topic}")
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(25)
    await expect(page.locator("#dlq-count")).to_contain_text("30 entries, page 1")
    await page.get_by_role("button", name="Next page").click()
    await expect(rows).to_have_count(5)
    await expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    await page.get_by_role("button", name="Previous page").click()
    await expect(rows).to_have_count(25)
    console.watch.assert_clean()


async def test_open_mode_shows_the_readyz_warning(browser: Any, open_server: Server) -> None:
    console = await new_console(browser, open_server)
    await console.open()
    page = console.page
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.get_by_role("note")).to_contain_text("open (no API keys configured)")
    await expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    console.watch.assert_clean()


async def _message_lookup_exists(server: Server) -> bool:
    async with server.client() as client:
        answer = await client.get("/v1/messages/no-such-message")
    return not (answer.status_code == 404 and answer.json()["error"]["message"] == "Not Found")


async def test_the_message_page_says_when_lookup_is_missing(
    browser: Any, keyed_server: Server
) -> None:
    if await _message_lookup_exists(keyed_server):
        pytest.skip("this hookline has GET /v1/messages/{id}: see the message page test")
    console = await signed_in(browser, keyed_server)
    page = console.page
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(
        ["Overview", "Dead letters", "Publish"]
    )
    await console.go("#/messages/some-id")
    missing = page.locator("main").get_by_text("Message lookup is not available on this server.")
    await expect(missing).to_be_visible()
    console.watch.assert_clean()


async def test_the_message_page_shows_states_and_attempts_and_resends(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    if not await _message_lookup_exists(keyed_server):
        pytest.skip("GET /v1/messages/{id} answers 404 Not Found: message lookup not merged yet")
    topic = unique("ui.msg")
    receiver.script("/msg", Reply(status=500, body=b"first try fails"))
    sub = await subscribe(keyed_server, topic, receiver.url("/msg"))
    published = await keyed_server.call("POST", f"/v1/topics/{topic}/messages", json={"data": 7})
    await receiver.wait_for(2, "/msg")
    console = await signed_in(browser, keyed_server)
    page = console.page
    await console.go("#/messages")
    await page.get_by_label("Message id").fill(published["id"])
    await page.get_by_role("button", name="Look up").click()
    delivery = page.locator("section.delivery", has_text=sub["id"])
    await expect(delivery).to_contain_text("delivered", timeout=10_000)
    await expect(delivery.locator(".timeline li")).to_have_count(2)
    await expect(delivery).to_contain_text("first try fails")
    await console.screenshot("message")
    await delivery.get_by_role("button", name="Resend").click()
    await expect(delivery).to_contain_text("Resent to")
    got = await receiver.wait_for(3, "/msg")
    assert got[-1].json()["id"] == published["id"]
    console.watch.assert_clean()


async def test_a_page_change_while_a_page_loads_shows_only_the_newer_page(
    browser: Any, keyed_server: Server, receiver: Receiver
) -> None:
    """Two renders in flight at once (two hash changes before the API answers) once put
    both pages' content on screen, two headings and no focus; the older one now finishes
    into a detached view.
    """
    sub = await subscribe(keyed_server, unique("ui.race"), receiver.url("/race"))
    console = await signed_in(browser, keyed_server)
    page = console.page
    target = f"#/subscriptions/{sub['id']}"
    await page.evaluate("(h) => { location.hash = h + '?first=1'; location.hash = h; }", target)
    heading = page.get_by_role("heading", name=f"Subscription {sub['id']}")
    await expect(heading).to_be_focused()
    await expect(page.get_by_role("heading", level=1)).to_have_count(1)
    await expect(page.locator("#sub-state")).to_have_count(1)
    console.watch.assert_clean()
