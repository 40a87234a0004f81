"""Writes about workspaces, memberships and API keys: one function per action."""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from accounts.audit import Actor, audit_record
from accounts.models import (
    ApiKey,
    ApiKeyKind,
    Membership,
    Role,
    Workspace,
    hash_api_key,
    one_line,
    role_at_least,
)
from accounts.selectors import owner_count

User = get_user_model()


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "workspace"
    slug, n = base, 2
    while Workspace.objects.filter(slug=slug).exists():
        slug = f"{base}-{n}"
        n += 1
    return slug


@transaction.atomic
def workspace_create(
    *, name: str, owner, actor: Actor, time_zone: str = "UTC", slug: str | None = None
):
    """A new workspace with `owner` as its first owner (a workspace never lacks one).
    Its name is kept on one line (line breaks and tabs become spaces).
    audit: "workspace.create" """
    name = one_line(name)
    if not name:
        raise ValidationError({"name": "A workspace needs a name."})
    workspace = Workspace(name=name, slug=slug or _unique_slug(name), time_zone=time_zone)
    workspace.full_clean()
    workspace.save()
    membership = Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="workspace.create",
        obj=workspace,
        summary={"owner_user_id": owner.pk, "membership_id": membership.pk},
    )
    return workspace


_UNSET = object()


@transaction.atomic
def workspace_update(
    *, workspace: Workspace, name: str, time_zone: str, actor: Actor,
    sms_opt_out_line: str | None = None, frequency_caps: list[dict] | None = None,
    quiet_hours=_UNSET, banner_allowed_origins: list[str] | None = None,
) -> Workspace:  # fmt: skip
    """Renames the workspace (on one line, as workspace_create), sets its time zone and,
    when given, the SMS opt-out line (campaigns.unsubscribe.sms_body) and the frequency
    caps (accounts.models.parse_frequency_caps: a list of {channel, max, period}) and the
    quiet hours ((start, end) times, or None for none).
    audit: "workspace.update" with the names of the fields that changed."""
    before = {"name": workspace.name, "time_zone": workspace.time_zone,
              "sms_opt_out_line": workspace.sms_opt_out_line,
              "frequency_caps": workspace.frequency_caps,
              "quiet_hours_start": workspace.quiet_hours_start,
              "quiet_hours_end": workspace.quiet_hours_end,
              "banner_allowed_origins": workspace.banner_allowed_origins}  # fmt: skip
    workspace.name = one_line(name)
    workspace.time_zone = time_zone
    if sms_opt_out_line is not None:
        workspace.sms_opt_out_line = one_line(sms_opt_out_line)
    if frequency_caps is not None:
        workspace.frequency_caps = frequency_caps
    if quiet_hours is not _UNSET:
        workspace.quiet_hours_start, workspace.quiet_hours_end = quiet_hours or (None, None)
    if banner_allowed_origins is not None:  # the banner API's CORS (campaigns.banners)
        workspace.banner_allowed_origins = list(banner_allowed_origins)
    workspace.full_clean(exclude=["slug"])
    workspace.save(update_fields=["name", "time_zone", "sms_opt_out_line", "frequency_caps",
                                  "quiet_hours_start", "quiet_hours_end",
                                  "banner_allowed_origins"])  # fmt: skip
    changed = [f for f, old in before.items() if getattr(workspace, f) != old]
    audit_record(
        workspace=workspace,
        actor=actor,
        action="workspace.update",
        obj=workspace,
        summary={"fields": changed},
    )
    return workspace


@dataclass
class InviteResult:
    membership: Membership
    created_user: bool
    already_member: bool


def _send_invitation(*, user, workspace, invited_by, base_url: str, new_user: bool):
    context = {
        "workspace": workspace,
        "invited_by": invited_by,
        "user": user,
        "base_url": base_url.rstrip("/"),
        "set_password_url": base_url.rstrip("/")
        + reverse(
            "password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        if new_user
        else None,
    }
    send_mail(
        # one_line again for names saved before they had to be one line: a line break in
        # a subject would end the header (Django refuses to send it).
        subject=f"You have been invited to {one_line(workspace.name)} on Herald",
        message=render_to_string("accounts/email/invitation.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )


def member_invite(
    *, workspace: Workspace, email: str, role: str, actor: Actor, base_url: str
) -> InviteResult:
    """`actor` (a signed-in member) adds the person with `email` to the workspace,
    creating their user when needed.

    Only an owner may make someone an owner. New users get an email with a link to set
    their password; existing users get a notice. audit: "member.invite" (ids, never the
    email), only when a membership was made.
    """
    invited_by = actor.user
    email = User.objects.normalize_email(email.strip()).lower()
    inviter = Membership.objects.for_workspace(workspace).get(user=invited_by)
    if role == Role.OWNER and inviter.role != Role.OWNER:
        raise ValidationError({"role": "Only an owner can make someone an owner."})
    with transaction.atomic():
        user = User.objects.filter(email__iexact=email).first()
        created_user = user is None
        if created_user:
            user = User.objects.create_user(email=email, password=None)
        membership, created = Membership.objects.get_or_create(
            workspace=workspace, user=user, defaults={"role": role}
        )
        if created:
            audit_record(
                workspace=workspace,
                actor=actor,
                action="member.invite",
                obj=membership,
                summary={"user_id": user.pk, "role": role, "created_user": created_user},
            )
            transaction.on_commit(
                lambda: _send_invitation(
                    user=user,
                    workspace=workspace,
                    invited_by=invited_by,
                    base_url=base_url,
                    new_user=created_user,
                )
            )
    return InviteResult(
        membership=membership, created_user=created_user, already_member=not created
    )


def invitation_pending(membership: Membership) -> bool:
    """An invitation not taken up yet: the invitation made the user, who has neither set
    a password nor signed in. (An existing user is a member at once: they sign in as
    before.)"""
    user = membership.user
    return user.last_login is None and not user.has_usable_password()


def member_invite_resend(*, membership: Membership, actor: Actor, base_url: str) -> None:
    """Send a pending invitation's email again, with a fresh link to set the password.
    audit: "member.invite_resend" """
    if not invitation_pending(membership):
        raise ValidationError(f"{membership.user.email} has accepted the invitation already.")
    user = membership.user
    with transaction.atomic():
        audit_record(
            workspace=membership.workspace_id,
            actor=actor,
            action="member.invite_resend",
            obj=membership,
        )
        transaction.on_commit(
            lambda: _send_invitation(
                user=user,
                workspace=membership.workspace,
                invited_by=actor.user,
                base_url=base_url,
                new_user=True,
            )
        )


def _guard_owner_change(*, membership: Membership, actor_role: str, new_role: str | None):
    workspace = membership.workspace
    touches_owner = membership.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor_role != Role.OWNER:
        raise ValidationError("Only an owner can change or remove an owner.")
    if membership.role == Role.OWNER and new_role != Role.OWNER:
        # Lock the owners so two concurrent demotions cannot leave the workspace ownerless.
        list(
            Membership.objects.for_workspace(workspace).filter(role=Role.OWNER).select_for_update()
        )
        if owner_count(workspace=workspace) <= 1:
            raise ValidationError(
                "This is the workspace's last owner. Make someone else an owner first."
            )


def _actor_role(*, workspace, actor: Actor) -> str:
    """The role of the member acting (a system job acts as an owner)."""
    if actor.user is None:
        return Role.OWNER if actor.system else Role.VIEWER
    own = Membership.objects.for_workspace(workspace).filter(user=actor.user).first()
    return own.role if own else Role.VIEWER


@transaction.atomic
def member_change_role(*, membership: Membership, role: str, actor: Actor) -> Membership:
    """audit: "member.change_role" (from and to), when the role changes."""
    if role not in Role.values:
        raise ValidationError(f"“{role}” is not a role.")
    actor_role = _actor_role(workspace=membership.workspace, actor=actor)
    if not role_at_least(actor_role, Role.ADMIN):
        raise ValidationError("Only admins and owners manage the team.")
    _guard_owner_change(membership=membership, actor_role=actor_role, new_role=role)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    if old != role:
        audit_record(
            workspace=membership.workspace,
            actor=actor,
            action="member.change_role",
            obj=membership,
            summary={"user_id": membership.user_id, "from": old, "to": role},
        )
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Actor) -> None:
    """audit: "member.remove" """
    actor_role = _actor_role(workspace=membership.workspace, actor=actor)
    if not role_at_least(actor_role, Role.ADMIN):
        raise ValidationError("Only admins and owners manage the team.")
    _guard_owner_change(membership=membership, actor_role=actor_role, new_role=None)
    audit_record(
        workspace=membership.workspace,
        actor=actor,
        action="member.remove",
        obj=membership,
        summary={"user_id": membership.user_id, "role": membership.role},
    )
    membership.delete()


@transaction.atomic
def api_key_create(
    *, workspace: Workspace, name: str, actor: Actor, kind: str = ApiKeyKind.FULL
) -> tuple[ApiKey, str]:
    """A new key of `kind` (full or read-only) and its raw value, created by `actor` (its
    user, if any, is the key's created_by). The raw value is never stored (only its hash
    under the first API_KEY_HASH_KEYS key): show it once. audit: "api_key.create" """
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name that says who uses it."})
    if kind not in ApiKeyKind.values:
        raise ValidationError({"kind": f"“{kind}” is not a kind of key (full or read)."})
    prefix, raw = ApiKey.generate()
    key = ApiKey.objects.create(
        workspace=workspace,
        name=name[:100],
        prefix=prefix,
        key_hash=hash_api_key(raw),
        kind=kind,
        created_by=actor.user,
    )
    audit_record(
        workspace=workspace, actor=actor, action="api_key.create", obj=key, summary={"kind": kind}
    )
    return key, raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    """Revoking is immediate and final; a revoked key answers 401.
    audit: "api_key.revoke", when it was active."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(
            workspace=api_key.workspace_id, actor=actor, action="api_key.revoke", obj=api_key
        )
    return api_key
