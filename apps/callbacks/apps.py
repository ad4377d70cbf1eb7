from django.apps import AppConfig


class CallbacksConfig(AppConfig):
    name = "apps.callbacks"
    label = "callbacks"

    def ready(self) -> None:
        # Payments sits below the inbox and never imports it: the inbox adds its rows to order timelines.
        from apps.payments.timeline import timeline_source_add

        from .timeline import notification_entries

        timeline_source_add(notification_entries)
