from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.forms import LoginForm, StyledPasswordResetForm, StyledSetPasswordForm

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("glossary/", views.glossary, name="glossary"),
    path("workspaces/switch/", views.workspace_switch, name="workspace_switch"),
    path("workspaces/new/", views.workspace_create, name="workspace_create"),
    path("settings/", views.settings_workspace, name="settings_workspace"),
    path("settings/members/", views.settings_members, name="settings_members"),
    path("settings/members/<int:member_id>/role/", views.member_role, name="member_role"),
    path("settings/members/<int:member_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "settings/members/<int:member_id>/resend/",
        views.member_invite_resend,
        name="member_invite_resend",
    ),
    path("settings/api-keys/", views.settings_api_keys, name="settings_api_keys"),
    path(
        "settings/api-keys/<int:api_key_id>/revoke/",
        views.api_key_revoke,
        name="api_key_revoke",
    ),
    path("settings/audit/", views.settings_audit, name="settings_audit"),
    path("healthz", views.healthz, name="healthz"),
    # Sign in and out, password reset (also the landing of invitation emails).
    path(
        "login/",
        auth_views.LoginView.as_view(
            redirect_authenticated_user=True, authentication_form=LoginForm
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(form_class=StyledPasswordResetForm),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(form_class=StyledSetPasswordForm),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
