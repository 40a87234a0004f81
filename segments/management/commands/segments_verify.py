"""manage.py segments_verify [--segment ID] [--workspace SLUG] [--repair]

Recomputes each real-time and scheduled query segment from scratch and reports drift:
people who should be members and are not, and members who should not be. With --repair,
brings the members to the rules (the changes are written as transitions, like any other).
Exits 1 when drift was found and not repaired, so a cron job or CI can alert on it.
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import Actor
from segments.models import Segment, SegmentKind
from segments.realtime import repair, segment_drift

ACTOR = Actor(system="manage.py segments_verify")


class Command(BaseCommand):
    help = "Recompute real-time and query segments from scratch and report (or repair) drift."

    def add_arguments(self, parser):
        parser.add_argument("--segment", type=int, help="Only this segment id.")
        parser.add_argument("--workspace", help="Only the segments of this workspace (slug).")
        parser.add_argument("--repair", action="store_true", help="Fix the drift found.")

    def handle(self, *args, segment=None, workspace=None, **options):
        repair_drift = options["repair"]
        segments = (
            Segment.objects.unscoped()
            .select_related("workspace")
            .filter(kind__in=[SegmentKind.REALTIME, SegmentKind.QUERY])
            .exclude(rules__isnull=True)
            .order_by("workspace_id", "id")
        )
        if segment is not None:
            segments = segments.filter(pk=segment)
            if not segments.exists():
                raise CommandError(f"No real-time or query segment with id {segment}.")
        if workspace:
            segments = segments.filter(workspace__slug=workspace)
        drifted = 0
        for seg in segments:
            drift = segment_drift(seg)
            line = (
                f"{seg.workspace.slug} segment {seg.pk} “{seg.name}” ({seg.kind}): "
                f"missing {drift.missing}, extra {drift.extra}"
            )
            if drift.missing_sample:
                line += f"; missing e.g. {', '.join(drift.missing_sample)}"
            if drift.extra_sample:
                line += f"; extra e.g. {', '.join(drift.extra_sample)}"
            if drift.drifted:
                drifted += 1
                if repair_drift:
                    entered, exited = repair(seg, actor=ACTOR)
                    line += f" -> repaired ({entered} entered, {exited} exited)"
            self.stdout.write(line)
        self.stdout.write(f"{segments.count()} segments checked, {drifted} with drift")
        if drifted and not repair_drift:
            raise SystemExit(1)
