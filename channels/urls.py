from django.urls import path

from channels import views

urlpatterns = [
    path("channels/", views.channel_list, name="channel_list"),
    path("channels/sandbox/", views.sandbox_inbox, name="sandbox_inbox"),
    path("channels/sandbox/<int:message_id>/", views.sandbox_message, name="sandbox_message"),
    path(
        "channels/sandbox/<int:message_id>/html/",
        views.sandbox_message_html,
        name="sandbox_message_html",
    ),
]
