from django.contrib import admin
from django.urls import path

from chat import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dev-issuer/.well-known/jwks.json", views.dev_jwks, name="dev-jwks"),
    path("healthz", views.health, name="health"),
]
