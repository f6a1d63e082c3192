from django.contrib import admin
from django.urls import path

from chat import api, views, web

urlpatterns = [
    path("admin/", admin.site.urls),
    path("chat/me", api.me, name="me"),
    path("chat/rooms", api.rooms, name="rooms"),
    path("chat/rooms/<str:room_id>", api.room_detail, name="room-detail"),
    path("chat/rooms/<str:room_id>/messages", api.room_messages, name="room-messages"),
    path("chat/rooms/<str:room_id>/participants", api.room_participants, name="room-participants"),
    path("chat/rooms/<str:room_id>/leave", api.leave, name="room-leave"),
    path("activities/<str:activity_id>/join", api.join_activity, name="activity-join"),
    path("chat/openapi.json", api.openapi, name="openapi"),
    path("dev-issuer/.well-known/jwks.json", views.dev_jwks, name="dev-jwks"),
    path("healthz", views.health, name="health"),
    path("readyz", views.ready, name="ready"),
    path("metrics", views.metrics, name="metrics"),
    # The browser client (chat/web.py, chat/static/chat/).
    path("", web.index, name="client"),
    path("client/config.json", web.client_config, name="client-config"),
    path("dev-issuer/token", web.dev_token, name="dev-token"),
]

handler404 = "chat.api.not_found"
