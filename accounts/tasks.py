"""Housekeeping run by Celery beat."""

from celery import shared_task


@shared_task(name="accounts.tasks.clear_expired_sessions_task")
def clear_expired_sessions_task():
    from django.core.management import call_command

    call_command("clearsessions")


@shared_task(name="accounts.tasks.clear_old_login_attempts_task")
def clear_old_login_attempts_task(days: int = 30):
    from datetime import timedelta

    from axes.models import AccessAttempt, AccessLog
    from django.utils import timezone

    cutoff = timezone.now() - timedelta(days=days)
    AccessAttempt.objects.filter(attempt_time__lt=cutoff).delete()
    AccessLog.objects.filter(attempt_time__lt=cutoff).delete()
