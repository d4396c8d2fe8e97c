"""The console's page and files as served (no browser): content types, the strict CSP,
nothing outside the console folder, the optional routes it is told about; and
``GET /v1/whoami``, which tells the console what a key may do.
"""

from __future__ import annotations

import re

from app.ui import CONTENT_SECURITY_POLICY, static_dir
from tests.harness import running_hookline

KEYS = [
    {"key": "admin-key-0123456789", "scopes": ["admin"]},
    {"key": "publish-key-0123456789", "scopes": ["publish", "dlq"]},
]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_page_and_its_assets_are_served_with_a_strict_csp() -> None:
    async with running_hookline("builtin") as hookline:
        client = hookline.client
        moved = await client.get("/ui")
        assert moved.status_code == 308
        assert moved.headers["location"] == "ui/"  # relative: right behind a proxy's prefix too
        page = await client.get("/ui/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["x-content-type-options"] == "nosniff"
        html = page.text
        assert '<base href="/ui/">' in html
        # No inline script or style, no other host: only files of the console itself.
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
        assert "style=" not in html
        assert "<style" not in html
        assert re.findall(r"(?i)(?:https?:)?//", html) == []
        referenced = re.findall(r'(?:src|href)="(assets/[^"]+)"', html)
        assert {"assets/main.js", "assets/console.css", "assets/icon.svg"} <= set(referenced)
        expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        for asset in static_dir().iterdir():
            if asset.suffix not in expected:
                continue
            answer = await client.get(f"/ui/assets/{asset.name}")
            assert answer.status_code == 200, asset.name
            assert answer.headers["content-type"].startswith(expected[asset.suffix]), asset.name
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.content == asset.read_bytes()


async def test_no_file_outside_the_console_assets_is_served() -> None:
    async with running_hookline("builtin") as hookline:
        for path in (
            "/ui/assets/index.html",  # the template itself: only through /ui
            "/ui/assets/missing.js",
            "/ui/assets/..%2F__init__.py",
            "/ui/assets/%2E%2E%2Fstatic%2Fmain.js",
            "/ui/assets/Main.JS",
        ):
            answer = await hookline.client.get(path)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["code"] == "not_found"


async def test_modules_import_only_files_that_exist() -> None:
    """A typo in an import would break the page only in a browser: catch it here."""
    names = {p.name for p in static_dir().iterdir()}
    for module in static_dir().glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert imported in names, f"{module.name} imports missing {imported}"


async def test_the_page_is_told_which_optional_routes_exist() -> None:
    async with running_hookline("builtin", auth={"protect_metrics": True}) as hookline:
        html = (await hookline.client.get("/ui/")).text
        probe = await hookline.client.get("/v1/messages/no-such-message")
        has_lookup = probe.json()["error"]["message"] != "Not Found"  # the router's own 404
        features = re.search(r'data-features="([^"]*)"', html)
        assert features is not None
        expected = {"message_lookup", "resend", "attempt_log"} if has_lookup else set()
        assert set(features.group(1).split()) == expected
        assert 'data-metrics="admin"' in html


async def test_whoami_reports_the_scopes_of_the_key() -> None:
    async with running_hookline("builtin", auth={"api_keys": KEYS}) as hookline:
        client = hookline.client
        admin = await client.get("/v1/whoami", headers=bearer("admin-key-0123456789"))
        assert admin.json() == {"auth": "api_keys", "scopes": ["admin"]}
        limited = await client.get("/v1/whoami", headers=bearer("publish-key-0123456789"))
        assert limited.json() == {"auth": "api_keys", "scopes": ["dlq", "publish"]}
        for headers in ({}, bearer("not-a-key-at-all")):
            refused = await client.get("/v1/whoami", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthorized"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        # The page itself is readable without a key (it holds no data), the API is not.
        assert (await client.get("/ui/")).status_code == 200
        assert (await client.get("/v1/topics")).status_code == 401


async def test_whoami_in_open_mode() -> None:
    async with running_hookline("builtin") as hookline:
        answer = await hookline.client.get("/v1/whoami")
        assert answer.status_code == 200
        assert answer.json() == {"auth": "open", "scopes": ["admin"]}


async def test_whoami_is_in_the_spec() -> None:
    async with running_hookline("builtin") as hookline:
        spec = (await hookline.client.get("/openapi.json")).json()
        operation = spec["paths"]["/v1/whoami"]["get"]
        assert "401" in operation["responses"]
        assert not any(path.startswith("/ui") for path in spec["paths"])


async def test_a_client_without_a_browser_sees_no_data_on_the_page() -> None:
    async with running_hookline("builtin", auth={"api_keys": KEYS}) as hookline:
        await hookline.client.post(
            "/v1/topics/secret.topic/messages",
            json={"data": 1},
            headers=bearer("admin-key-0123456789"),
        )
        page = await hookline.client.get("/ui/")
        assert "secret.topic" not in page.text
        assert page.status_code == 200
