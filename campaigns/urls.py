"""The campaign pages (campaigns.views)."""

from django.urls import path

from campaigns import views
from campaigns.flows import views as flow_views

ONE = "campaigns/<int:campaign_id>/"

urlpatterns = [
    path("flows/", flow_views.flow_list, name="flow_list"),
    path("flows/<int:flow_id>/", flow_views.flow_detail, name="flow_detail"),
    path("flows/<int:flow_id>/runs/", flow_views.flow_runs, name="flow_runs"),
    path("flows/<int:flow_id>/publish/", flow_views.flow_publish, name="flow_publish"),
    path("flows/<int:flow_id>/pause/", flow_views.flow_pause, name="flow_pause"),
    path("flows/<int:flow_id>/resume/", flow_views.flow_resume, name="flow_resume"),
    path("flows/<int:flow_id>/archive/", flow_views.flow_archive, name="flow_archive"),
    path("campaigns/", views.campaign_list, name="campaign_list"),
    path("campaigns/placements/", views.placement_list, name="placement_list"),
    path("campaigns/banners/demo/", views.banner_demo, name="banner_demo"),
    path(ONE, views.campaign_detail, name="campaign_detail"),
    path(f"{ONE}edit/", views.campaign_edit, name="campaign_edit"),
    path(f"{ONE}content/", views.campaign_content, name="campaign_content"),
    path(f"{ONE}variants/", views.campaign_variants, name="campaign_variants"),
    path(f"{ONE}winner/", views.campaign_winner, name="campaign_winner"),
    path(f"{ONE}targeting/", views.campaign_targeting, name="campaign_targeting"),
    path(f"{ONE}estimate/", views.campaign_estimate, name="campaign_estimate"),
    path(f"{ONE}preview/", views.campaign_preview, name="campaign_preview"),
    path(f"{ONE}preview/html/", views.campaign_preview_html, name="campaign_preview_html"),
    path(f"{ONE}test/", views.campaign_test, name="campaign_test"),
    path(f"{ONE}launch/", views.campaign_launch, name="campaign_launch"),
    path(f"{ONE}pause/", views.campaign_pause, name="campaign_pause"),
    path(f"{ONE}resume/", views.campaign_resume, name="campaign_resume"),
    path(f"{ONE}cancel/", views.campaign_cancel, name="campaign_cancel"),
    path(f"{ONE}end/", views.campaign_end, name="campaign_end"),
    path(f"{ONE}delete/", views.campaign_delete, name="campaign_delete"),
    path(f"{ONE}progress/", views.campaign_progress, name="campaign_progress"),
    path(f"{ONE}log/", views.campaign_log, name="campaign_log"),
    path(f"{ONE}log.csv", views.campaign_log_csv, name="campaign_log_csv"),
]
