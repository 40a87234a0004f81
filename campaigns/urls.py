"""The campaign pages (campaigns.views)."""

urlpatterns = []
