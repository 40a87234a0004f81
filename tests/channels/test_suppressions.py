"""What a `suppress` outcome of a send does, set-based: email addresses and phone numbers
go on Do Not Contact (source bounce, audited once with the count, never the addresses),
dead push tokens are deleted; nothing of another workspace is touched."""

from accounts.models import AuditEntry
from channels.services import suppressions_apply
from people.models import DoNotContact, PushToken
from tests.factories import PersonFactory


def test_dead_addresses_go_on_do_not_contact_once(db, workspace, other_workspace):
    added = suppressions_apply(
        workspace=workspace, channel="email",
        addresses=["Ada@Example.com", "ada@example.com", "bob@example.com", "not an address"],
    )  # fmt: skip
    assert added == 2
    entries = DoNotContact.objects.for_workspace(workspace).order_by("address")
    assert [(e.address, e.source) for e in entries] == [
        ("ada@example.com", "bounce"), ("bob@example.com", "bounce")
    ]  # fmt: skip
    assert suppressions_apply(workspace=workspace, channel="email",
                              addresses=["bob@example.com"]) == 0  # fmt: skip
    entry = AuditEntry.objects.filter(workspace=workspace, action="dnc.add_many").get()
    assert entry.summary == {"channel": "email", "source": "bounce", "added": 2}
    assert "ada@example.com" not in str(entry.summary)
    assert not DoNotContact.objects.for_workspace(other_workspace).exists()
    assert suppressions_apply(workspace=workspace, channel="sms", addresses=["+44 7911 123456"])
    assert DoNotContact.objects.for_workspace(workspace).filter(channel="sms").get().address == (
        "+447911123456"
    )


def test_dead_push_tokens_are_deleted(db, workspace, other_workspace):
    ada = PersonFactory(workspace=workspace)
    theirs = PersonFactory(workspace=other_workspace)
    PushToken.objects.create(workspace=workspace, person=ada, platform="ios", token="dead")
    PushToken.objects.create(workspace=workspace, person=ada, platform="android", token="alive")
    PushToken.objects.create(workspace=other_workspace, person=theirs, platform="ios", token="dead")
    assert suppressions_apply(workspace=workspace, channel="push", addresses=["dead"]) == 1
    assert list(PushToken.objects.for_workspace(workspace).values_list("token", flat=True)) == [
        "alive"
    ]
    assert PushToken.objects.for_workspace(other_workspace).count() == 1
    assert not DoNotContact.objects.exists()
