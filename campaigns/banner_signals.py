"""The receivers that keep the banner cache honest (connected in campaigns.apps)."""

from campaigns import banners


def cors(sender, request, **kwargs) -> bool:
    return banners.cors_allowed(request)


def campaign_saved(sender, instance, **kwargs) -> None:
    if instance.channel == "banner":
        banners.changed(instance.workspace_id)


def placement_saved(sender, instance, **kwargs) -> None:
    banners.changed(instance.workspace_id)


def targeting_changed(sender, instance, action, **kwargs) -> None:
    if action.startswith("post_") and getattr(instance, "channel", "") == "banner":
        banners.changed(instance.workspace_id)


def memberships_moved(sender, workspace_id, segment_id, person_ids, **kwargs) -> None:
    """A real-time segment moved people: their cached memberships go (all of the
    workspace's when anybody may have moved: a whole re-check)."""
    from people.models import Person

    if person_ids is None:
        banners.forget_workspace_people(workspace_id)
        return
    people = Person.objects.unscoped().filter(workspace_id=workspace_id, pk__in=list(person_ids))
    banners.forget_people(workspace_id, list(people.values_list("external_id", flat=True)))
