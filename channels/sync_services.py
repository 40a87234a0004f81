"""Syncs of a channel's segments from its source (Klaviyo): a job row per sync.

A sync reads the account's lists and segments (each one an entry of the channel's segment
list, its members a static Herald segment) and the profiles in each (Herald people):

1. Claim the job (accounts.jobs: an attempt lock, a conditional update), open the key.
2. Read the lists and segments; those whose entry the marketer made inactive are skipped
   altogether (never read, re-added or overwritten).
3. Read every group's profiles, 100 a page, in a thread of its own (the rate limits pace
   it; the database work of the pages already read goes on meanwhile). Every batch of
   pages is staged set-based in the sync's TEMP tables and its profiles resolved to
   people with one statement: the person this sync created for the Klaviyo profile
   before (external id "klaviyo:<profile id>"), else the oldest person with its email,
   else the oldest with its phone; a profile nobody matches becomes a new person
   (people.services.person_upsert_batch, the one write path of people). An invalid
   email or phone is left out of that profile's person and counted, never fatal.
4. Only when every group was read: ONE transaction creates the missing entries (with
   their static segments), replaces each entry's members (a full sync, so removals in
   Klaviyo show) or adds the new ones (incremental), moves the source's times and marks
   the job done.

Invariant: a sync changes entries and memberships all at once or not at all. A sync that
fails (the key refused, Klaviyo down past the retries, an answer that is not JSON) leaves
every entry and membership as it was; the people it had created by then stay (they are
found again by their Klaviyo id, so the next sync creates nobody twice). A re-delivered
job whose attempt died is run again from scratch.

What a sync does not do: update the fields of people who exist (Herald is where they are
kept; the sync only fills in the people it creates); overwrite an entry's name, ID or link
(the marketer's to edit; they are Klaviyo's at creation); touch the entries of lists that
are no longer in Klaviyo (counted in the job's detail). Klaviyo's own `external_id` of a
profile is not matched on: it names the profile in whatever system the account connected,
not necessarily Herald's.
"""

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef
from django.db.models.expressions import RawSQL
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.jobs import (
    MAX_ATTEMPTS,
    UNFINISHED,
    JobStatus,
    attempt_lock,
    job_claim,
    job_done,
    job_fail,
    job_give_up,
    job_progress,
)
from accounts.text import FORBIDDEN_CHARACTERS
from channels.klaviyo import (
    KLAVIYO_API,
    PROFILE_PAGE_SIZE,
    Group,
    KlaviyoAuthError,
    KlaviyoClient,
    KlaviyoError,
    KlaviyoRateLimited,
    Profile,
)
from channels.list_services import ListConflict
from channels.models import ChannelSegment, ChannelSync, EntrySource, SegmentSource
from channels.secrets import SecretsUnreadable, unseal
from channels.selectors import segment_source
from people.models import Person
from people.normalize import InvalidAddress, normalize_address
from people.services._common import MAX_BATCH
from people.services.people import person_upsert_batch
from people.sql import execute_arrays
from segments.models import Segment, SegmentKind
from segments.services import (
    SegmentConflict,
    segment_create,
    static_members_change,
    static_members_replace,
)

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x484B_5359 << 32  # "HKSY": advisory lock keys of channel sync jobs
FULL_SYNC_EVERY = timedelta(hours=24)  # a scheduled sync is a full one at least this often
# An incremental sync reads the profiles that joined since the last sync began, less this:
# clocks differ and Klaviyo files a segment's joins late; re-adding a member is a no-op.
INCREMENTAL_OVERLAP = timedelta(minutes=10)
EXTERNAL_ID_PREFIX = "klaviyo:"  # the external id of a person a sync created
KLAVIYO_WEB = "https://www.klaviyo.com/lists/"  # + id: a list's or a segment's page
PAGES_AHEAD = 200  # pages read and not yet staged, at most (the reader waits beyond)
NAME_MAX = 200
SEGMENT_NAME_TRIES = 50
PERSON_NAME_MAX = 150
EMAIL_MAX, PHONE_MAX = 254, 32
UNCHANGED = "the sync stopped and the segments are as they were"


def _enqueue(job: ChannelSync) -> None:
    from channels.tasks import channel_sync_run_task

    transaction.on_commit(lambda: channel_sync_run_task.delay(job.pk))


def channel_sync_start(*, workspace, channel: str, actor: Actor, full: bool = True) -> ChannelSync:
    """Queue a sync of the channel from its source ("Sync now", the API, the schedule).
    Refused (ListConflict) without a source, or while one of the channel's syncs is
    queued or running: one sync per account at a time keeps within its rate limits.
    audit: "channel_sync.start"."""
    source = segment_source(workspace=workspace, channel=channel)
    if source is None:
        raise ListConflict(
            f"The {channel} channel has no segment source: set its Klaviyo key first."
        )
    with transaction.atomic():
        running = (
            ChannelSync.objects.for_workspace(workspace)
            .select_for_update()
            .filter(channel=channel, status__in=UNFINISHED)
            .first()
        )
        if running is not None:
            raise ListConflict("A sync of this channel is already under way: wait for it.")
        job = ChannelSync.objects.create(
            workspace=source.workspace, channel=channel, full=full, created_by=actor.user,
            status=JobStatus.QUEUED, detail="Waiting for a worker to start the sync…",
        )  # fmt: skip
        audit_record(workspace=workspace, actor=actor, action="channel_sync.start", obj=job,
                     summary={"channel": channel, "full": full})  # fmt: skip
        _enqueue(job)
    return job


# --- the schedule ----------------------------------------------------------------------


def channel_syncs_start_due(now=None) -> int:
    """Start a sync of every source whose schedule is due (next_sync_at passed) and that
    has no sync queued or running; returns how many were started. A full sync when the
    last full one is a day old or more (or there was none), else an incremental one. Each
    source is claimed by moving its next_sync_at with a conditional update, so two beats
    start one sync; a source with a sync under way is left due and taken once it ends.
    audit: "channel_sync.start" by the beat task."""
    now = now or timezone.now()
    busy = ChannelSync.objects.unscoped().filter(
        workspace_id=OuterRef("workspace_id"), channel=OuterRef("channel"),
        status__in=UNFINISHED,
    )  # fmt: skip
    # Crossing workspaces on purpose: the beat serves them all; each start is scoped.
    due = list(
        SegmentSource.objects.unscoped()
        .filter(next_sync_at__lte=now, settings__schedule_minutes__gt=0)
        .filter(~Exists(busy))
        .select_related("workspace")
        .order_by("next_sync_at", "pk")
    )
    actor = Actor.of_system("channels.tasks.channel_syncs_due_task")
    started = 0
    for source in due:
        minutes = source.settings.get("schedule_minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
            continue
        full = source.last_full_sync_at is None or source.last_full_sync_at <= now - FULL_SYNC_EVERY
        try:
            with transaction.atomic():
                claimed = (
                    SegmentSource.objects.for_workspace(source.workspace)
                    .filter(pk=source.pk, next_sync_at=source.next_sync_at)
                    .update(next_sync_at=now + timedelta(minutes=minutes))
                )
                if not claimed:
                    continue
                channel_sync_start(
                    workspace=source.workspace, channel=source.channel, actor=actor, full=full
                )
        except ListConflict:  # a "Sync now" got there between the read and the claim
            continue
        started += 1
    return started


# --- running one sync ------------------------------------------------------------------


class SyncRefused(Exception):
    """The sync cannot go on: the message says why and what to do; `fields` are the
    job's counts so far."""

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        self.fields = fields


class JobTaken(RuntimeError):
    """The job row was finished or changed by someone else while this attempt ran."""


class _Stopped(Exception):
    """The sync stopped reading Klaviyo (it failed elsewhere): the reader thread ends."""


def _jobs(sync_id: int):
    return ChannelSync.objects.unscoped().filter(pk=sync_id)


def channel_sync_run(
    *,
    sync_id: int,
    now=None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> ChannelSync | None:
    """Run the sync job (see the module's docstring). Ends done, or failed with a
    `detail` saying what happened and what to do, the entries and memberships as they
    were; an unexpected error also fails it and is raised again for the worker's log.
    Returns None when another live attempt holds the job.
    `clock` and `sleep` pace the Klaviyo client (tests share a fake's virtual clock)."""
    now = now or timezone.now()
    with attempt_lock(_LOCK_NAMESPACE + sync_id) as got:
        if not got:
            logger.info("channel sync %s: another attempt is running it", sync_id)
            return None
        jobs = _jobs(sync_id)
        claimed = job_claim(
            jobs, now=now, total_rows=0, groups=0, entries_created=0, profiles=0,
            people_created=0, requests=0, error_count=0, detail="Starting…",
        )  # fmt: skip
        if not claimed:
            job_give_up(
                jobs,
                now=now,
                detail=(
                    f"The sync stopped its worker {MAX_ATTEMPTS} times (the worker was killed "
                    "or restarted while it ran), so it was given up; the segments are as they "
                    f"were. Sync again; if it fails this way again tell your administrator "
                    f"(channel sync #{sync_id})."
                ),
            )
            return jobs.first()
        job = jobs.select_related("workspace", "created_by").get()
        try:
            _Sync(job, now=now, clock=clock, sleep=sleep).run()
        except SyncRefused as e:
            job_fail(jobs, detail=e.message, **e.fields)
        except JobTaken:
            logger.warning("channel sync %s was changed by someone else while it ran", sync_id)
        except Exception as e:
            logger.exception("channel sync %s failed", sync_id)
            job_fail(
                jobs,
                detail=(
                    f"The sync stopped on an unexpected error ({type(e).__name__}); the "
                    "segments are as they were. Sync again, and if it fails again tell your "
                    f"administrator (channel sync #{sync_id})."
                ),
            )
            raise
    return jobs.first()


def _klaviyo_failure(e: KlaviyoError, *, tries: int) -> str:
    """What the job says when Klaviyo could not be read."""
    if isinstance(e, KlaviyoAuthError):
        return f"{e.message}: {UNCHANGED}. Set the Klaviyo key again, then sync."
    if isinstance(e, KlaviyoRateLimited):
        return (
            f"{e.message} (another integration may be spending the account's rate limit): "
            f"{UNCHANGED}; try again later."
        )
    if e.temporary and e.status:
        return (
            f"Klaviyo did not answer ({e.status}) after {tries} tries: {UNCHANGED}; "
            "try again later."
        )
    if e.temporary:
        return f"{e.message}: {UNCHANGED}; try again later."
    return (
        f"{e.message}: {UNCHANGED}. Try again later; if it fails the same way, tell your "
        "administrator."
    )


def _sleeper(sleep, stop: threading.Event) -> Callable[[float], None]:
    """The client's sleep, cut short (raising _Stopped) once the sync has stopped."""

    def wait(seconds: float) -> None:
        if sleep is None:
            if stop.wait(seconds):
                raise _Stopped
            return
        if stop.is_set():
            raise _Stopped
        sleep(seconds)

    return wait


@dataclass
class _Pulled:
    """A group to read: `since` is the joined_after of its pull (None: every member)."""

    no: int
    group: Group
    since: datetime | None = None
    read: int = 0
    gone: bool = False  # Klaviyo answered 404 while it was read: deleted meanwhile

    @property
    def ref(self) -> str:
        return f"{self.group.kind}:{self.group.id}"


@dataclass
class _Counts:
    profiles: int = 0  # profile rows read (a profile in two groups counts twice)
    people_created: int = 0
    invalid_emails: int = 0
    invalid_phones: int = 0
    refused: int = 0  # profiles whose person could not be stored
    entries_created: int = 0
    inactive: int = 0
    vanished: int = 0
    gone: list[str] = field(default_factory=list)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


class _Staging:
    """The TEMP tables of one sync, private to its database session and dropped at the
    end:
        seen    (kid, person_id)  each profile read, once, with its person (NULL: none
                                  could be stored)
        member  (grp, kid)        each (group, profile) read
        final   (grp, person_id)  the members of each group, built when all is read"""

    def __init__(self, sync_id: int):
        base = f"klaviyo_sync_{int(sync_id)}"
        self.seen, self.member, self.final = f"{base}_seen", f"{base}_member", f"{base}_final"

    def __enter__(self) -> "_Staging":
        with connection.cursor() as cursor:
            self._drop(cursor)
            cursor.execute(
                f"CREATE TEMP TABLE {self.seen} (kid text PRIMARY KEY, person_id bigint)"
            )
            cursor.execute(f"CREATE TEMP TABLE {self.member} (grp int NOT NULL, kid text NOT NULL)")
        return self

    def __exit__(self, *exc) -> None:
        try:
            with connection.cursor() as cursor:
                self._drop(cursor)
        except DatabaseError:  # a broken connection took its TEMP tables with it
            logger.warning("could not drop the TEMP tables of %s", self.seen)

    def _drop(self, cursor) -> None:
        cursor.execute(f"DROP TABLE IF EXISTS {self.seen}, {self.member}, {self.final}")

    def fresh(self, *, workspace_id: int, kids, emails, phones) -> list[tuple[str, int | None]]:
        """The profiles of a batch not seen before in this sync, each with the person it
        is by Klaviyo id (a person this sync's account created), email or phone, if any:
        one statement, the batch sent as arrays."""
        return execute_arrays(
            f"""
            SELECT b.kid, COALESCE(
                (SELECT p.id FROM people_person p
                  WHERE p.workspace_id = %s::bigint AND p.external_id = %s::text || b.kid),
                (SELECT min(p.id) FROM people_person p
                  WHERE b.email IS NOT NULL AND p.workspace_id = %s::bigint AND p.email = b.email),
                (SELECT min(p.id) FROM people_person p
                  WHERE b.phone IS NOT NULL AND p.workspace_id = %s::bigint AND p.phone = b.phone))
            FROM unnest(%s::text[], %s::text[], %s::text[]) AS b(kid, email, phone)
            WHERE NOT EXISTS (SELECT 1 FROM {self.seen} s WHERE s.kid = b.kid)
            """,  # noqa: S608 - our own table name; values are parameters
            [workspace_id, EXTERNAL_ID_PREFIX, workspace_id, workspace_id, kids, emails, phones],
        )

    def remember(self, kids: list[str], people: list[int | None]) -> None:
        execute_arrays(
            f"INSERT INTO {self.seen} (kid, person_id) "  # noqa: S608 - our own table name
            "SELECT * FROM unnest(%s::text[], %s::bigint[]) ON CONFLICT (kid) DO NOTHING",
            [kids, people],
        )

    def add_members(self, groups: list[int], kids: list[str]) -> None:
        execute_arrays(
            f"INSERT INTO {self.member} (grp, kid) "  # noqa: S608 - our own table name
            "SELECT * FROM unnest(%s::int[], %s::text[])",
            [groups, kids],
        )

    def build_final(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {self.final} AS "  # noqa: S608 - our own table names
                f"SELECT DISTINCT m.grp, s.person_id FROM {self.member} m "
                f"JOIN {self.seen} s ON s.kid = m.kid WHERE s.person_id IS NOT NULL"
            )
            cursor.execute(f"CREATE INDEX ON {self.final} (grp, person_id)")
            cursor.execute(f"ANALYZE {self.final}")

    def people(self, workspace_id: int, grp: int):
        """The people read in group `grp`, as a queryset the segment services take."""
        return Person.objects.for_workspace(workspace_id).filter(
            # our own TEMP table's name; the group number is a parameter
            pk__in=RawSQL(f"SELECT person_id FROM {self.final} WHERE grp = %s", [grp])  # noqa: S608,S611
        )


def _person_name(value: str | None) -> str:
    return FORBIDDEN_CHARACTERS.sub("", value or "").strip()[:PERSON_NAME_MAX]


def _address(channel: str, value: str | None, most: int) -> tuple[str | None, bool]:
    """(normalized, invalid): None and False for none given."""
    if not value or not value.strip():
        return None, False
    try:
        normalized = normalize_address(channel, value)
    except InvalidAddress:
        return None, True
    if len(normalized) > most:
        return None, True
    return normalized, False


@dataclass(frozen=True, slots=True)
class _Clean:
    email: str | None
    phone: str | None
    bad_email: bool
    bad_phone: bool


def _clean(profile: Profile) -> _Clean:
    email, bad_email = _address("email", profile.email, EMAIL_MAX)
    phone, bad_phone = _address("sms", profile.phone_number, PHONE_MAX)
    return _Clean(email, phone, bad_email, bad_phone)


class _Reader(threading.Thread):
    """Reads every group's profiles from Klaviyo, page after page, onto `pages`:
    ("page", group no, [Profile]), ("done", group no), ("gone", group no), then ("end",)
    or ("error", exception). The only user of the client while it runs."""

    def __init__(self, client: KlaviyoClient, pulls: list[_Pulled], stop: threading.Event):
        super().__init__(name="klaviyo-reader", daemon=True)
        self.client, self.pulls, self.stop = client, pulls, stop
        self.pages: queue.Queue = queue.Queue(maxsize=PAGES_AHEAD)

    def run(self) -> None:
        try:
            for pull in self.pulls:
                self._read(pull)
            self._put(("end",))
        except _Stopped:
            return
        except BaseException as e:  # noqa: BLE001 - handed to the sync's thread to raise
            try:
                self._put(("error", e))
            except _Stopped:
                return

    def _read(self, pull: _Pulled) -> None:
        page: list[Profile] = []
        group = pull.group
        try:
            for profile in self.client.profiles(group.kind, group.id, joined_after=pull.since):
                page.append(profile)
                if len(page) == PROFILE_PAGE_SIZE:
                    self._put(("page", pull.no, page))
                    page = []
        except KlaviyoError as e:
            if e.status == 404:  # the group was deleted in Klaviyo while it was read
                self._put(("gone", pull.no))
                return
            raise
        if page:
            self._put(("page", pull.no, page))
        self._put(("done", pull.no))

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.pages.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Stopped


class _Sync:
    def __init__(self, job: ChannelSync, *, now, clock, sleep):
        self.job, self.now = job, now
        self.jobs = _jobs(job.pk)
        self.workspace = job.workspace
        self.workspace_id = job.workspace_id
        self.actor = Actor(user=job.created_by, system="channel_sync worker")
        self.clock, self.sleep = clock, sleep
        self.counts = _Counts()
        self.client: KlaviyoClient | None = None
        self.staging = _Staging(job.pk)

    # --- the steps ---------------------------------------------------------------------

    def run(self) -> None:
        source, api_key = self._source()
        full = self.job.full or source.last_sync_at is None
        if full != self.job.full:  # nothing to add to: the first sync reads everything
            self.jobs.update(full=True)
        options = {"base_url": source.settings.get("base_url") or KLAVIYO_API}
        if self.clock is not None:
            options["clock"] = self.clock
        stop = threading.Event()
        options["sleep"] = _sleeper(self.sleep, stop)
        try:
            self.client = KlaviyoClient(api_key, **options)
        except ValueError:
            raise SyncRefused(self._no_key()) from None
        with self.client, self.staging:
            try:
                pulls = self._groups(full=full, last_sync=source.last_sync_at)
                self._read_profiles(pulls, stop)
            except KlaviyoError as e:
                raise SyncRefused(
                    _klaviyo_failure(e, tries=self.client.max_retries + 1), **self._fields()
                ) from e
            self._set_detail("Updating the segments' members…")
            self.staging.build_final()
            try:
                self._apply(pulls, source=source, full=full)
            except SegmentConflict as e:
                self.counts.entries_created = 0  # rolled back with the rest
                raise SyncRefused(f"{e}: {UNCHANGED}.", **self._fields()) from e

    def _no_key(self) -> str:
        return (
            f"No Klaviyo key is stored for the {self.job.channel} channel: set the Klaviyo "
            "key again, then sync."
        )

    def _source(self) -> tuple[SegmentSource, str]:
        source = (
            SegmentSource.objects.for_workspace(self.workspace_id)
            .filter(channel=self.job.channel)
            .first()
        )
        if source is None:
            raise SyncRefused(
                f"The {self.job.channel} channel has no Klaviyo source any more: set the "
                "Klaviyo key again, then sync."
            )
        try:
            secrets = unseal(source.secrets)
        except SecretsUnreadable:
            raise SyncRefused(
                "The stored Klaviyo key cannot be decrypted (the key it was encrypted with is "
                f"no longer in PROVIDER_SECRET_KEYS): {UNCHANGED}. Set the Klaviyo key "
                "again, then sync."
            ) from None
        api_key = secrets.get("api_key")
        if not api_key:
            raise SyncRefused(self._no_key())
        return source, api_key

    def _groups(self, *, full: bool, last_sync) -> list[_Pulled]:
        """The lists and segments to read, with what to read of each: every member on a
        full sync and for a group that has no entry yet, those who joined since on an
        incremental one. Groups whose entry is inactive are left out."""
        self._set_detail("Reading the lists and segments in Klaviyo…")
        groups = [*self.client.lists(), *self.client.segments()]
        active = dict(
            ChannelSegment.objects.for_workspace(self.workspace_id)
            .filter(channel=self.job.channel, source=EntrySource.KLAVIYO)
            .exclude(source_ref="")
            .values_list("source_ref", "active")
        )
        listed = {f"{g.kind}:{g.id}" for g in groups}
        self.counts.vanished = sum(1 for ref, on in active.items() if on and ref not in listed)
        pulls = []
        for group in groups:
            ref = f"{group.kind}:{group.id}"
            if active.get(ref) is False:
                self.counts.inactive += 1
                continue
            since = None if full or ref not in active else last_sync - INCREMENTAL_OVERLAP
            pulls.append(_Pulled(no=len(pulls) + 1, group=group, since=since))
        self.jobs.update(total_rows=len(pulls), groups=len(pulls))
        return pulls

    def _read_profiles(self, pulls: list[_Pulled], stop: threading.Event) -> None:
        """Read in the reader thread, stage here, a batch of up to MAX_BATCH profiles at a
        time. The job's detail and counts move with every page, its progress bar (groups
        read of the groups to read: their sizes are not known before) with every group."""
        by_no = {p.no: p for p in pulls}
        reader = _Reader(self.client, pulls, stop)
        reader.start()
        batch: list[tuple[int, Profile]] = []
        done = 0
        try:
            while True:
                try:
                    item = reader.pages.get(timeout=1)
                except queue.Empty:
                    if not reader.is_alive() and reader.pages.empty():
                        raise RuntimeError("the Klaviyo reader ended without a word") from None
                    continue
                kind = item[0]
                if kind == "error":
                    raise item[1]
                if kind == "end":
                    break
                pull = by_no[item[1]]
                if kind == "page":
                    pull.read += len(item[2])
                    self.counts.profiles += len(item[2])
                    batch.extend((pull.no, p) for p in item[2])
                    if len(batch) >= MAX_BATCH:
                        self._stage(batch)
                        batch = []
                else:
                    done += 1
                    pull.gone = kind == "gone"
                    job_progress(self.jobs, done)  # the bar: groups read of the total
                self._progress(pull, len(pulls))
            self._stage(batch)
        finally:
            stop.set()
            reader.join()

    def _stage(self, batch: list[tuple[int, Profile]]) -> None:
        """A batch of (group no, profile) into the TEMP tables, its new profiles resolved to
        people (and the people nobody matches created): a constant number of statements."""
        if not batch:
            return
        profiles = {p.id: p for _, p in batch}
        cleaned = {kid: _clean(p) for kid, p in profiles.items()}
        kids = list(profiles)
        fresh = self.staging.fresh(
            workspace_id=self.workspace_id,
            kids=kids,
            emails=[cleaned[k].email for k in kids],
            phones=[cleaned[k].phone for k in kids],
        )
        if fresh:
            person_of = dict(fresh)
            for kid in person_of:
                self.counts.invalid_emails += cleaned[kid].bad_email
                self.counts.invalid_phones += cleaned[kid].bad_phone
            new = [kid for kid, person in person_of.items() if person is None]
            person_of.update(self._create(new, profiles, cleaned))
            self.staging.remember(list(person_of), list(person_of.values()))
        self.staging.add_members([no for no, _ in batch], [p.id for _, p in batch])

    def _create(self, kids: list[str], profiles: dict, cleaned: dict) -> dict[str, int]:
        """People for the profiles nobody matches, through the people write path; returns
        Klaviyo id -> person id for those stored (a refused one is counted)."""
        created: dict[str, int] = {}
        for start in range(0, len(kids), MAX_BATCH):
            chunk = kids[start : start + MAX_BATCH]
            items = []
            for kid in chunk:
                profile, clean = profiles[kid], cleaned[kid]
                item = {"external_id": EXTERNAL_ID_PREFIX + kid}
                for name, value in (
                    ("email", clean.email),
                    ("phone", clean.phone),
                    ("first_name", _person_name(profile.first_name)),
                    ("last_name", _person_name(profile.last_name)),
                ):
                    if value:
                        item[name] = value
                items.append(item)
            result = person_upsert_batch(workspace=self.workspace, items=items, actor=self.actor)
            self.counts.people_created += result.created
            self.counts.refused += len(result.errors)
            prefix = len(EXTERNAL_ID_PREFIX)
            created.update({p.external_id[prefix:]: p.pk for p in result.people})
        return created

    def _apply(self, pulls: list[_Pulled], *, source: SegmentSource, full: bool) -> None:
        """The one transaction: entries, memberships, the source's times, the job done."""
        with transaction.atomic():
            source = (
                SegmentSource.objects.for_workspace(self.workspace_id)
                .select_for_update()
                .get(pk=source.pk)
            )
            for pull in pulls:
                if pull.gone:
                    self.counts.gone.append(pull.group.name or pull.group.id)
                    continue
                entry = (
                    ChannelSegment.objects.for_workspace(self.workspace_id)
                    .select_for_update()
                    .select_related("segment")
                    .filter(
                        channel=self.job.channel, source=EntrySource.KLAVIYO, source_ref=pull.ref
                    )  # fmt: skip
                    .first()
                )
                if entry is not None and not entry.active:  # made inactive meanwhile
                    self.counts.inactive += 1
                    continue
                if entry is None and pull.since is not None:
                    continue  # deleted meanwhile: the next sync brings it back whole
                if entry is None:
                    entry = self._create_entry(pull.group)
                people = self.staging.people(self.workspace_id, pull.no)
                if full or pull.since is None:
                    static_members_replace(
                        segment=entry.segment, people=people, actor=self.actor, now=self.now
                    )
                else:
                    static_members_change(
                        segment=entry.segment, people=people, add=True, actor=self.actor,
                        now=self.now,
                    )  # fmt: skip
            source.last_sync_at = self.now
            if full:
                source.last_full_sync_at = self.now
            minutes = source.settings.get("schedule_minutes")
            source.next_sync_at = self.now + timedelta(minutes=minutes) if minutes else None
            source.save(update_fields=["last_sync_at", "last_full_sync_at", "next_sync_at",
                                       "updated_at"])  # fmt: skip
            if not job_done(self.jobs, detail=self._summary(pulls, full=full),
                            processed_rows=len(pulls), **self._fields()):  # fmt: skip
                raise JobTaken(self.job.pk)

    def _create_entry(self, group: Group) -> ChannelSegment:
        """The entry of a list or segment the channel does not have (or had, and lost),
        with a static segment of its own: "<name> (<channel> Klaviyo <kind>)", numbered
        when the name is taken. audit: "channel_segment.add"."""
        name = " ".join(FORBIDDEN_CHARACTERS.sub("", group.name).split())
        name = name or f"Klaviyo {group.kind} {group.id}"
        label = f" ({self.job.channel} Klaviyo {group.kind})"
        segment = None
        for n in range(1, SEGMENT_NAME_TRIES + 1):
            suffix = label + (f" {n}" if n > 1 else "")
            candidate = name[: NAME_MAX - len(suffix)].rstrip() + suffix
            if Segment.objects.for_workspace(self.workspace_id).filter(
                name__iexact=candidate
            ).exists():  # fmt: skip
                continue
            try:
                segment = segment_create(
                    workspace=self.workspace, name=candidate, kind=SegmentKind.STATIC,
                    actor=self.actor, now=self.now,
                )  # fmt: skip
                break
            except SegmentConflict:  # taken between the check and the insert
                continue
        if segment is None:
            raise SegmentConflict(f"Every name tried for the segment of “{name}” is taken")
        entry = ChannelSegment.objects.create(
            workspace_id=self.workspace_id, channel=self.job.channel, segment=segment,
            name=name[:NAME_MAX], external_id=group.id[:255], link=KLAVIYO_WEB + group.id,
            source=EntrySource.KLAVIYO, source_ref=f"{group.kind}:{group.id}",
        )  # fmt: skip
        audit_record(
            workspace=self.workspace_id, actor=self.actor, action="channel_segment.add",
            obj=entry, summary={"channel": entry.channel, "segment": segment.pk,
                                "source": EntrySource.KLAVIYO, "sync": self.job.pk},
        )  # fmt: skip
        self.counts.entries_created += 1
        return entry

    # --- what the job row says -----------------------------------------------------------

    def _fields(self) -> dict:
        c = self.counts
        return {
            "profiles": c.profiles,
            "people_created": c.people_created,
            "entries_created": c.entries_created,
            "requests": self.client.requests_made if self.client else 0,
            "error_count": c.invalid_emails + c.invalid_phones + c.refused,
        }

    def _set_detail(self, detail: str) -> None:
        self.jobs.update(detail=detail)

    def _progress(self, pull: _Pulled, total: int) -> None:
        """After each page, outside any transaction (as job_progress): where the read is."""
        self.jobs.update(
            detail=f"Reading {pull.group.kind} {pull.no} of {total} (“{pull.group.name}”): "
            f"{_plural(pull.read, 'profile')}",
            profiles=self.counts.profiles,
            requests=self.client.requests_made,
        )

    def _summary(self, pulls: list[_Pulled], *, full: bool) -> str:
        c = self.counts
        synced = len(pulls) - len(c.gone)
        kind = "Full sync" if full else "Incremental sync"
        text = (
            f"{kind}: {_plural(synced, 'list or segment', 'lists and segments')} from "
            f"Klaviyo, {_plural(c.profiles, 'profile')} read, "
            f"{_plural(c.entries_created, 'entry', 'entries')} created, "
            f"{_plural(c.people_created, 'person', 'people')} created."
        )
        if not full:
            text += " Only the profiles that joined since the last sync were added."
        left_out = []
        if c.invalid_emails:
            left_out.append(
                _plural(c.invalid_emails, "invalid email address", "invalid email addresses")
            )
        if c.invalid_phones:
            left_out.append(_plural(c.invalid_phones, "invalid phone number"))
        if left_out:
            text += " " + " and ".join(left_out) + " left out of their people."
        if c.refused:
            text += f" {_plural(c.refused, 'profile')} could not be stored as people."
        if c.inactive:
            text += f" {_plural(c.inactive, 'inactive entry', 'inactive entries')} left alone."
        if c.vanished:
            text += (
                f" {_plural(c.vanished, 'entry', 'entries')} no longer in Klaviyo left as "
                f"{'it was' if c.vanished == 1 else 'they were'}."
            )
        if c.gone:
            text += (
                " Deleted in Klaviyo during the sync, left as they were: "
                + ", ".join(f"“{name}”" for name in c.gone)
                + "."
            )
        return text
