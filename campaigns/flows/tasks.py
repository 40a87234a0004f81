"""Celery tasks of flows: thin doors into the engine."""

from celery import shared_task


@shared_task(name="campaigns.flows.tasks.flows_advance_task", ignore_result=True)
def flows_advance_task():
    """Beat (and after people enter): let in whoever entered a flow's segment, then advance
    every due run."""
    from campaigns.flows.engine import advance
    from campaigns.flows.entry import read_entries

    started = read_entries()
    done = advance()
    return {"started": started, "steps": dict(done)}
