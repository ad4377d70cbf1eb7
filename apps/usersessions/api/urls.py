from django.urls import path

from . import views

urlpatterns = [
    path("sessions", views.SessionCreateApi.as_view(), name="sessions"),
]
