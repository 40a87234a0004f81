from django.apps import AppConfig
from django.db.models import F
from django.db.models.signals import pre_delete


def _person_leaves_their_audiences(sender, instance, **kwargs):
    """A person deleted (erased) leaves their audiences: their stored counts go down by one,
    in the deleting transaction, before the cascade removes the membership rows."""
    from audiences.models import TargetAudience

    TargetAudience.objects.filter(
        pk__in=instance.audience_memberships.values("audience_id")
    ).update(people_count=F("people_count") - 1)


class AudiencesConfig(AppConfig):
    name = "audiences"

    def ready(self):
        from people.models import Person

        pre_delete.connect(
            _person_leaves_their_audiences, sender=Person, dispatch_uid="audiences-person-erase"
        )
