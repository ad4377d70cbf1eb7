from django.apps import AppConfig


class UserSessionsConfig(AppConfig):
    name = "apps.usersessions"
    label = "usersessions"
    verbose_name = "Wallet users and sessions"
