"""People: the profiles a workspace reaches.

Built-in fields are columns; custom attributes live in `attributes` (JSON) and are typed by
the workspace's attribute catalogue.
"""

from django.db import models

from accounts.models import WorkspaceOwned


class Person(WorkspaceOwned):
    external_id = models.CharField(max_length=255)
    email = models.CharField(max_length=254, blank=True, default="")
    phone = models.CharField(max_length=32, blank=True, default="", help_text="E.164")
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    gender = models.CharField(max_length=32, blank=True, default="")
    country = models.CharField(max_length=100, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    address = models.CharField(max_length=255, blank=True, default="")
    company = models.CharField(max_length=200, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "external_id"], name="person_unique_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at", "-id"], name="person_ws_created"),
            models.Index(fields=["workspace", "email"], name="person_ws_email"),
            models.Index(fields=["workspace", "phone"], name="person_ws_phone"),
        ]
        verbose_name_plural = "people"

    def __str__(self):
        return self.full_name or self.email or self.external_id

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
