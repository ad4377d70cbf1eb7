from django.apps import AppConfig


class SuperappsConfig(AppConfig):
    name = "apps.superapps"
    label = "superapps"
    verbose_name = "Super apps"
