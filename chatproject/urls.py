from django.contrib import admin
from django.urls import path

from chat import api, views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("chat/rooms", api.rooms, name="rooms"),
    path("chat/rooms/<str:room_id>", api.room_detail, name="room-detail"),
    path("chat/rooms/<str:room_id>/messages", api.room_messages, name="room-messages"),
    path("chat/rooms/<str:room_id>/leave", api.leave, name="room-leave"),
    path("activities/<str:activity_id>/join", api.join_activity, name="activity-join"),
    path("chat/openapi.json", api.openapi, name="openapi"),
    path("dev-issuer/.well-known/jwks.json", views.dev_jwks, name="dev-jwks"),
    path("healthz", views.health, name="health"),
]

handler404 = "chat.api.not_found"
