"""Public campaign URLs without login: unsubscribe (/u/), tracking (/t/)."""

urlpatterns = []
