"""Celery tasks of flows: thin doors into the engine."""

from celery import shared_task


@shared_task(name="campaigns.flows.tasks.flows_advance_task", ignore_result=True)
def flows_advance_task():
    """Beat (and after people enter): let in whoever entered a flow's segment, wake the runs
    whose awaited event came, then advance every due run."""
    from campaigns.flows.engine import advance, wake_on_events
    from campaigns.flows.entry import read_entries

    started = read_entries()
    woken = wake_on_events()
    done = advance()
    return {"started": started, "woken": woken, "steps": dict(done)}
