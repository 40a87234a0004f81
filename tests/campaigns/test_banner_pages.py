"""The banner pages: a banner made and put live through the editor (its fields refused at
the field), its page with impressions, unique viewers, clicks, CTR, dismissals and the
share of its placement, ended; the placements page (a new one, a key taken, one in use
not deleted, the built-in ones kept); the demo page; the allowed origins in the
workspace settings; another workspace's placement is not found."""

import json

import pytest

from accounts.audit import Actor
from accounts.models import AuditEntry, Role
from campaigns import banners
from campaigns.models import Campaign, Placement
from campaigns.services import campaign_create, campaign_launch
from tests.campaigns.test_banners import clear_banner_cache
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_banner_cache()
    yield
    clear_banner_cache()


@pytest.fixture
def client_(client, marketer):
    client.force_login(marketer)
    return client


def text(response) -> str:
    return response.content.decode()


def test_a_banner_is_written_put_live_followed_and_ended(client_, workspace):
    response = client_.post("/campaigns/", {"name": "Summer", "channel": "banner"})
    campaign = Campaign.objects.for_workspace(workspace).get()
    assert response.status_code == 302 and campaign.channel == "banner"
    editor = text(client_.get(f"/campaigns/{campaign.pk}/edit/"))
    assert 'name="placement"' in editor and 'value="sidebar"' in editor
    assert 'id="variants"' not in editor and 'id="test"' not in editor  # no A/B, no test send
    fields = {"name": "Summer", "placement": "hero", "title": "Summer sale", "body": "20% off",
              "image_url": "", "cta_label": "Shop", "cta_url": "javascript:alert(1)",
              "priority": "70", "dismissible": "on"}  # fmt: skip
    refused = client_.post(f"/campaigns/{campaign.pk}/content/", fields, HTTP_HX_REQUEST="true")
    assert 'data-error="cta_url"' in text(refused)
    saved = client_.post(f"/campaigns/{campaign.pk}/content/",
                         fields | {"cta_url": "https://shop.example.com/"},
                         HTTP_HX_REQUEST="true")  # fmt: skip
    assert "Saved at" in text(saved)
    campaign.refresh_from_db()
    assert campaign.content["priority"] == 70 and campaign.content["dismissible"] is True
    preview = text(client_.get(f"/campaigns/{campaign.pk}/preview/"))
    assert 'id="banner-preview"' in preview and "Summer sale" in preview
    client_.post(f"/campaigns/{campaign.pk}/targeting/", {"target": "everyone"})
    launched = client_.post(f"/campaigns/{campaign.pk}/launch/", {"when": "now"})
    assert launched.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "live"
    # people see it; the events flush fills the page's figures
    ann = PersonFactory(workspace=workspace, external_id="ann")
    served = banners.serve(workspace.pk, ["hero"], "ann")
    assert [b["title"] for b in served] == ["Summer sale"]
    for kind in ("impression", "impression", "click"):
        banners.record(served[0]["token"], kind)
    banners.record(served[0]["token"], "dismiss")
    banners.flush_events()
    page = text(client_.get(f"/campaigns/{campaign.pk}/"))
    assert 'data-banner="impressions">2<' in page and 'data-banner="viewers">1<' in page
    assert 'data-banner="clicks">1<' in page and 'data-banner="ctr">50.0%<' in page
    assert 'data-banner="dismissals">1<' in page and 'id="banner-share"' in page
    assert 'id="engagement-chart"' in page and ann.pk
    ended = client_.post(f"/campaigns/{campaign.pk}/end/")
    assert ended.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "ended"
    assert AuditEntry.objects.for_workspace(workspace).filter(action="campaign.ended").exists()


def test_placements_are_made_kept_while_used_and_deleted(client_, workspace):
    page = text(client_.get("/campaigns/placements/"))
    assert all(f'data-placement="{k}"' in page for k in ("top", "hero", "sidebar"))
    made = client_.post("/campaigns/placements/", {"name": "Feed", "key": "feed",
                                                   "max_banners": 2})  # fmt: skip
    assert made.status_code == 302
    feed = Placement.objects.for_workspace(workspace).get(key="feed")
    assert feed.max_banners == 2 and not feed.builtin
    taken = client_.post("/campaigns/placements/", {"name": "Feed 2", "key": "feed",
                                                    "max_banners": 1})  # fmt: skip
    assert "already" in text(taken)
    bad = client_.post("/campaigns/placements/", {"name": "X", "key": "no spaces",
                                                  "max_banners": 11})  # fmt: skip
    assert text(bad).count("invalid-feedback") >= 2
    user = campaign_create(workspace=workspace, name="Feed banner", channel="banner",
                           everyone=True, actor=ACTOR,
                           content={"placement": "feed", "title": "Hi"})  # fmt: skip
    campaign_launch(campaign=user, actor=ACTOR)
    refused = client_.post("/campaigns/placements/", {"delete": feed.pk}, follow=True)
    assert "in use by “Feed banner”" in text(refused)
    assert Placement.objects.filter(pk=feed.pk).exists()
    Campaign.objects.filter(pk=user.pk).update(status="ended")
    client_.post("/campaigns/placements/", {"delete": feed.pk})
    assert not Placement.objects.filter(pk=feed.pk).exists()
    top = Placement.objects.for_workspace(workspace).get(key="top")
    kept = client_.post("/campaigns/placements/", {"delete": top.pk}, follow=True)
    assert "built-in placement stays" in text(kept)


def test_another_workspaces_placement_is_not_found(client_, other_workspace):
    theirs = Placement.objects.create(workspace=other_workspace, key="x", name="X")
    assert client_.post("/campaigns/placements/", {"delete": theirs.pk}).status_code == 404
    assert Placement.objects.filter(pk=theirs.pk).exists()


def test_a_viewer_reads_placements_but_cannot_change_them(member_client, workspace):
    viewer = member_client(Role.VIEWER)
    assert viewer.get("/campaigns/placements/").status_code == 200
    assert 'id="new-placement"' not in text(viewer.get("/campaigns/placements/"))
    assert viewer.post("/campaigns/placements/", {"name": "F", "key": "f",
                                                  "max_banners": 1}).status_code == 404  # fmt: skip


def test_the_demo_page_loads_the_snippet_with_a_preview_token(client_, workspace):
    page = text(client_.get("/campaigns/banners/demo/?person=ann"))
    assert "herald-banners.js" in page and 'data-person="ann"' in page
    token = page.split('data-key="', 1)[1].split('"', 1)[0]
    assert banners.key_workspace(token) == workspace.pk
    assert 'data-herald-placement="top"' in page


def test_allowed_origins_in_the_workspace_settings(owner_client, workspace):
    base = {"name": workspace.name, "time_zone": workspace.time_zone}
    bad = owner_client.post("/settings/", base | {
        "banner_allowed_origins": "https://shop.example.com\nshop.example.com/path"})  # fmt: skip
    assert "Line 2" in text(bad)
    ok = owner_client.post("/settings/", base | {
        "banner_allowed_origins": "https://Shop.Example.com/\nhttp://localhost:3000"})  # fmt: skip
    assert ok.status_code == 302
    workspace.refresh_from_db()
    assert workspace.banner_allowed_origins == ["https://shop.example.com",
                                                "http://localhost:3000"]  # fmt: skip


def test_allowed_origins_through_the_api(api_client, workspace):
    url = "/api/v1/banners/settings"
    put = api_client.put(url, json.dumps({"allowed_origins": ["https://a.example.com/"]}),
                         content_type="application/json")  # fmt: skip
    assert put.status_code == 200 and put.json() == {"allowed_origins": ["https://a.example.com"]}
    assert api_client.get(url).json() == {"allowed_origins": ["https://a.example.com"]}
    bad = api_client.put(url, json.dumps({"allowed_origins": ["ftp://x"]}),
                         content_type="application/json")  # fmt: skip
    assert bad.status_code == 422 and "allowed_origins" in bad.content.decode()
