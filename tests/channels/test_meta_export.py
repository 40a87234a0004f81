"""channels/meta.py against a fake of the Graph API custom-audience endpoints
(tests/channels/meta_fake.py) that checks the schema, the hashing and the session."""

import hashlib

import pytest

from channels.meta import (
    MAX_BATCH,
    SCHEMA,
    MetaClient,
    MetaError,
    export,
    identifier_row,
    normalize_email,
    normalize_phone,
    sha256_hex,
)
from tests.channels.meta_fake import PERMISSION, TOKEN, fresh_graph, graph_error, threaded_server

AUDIENCE = "23851234567890123"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def people(n: int, start: int = 0) -> list[tuple[str, str, str]]:
    """(email, E.164 phone, external id), with the untidiness real data has."""
    return [
        (f"  Person{i}@Example.COM ", f"+4479{i:08d}", f"crm-{i}") for i in range(start, start + n)
    ]


def expected_row(email: str, phone: str, external_id: str) -> list[str]:
    """An independent spelling of Meta's rules for the rows these tests generate."""
    return [sha(email.strip().lower()), sha(phone.lstrip("+")), external_id]


@pytest.fixture(scope="module")
def server():
    with threaded_server() as server:
        yield server


@pytest.fixture
def graph(server):
    return fresh_graph(server)


@pytest.fixture
def slept():
    return []


@pytest.fixture
def client(graph, slept):
    with MetaClient(
        TOKEN, base_url=graph.base_url, allow_private=True, timeout=5, backoff=0.01,
        sleep=slept.append,
    ) as meta:  # fmt: skip
        yield meta


# --- normalization ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("mary@example.com", "mary@example.com"),
        ("  Mary@Example.COM\t", "mary@example.com"),
        ("MARY.SMITH+news@EXAMPLE.co.uk", "mary.smith+news@example.co.uk"),
        ("", None),
        (None, None),
        ("   ", None),
        ("not-an-email", None),
        ("@example.com", None),
        ("mary@", None),
        ("mary smith@example.com", None),
    ],
)
def test_normalize_email(raw, normalized):
    assert normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("+447911123456", "447911123456"),  # E.164, as Herald stores phones
        ("+44 7911 123456", "447911123456"),
        ("+44 (0)7911 123-456", "447911123456"),  # the UK trunk zero in brackets
        ("+1 (555) 987-6543", "15559876543"),
        ("0044 7911 123456", "447911123456"),  # 00 is the international prefix
        ("+0044 7911 123456", "447911123456"),  # leading zeros go
        (" +33 6 12 34 56 78 ", "33612345678"),
        ("07911 123456", None),  # national format: no country code to give Meta
        ("7911123456", None),
        ("(555) 987-6543", None),
        ("+12 34", None),  # too short for any number
        ("+4479111234567890123", None),  # longer than E.164 allows
        ("", None),
        (None, None),
        ("+", None),
    ],
)
def test_normalize_phone(raw, normalized):
    assert normalize_phone(raw) == normalized


def test_hashes_match_metas_documented_examples():
    # the "Hashing" table of Meta's Customer File Custom Audiences guide
    assert sha256_hex("mary@example.com") == (
        "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
    )
    assert sha256_hex(normalize_phone("+1 555 987 6543")) == (
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"
    )


def test_identifier_row_is_the_multi_key_schema_with_blanks_for_missing_keys():
    assert SCHEMA == ("EMAIL", "PHONE", "EXTERN_ID")
    assert identifier_row(" Mary@Example.com", "+15559876543", " crm-1 ") == [
        "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
        "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e",
        "crm-1",  # EXTERN_ID is not hashed
    ]
    assert identifier_row(None, "07911 123456", "crm-2") == ["", "", "crm-2"]
    assert identifier_row("", "+447911123456", None) == ["", sha("447911123456"), ""]


# --- exports ---------------------------------------------------------------------------


def test_a_multi_batch_add_goes_out_as_one_session(graph, client):
    rows = people(2_500) + [("no-email", "07911 123456", "crm-x"), (None, None, "crm-y")]
    calls = []
    result = export(client, AUDIENCE, rows, total=len(rows), replace=False, batch_size=1_000,
                    progress=lambda done, total: calls.append((done, total)))  # fmt: skip

    assert graph.problems == []
    assert result.ok, result.error
    taken = graph.taken()
    assert [b.edge for b in taken] == ["users"] * 3
    assert [len(b.rows) for b in taken] == [1_000, 1_000, 500]
    sessions = [b.session for b in taken]
    assert [s["batch_seq"] for s in sessions] == [1, 2, 3]
    assert [s["last_batch_flag"] for s in sessions] == [False, False, True]
    assert {s["session_id"] for s in sessions} == {result.session_id}
    assert {s["estimated_num_total"] for s in sessions} == {2_502}
    assert all(b.schema == ["EMAIL", "PHONE", "EXTERN_ID"] for b in taken)
    # un-hash by comparing with what the rows should be
    assert [row for b in taken for row in b.rows] == [expected_row(*p) for p in people(2_500)]
    assert graph.members[AUDIENCE] == [expected_row(*p) for p in people(2_500)]
    assert (result.batches, result.sent, result.skipped_unusable) == (3, 2_500, 2)
    assert (result.failed_batch, result.invalid, result.received) == (None, 0, 2_500)
    assert calls == [(1_000, 2_502), (2_000, 2_502), (2_502, 2_502)]
    assert result.hashing_seconds > 0 and result.sending_seconds > 0


def test_batches_are_at_most_ten_thousand(graph, client):
    result = export(client, AUDIENCE, people(20_001), total=20_001, replace=False)
    assert result.ok and graph.problems == []
    assert [len(b.rows) for b in graph.taken()] == [MAX_BATCH, MAX_BATCH, 1]
    with pytest.raises(ValueError):
        export(client, AUDIENCE, [], total=0, replace=False, batch_size=MAX_BATCH + 1)


def test_each_export_is_a_new_session(graph, client):
    first = export(client, AUDIENCE, people(3), total=3, replace=False)
    second = export(client, AUDIENCE, people(3, 3), total=3, replace=False)
    assert first.ok and second.ok and graph.problems == []
    assert first.session_id != second.session_id
    assert 0 < first.session_id < 2**63


def test_replace_uses_usersreplace_and_leaves_only_the_new_people(graph, client):
    assert export(client, AUDIENCE, people(50), total=50, replace=False).ok
    result = export(client, AUDIENCE, people(30, 1_000), total=30, replace=True, batch_size=10)

    assert result.ok, result.error
    assert graph.problems == []
    replace = [b for b in graph.taken() if b.edge == "usersreplace"]
    assert [b.session["batch_seq"] for b in replace] == [1, 2, 3]
    assert [b.session["last_batch_flag"] for b in replace] == [False, False, True]
    assert graph.members[AUDIENCE] == [expected_row(*p) for p in people(30, 1_000)]
    assert AUDIENCE not in graph.status  # the replace finished: Normal again


def test_a_replace_with_no_one_sends_nothing(graph, client):
    result = export(client, AUDIENCE, [(None, "07911 123456", "crm-1")], total=1, replace=True)
    assert not result.ok and "would empty the Meta audience" in result.error
    assert result.skipped_unusable == 1 and graph.batches == []


@pytest.mark.parametrize("replace", [False, True])
def test_a_failure_at_batch_3_is_reported_and_nothing_after_it_is_claimed(graph, client, replace):
    graph.fail_at(3)
    calls = []
    result = export(client, AUDIENCE, people(50), total=50, replace=replace, batch_size=10,
                    progress=lambda done, total: calls.append(done))  # fmt: skip

    assert graph.problems == []
    assert result.failed_batch == 3
    assert result.error.startswith("Batch 3 failed: ")
    assert "Meta did not fully update the audience" in result.error
    assert (result.batches, result.sent) == (2, 20)
    assert calls == [10, 20]
    assert graph.seqs() == [1, 2]  # batches 4 and 5 were never sent
    if replace:
        assert "90 minutes" in result.note and "replace_error" in result.note
        # Meta closes the session 90 minutes after its first batch: the audience then
        # holds what was uploaded so far, which is what the note warns of
        graph.time_out_sessions()
        assert graph.members[AUDIENCE] == [expected_row(*p) for p in people(20)]
        assert graph.status[AUDIENCE] == "replace_error"
    else:
        assert result.note == ""


def test_a_flagged_audience_is_refused_before_any_batch(graph, client):
    graph.flag(AUDIENCE)
    result = export(client, AUDIENCE, people(5), total=5, replace=True)
    assert "audience flagged by Meta" in result.error and "471" in result.error
    assert result.failed_batch is None and result.error_kind == "flagged"
    assert graph.batches == [] and graph.refused == []


def test_an_upload_refused_as_flagged_is_named(graph, client):
    graph.flag(AUDIENCE)
    result = export(client, AUDIENCE, people(5), total=5, replace=False, check_status=False)
    assert result.failed_batch == 1
    assert "audience flagged by Meta" in result.error and "1713230" in result.error
    assert not result.retryable and result.batches == 0


def test_throttling_is_retried_with_backoff(graph, client, slept):
    graph.throttle_once(2)
    result = export(client, AUDIENCE, people(30), total=30, replace=False, batch_size=10)
    assert result.ok, result.error
    assert graph.problems == []
    assert graph.refused == [(2, "fault 400")]
    assert graph.seqs() == [1, 2, 3]
    assert slept == [0.01]


def test_throttling_that_lasts_fails_the_batch_as_retryable(graph, client, slept):
    graph.fail_at(1, graph_error(17, "(#17) User request limit reached", subcode=2446079))
    result = export(client, AUDIENCE, people(5), total=5, replace=False)
    assert result.failed_batch == 1 and result.retryable and result.error_kind == "rate_limit"
    assert slept == [0.01, 0.02, 0.04, 0.08]  # four retries, doubling


def test_an_expired_token_says_to_reconnect(graph, client, slept):
    graph.expire_token()
    result = export(client, AUDIENCE, people(5), total=5, replace=False)
    assert result.error.startswith("The export did not start")
    assert "expired" in result.error and "reconnect the Meta channel" in result.error
    assert result.error_kind == "token" and not result.retryable and slept == []

    result = export(client, AUDIENCE, people(5), total=5, replace=False, check_status=False)
    assert result.failed_batch == 1 and "reconnect the Meta channel" in result.error


def test_a_missing_permission_is_named(graph, client):
    graph.fail_at(1, PERMISSION, status=403)
    result = export(client, AUDIENCE, people(5), total=5, replace=False)
    assert result.error_kind == "permission" and "business portfolio" in result.error


def test_an_html_error_page_is_retried(graph, client, slept):
    graph.html_at(1)
    assert export(client, AUDIENCE, people(5), total=5, replace=False).ok
    assert len(slept) == 1 and graph.seqs() == [1]

    graph.html_at(1, times=99)
    result = export(client, AUDIENCE, people(5), total=5, replace=False)
    assert result.failed_batch == 1 and result.retryable
    assert "HTTP 502 without a Graph error" in result.error


def test_a_timeout_is_retried(graph, slept):
    graph.timeout_at(2, seconds=1.0)
    with MetaClient(TOKEN, base_url=graph.base_url, allow_private=True, timeout=0.3,
                    backoff=0, sleep=slept.append) as client:  # fmt: skip
        result = export(client, AUDIENCE, people(30), total=30, replace=True, batch_size=10)
    assert result.ok, result.error
    assert graph.problems == [] and graph.seqs() == [1, 2, 3] and len(slept) == 1


def test_invalid_entries_are_summed(graph, client):
    # a client that hashes with uppercase hex: Meta counts such entries as invalid
    upper = [[sha("a@example.com").upper(), "", "crm-1"], [sha("b@example.com"), "", "crm-2"]]
    answer = client.upload_batch(AUDIENCE, upper, {"session_id": 7, "batch_seq": 1,
                                 "last_batch_flag": True, "estimated_num_total": 2},
                                 replace=False)  # fmt: skip
    assert (answer.num_received, answer.num_invalid_entries) == (2, 1)
    assert graph.problems and "not a lowercase SHA-256 hex" in graph.problems[0]


def test_audience_ids_are_numeric(client):
    with pytest.raises(ValueError):
        export(client, "../me/accounts", people(1), total=1, replace=False)


# --- the fake refuses what Meta would (so the tests above can fail) ---------------------


def session(seq: int, *, sid: int = 42, last: bool = False, total: int = 10) -> dict:
    return {"session_id": sid, "batch_seq": seq, "last_batch_flag": last,
            "estimated_num_total": total}  # fmt: skip


def test_the_fake_catches_unhashed_and_hashed_wrong_values(graph, client):
    client.upload_batch(AUDIENCE, [["mary@example.com", "", "crm-1"]], session(1, last=True),
                        replace=False)  # fmt: skip
    client.upload_batch(AUDIENCE, [[sha("m@example.com"), "", sha("crm-1")]],
                        session(1, sid=43, last=True), replace=False)  # fmt: skip
    assert graph.problems == [
        "not a lowercase SHA-256 hex: 'mary@example.com'",
        "EXTERN_ID looks hashed: Herald sends it as it is",
    ]


@pytest.mark.parametrize(
    "schema, rows, why",
    [
        (("EMAIL_SHA256", "PHONE_SHA256"), [[sha("a"), sha("b")]], "unknown multi-key schema"),
        (SCHEMA, [[sha("a"), ""]], "row 0 has 2 values for a schema of 3"),
    ],
)
def test_the_fake_refuses_a_wrong_schema(graph, client, schema, rows, why):
    with pytest.raises(MetaError) as caught:
        client.upload_batch(AUDIENCE, rows, session(1), replace=False, schema=schema)
    assert caught.value.code == 100 and why in caught.value.message
    assert why in graph.problems[0]


def test_the_fake_checks_the_session(graph, client):
    row = [[sha("a@example.com"), "", "crm-1"]]
    client.upload_batch(AUDIENCE, row, session(1), replace=False)
    client.upload_batch(AUDIENCE, row, session(3, total=11), replace=False)
    client.upload_batch(AUDIENCE, row, session(4, last=True, total=11), replace=False)
    client.upload_batch(AUDIENCE, row, session(5, total=11), replace=False)
    assert graph.problems == [
        "batch_seq went from 1 to 3 in session 42",
        "estimated_num_total changed from 10 to 11",
        "estimated_num_total changed from 10 to 11",
        "batch 5 came after the session's last_batch_flag",
        "estimated_num_total changed from 10 to 11",
    ]
    with pytest.raises(MetaError) as caught:  # a replace must start at batch_seq 1
        client.upload_batch("1", row, session(2, sid=9), replace=True)
    assert (caught.value.code, caught.value.subcode) == (2650, 1870147)
    with pytest.raises(MetaError) as caught:
        client.upload_batch(AUDIENCE, row, {"session_id": 1, "batch_seq": 1}, replace=False)
    assert "session lacks" in caught.value.message


def test_the_fake_refuses_more_than_ten_thousand_and_a_wrong_token(graph):
    with MetaClient(TOKEN, base_url=graph.base_url, allow_private=True) as client:
        rows = [[sha(str(i)), "", ""] for i in range(MAX_BATCH + 1)]
        with pytest.raises(ValueError):  # the client will not send it...
            client.upload_batch(AUDIENCE, rows, session(1), replace=False)
    with MetaClient(TOKEN, base_url=graph.base_url, allow_private=True) as client:
        # ... and the fake would refuse it: go around the client's own check
        body = {"payload": {"schema": list(SCHEMA), "data": rows}, "session": session(1)}
        with pytest.raises(MetaError) as caught:
            client._call("POST", f"{AUDIENCE}/users", body, batch_seq=1)
        assert "at most 10000 users" in caught.value.message
    with MetaClient("EAA-someone-else", base_url=graph.base_url, allow_private=True) as client:
        with pytest.raises(MetaError) as caught:
            client.upload_batch(AUDIENCE, rows[:1], session(1), replace=False)
        assert caught.value.code == 190 and caught.value.kind == "token"
