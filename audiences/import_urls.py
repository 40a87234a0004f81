"""URLs of the audience CSV import (Audiences -> Import audiences)."""

urlpatterns: list = []
