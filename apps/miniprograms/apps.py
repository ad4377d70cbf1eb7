from django.apps import AppConfig


class MiniprogramsConfig(AppConfig):
    name = "apps.miniprograms"
    label = "miniprograms"
    verbose_name = "Mini programs"
