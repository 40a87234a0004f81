"""URLs of the contact import (upload -> analyze -> confirm -> progress)."""

urlpatterns: list = []
